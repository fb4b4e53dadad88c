"""Resumable uploads (tus 1.0) at /api/uploads: protocol, ownership, checks, expiry; both modes."""

import base64
import errno
import gzip
import io
import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.conftest import client_with_token
from tests.imports.conftest import PIECE, TUS

DATA = b"sku,name\r\nA-1,Apple\r\nB-2,Banana\r\n"


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(client, length: int, filename: str = "products.csv") -> str:
    """Start an upload; return its URL."""
    headers = {**TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(filename=filename)}
    response = client.post("/api/uploads", headers=headers)
    assert response.status_code == 201, response.get_json()
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Upload-Expires"].endswith("GMT")
    return response.headers["Location"]


def send(client, url: str, offset: int, piece: bytes):
    return client.patch(url, data=piece, headers={**PIECE, "Upload-Offset": str(offset)})


def offset_of(client, url: str) -> int:
    response = client.head(url, headers=TUS)
    assert response.status_code == 200
    return int(response.headers["Upload-Offset"])


def test_options_advertise_the_protocol(api, any_app):
    response = api.options("/api/uploads")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Extension"] == "creation,termination,expiration"
    assert response.headers["Tus-Max-Size"] == str(any_app.config["MAX_UPLOAD_BYTES"])


def test_an_upload_in_pieces_reaches_its_length(api, any_engine):
    url = create(api, len(DATA))
    assert offset_of(api, url) == 0
    first = send(api, url, 0, DATA[:10])
    assert first.status_code == 204
    assert first.headers["Upload-Offset"] == "10"
    assert offset_of(api, url) == 10
    last = send(api, url, 10, DATA[10:])
    assert last.status_code == 204
    assert last.headers["Upload-Offset"] == str(len(DATA))
    head = api.head(url, headers=TUS)
    assert head.headers["Upload-Length"] == str(len(DATA))
    assert "Upload-Expires" not in head.headers  # finished: it no longer expires as unfinished
    with any_engine.connect() as conn:
        row = conn.execute(text("SELECT file_path, completed_at FROM uploads")).one()
    assert row.completed_at is not None
    with open(row.file_path, "rb") as stored:
        assert stored.read() == DATA


def test_a_wrong_offset_is_409_and_changes_nothing(api):
    url = create(api, len(DATA))
    send(api, url, 0, DATA[:10])
    for wrong in (0, 5, 11):
        response = send(api, url, wrong, DATA[wrong:])
        assert response.status_code == 409
        assert "ask with HEAD" in response.get_json()["error"]["message"]
    assert offset_of(api, url) == 10


def test_a_piece_past_the_declared_length_is_refused(api):
    url = create(api, len(DATA))
    response = send(api, url, 0, DATA + b"C-3,Cherry\r\n")
    assert response.status_code == 413
    assert "declared length" in response.get_json()["error"]["message"]
    assert offset_of(api, url) == 0


def test_the_protocol_headers_are_required(api):
    url = create(api, len(DATA))
    no_version = api.patch(url, data=DATA, headers={"Content-Type": PIECE["Content-Type"]})
    assert no_version.status_code == 412
    assert no_version.headers["Tus-Version"] == "1.0.0"
    wrong_type = api.patch(url, data=DATA, headers={**TUS, "Upload-Offset": "0"})
    assert wrong_type.status_code == 415
    no_offset = api.patch(url, data=DATA, headers=PIECE)
    assert no_offset.status_code == 400
    no_length = api.post("/api/uploads", headers=TUS)
    assert no_length.status_code == 400
    assert "Upload-Length" in no_length.get_json()["error"]["message"]


def test_termination_removes_the_upload_and_its_bytes(api, any_engine):
    url = create(api, len(DATA))
    send(api, url, 0, DATA[:10])
    with any_engine.connect() as conn:
        path = conn.execute(text("SELECT file_path FROM uploads")).scalar_one()
    assert api.delete(url, headers=TUS).status_code == 204
    assert api.head(url, headers=TUS).status_code == 404
    assert send(api, url, 10, DATA[10:]).status_code == 404
    assert not os.path.exists(path)


def test_another_account_gets_404(api, any_app, accounts):
    url = create(api, len(DATA))
    editor = client_with_token(any_app, accounts["editor"].token)
    assert editor.head(url, headers=TUS).status_code == 404
    assert send(editor, url, 0, DATA).status_code == 404
    assert editor.delete(url, headers=TUS).status_code == 404
    assert offset_of(api, url) == 0


@pytest.mark.parametrize("upload_id", ["\x00\x17", "\udbc6\udeef", "a" * 32, "A" * 33])
def test_an_id_no_upload_could_have_is_404(api, upload_id):
    """Found by schemathesis: a NUL or a lone surrogate in the id was a 500 (a database error)."""
    answer = api.post("/api/imports", json={"upload": upload_id})
    assert answer.status_code == 404, answer.get_data(as_text=True)
    assert "does not exist" in answer.get_json()["error"]["message"]


def test_a_viewer_cannot_upload(any_app, accounts):
    viewer = client_with_token(any_app, accounts["viewer"].token)
    response = viewer.post("/api/uploads", headers={**TUS, "Upload-Length": "10"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"", 422, "empty"),
        (b"  \r\n \t\r\n ", 422, "empty"),
        (b"sku\x00name\r\n\x00", 422, "binary"),
        (gzip.compress(b"\x00" * 50), 422, "binary"),
        (b"\x1f\x8b" + b"not gzip at all!!!", 422, "gzip"),
    ],
    # named, not shown: a gzip header holds the time it was made, and the two pytest processes
    # must collect the same test names
    ids=["empty", "whitespace", "binary", "gzip-of-binary", "not-gzip"],
)
def test_the_checks_of_a_multipart_upload_apply(api, data, status, words):
    length = len(data)
    headers = {**TUS, "Upload-Length": str(length)}
    created = api.post("/api/uploads", headers=headers)
    if length == 0:
        assert created.status_code == status
        assert words in created.get_json()["error"]["message"]
        return
    response = send(api, created.headers["Location"], 0, data)
    assert response.status_code == status
    assert words in response.get_json()["error"]["message"]
    # a refused upload takes no more bytes, and says why
    again = send(api, created.headers["Location"], length, b"")
    assert again.status_code == 409
    assert words in again.get_json()["error"]["message"]


def test_an_upload_over_the_limit_is_413_at_once(api, any_app):
    limit = any_app.config["MAX_UPLOAD_BYTES"]
    response = api.post("/api/uploads", headers={**TUS, "Upload-Length": str(limit + 1)})
    assert response.status_code == 413
    assert "limit" in response.get_json()["error"]["message"]


def test_a_length_or_offset_of_thousands_of_digits_is_refused_as_too_large_or_misplaced(api):
    # int() refuses over 4,300 digits: both were a 500.
    huge = "1" + "0" * 5000
    too_long = api.post("/api/uploads", headers={**TUS, "Upload-Length": huge})
    url = create(api, len(DATA))
    misplaced = send(api, url, "0" * 5000 + huge, DATA)

    assert too_long.status_code == 413 and "limit" in too_long.get_json()["error"]["message"]
    assert misplaced.status_code == 409
    assert offset_of(api, url) == 0


def test_a_file_name_is_kept_without_its_control_characters(api, any_engine):
    # A NUL, which PostgreSQL's text cannot hold (a 500), and a terminal's escape.
    url = create(api, len(DATA), filename="\x1b[31mred\x00.csv")
    assert send(api, url, 0, DATA).status_code == 204

    with any_engine.connect() as conn:
        assert conn.execute(text("SELECT filename FROM uploads")).scalar() == "[31mred.csv"


def test_an_expired_upload_is_gone(api, any_app, any_engine):
    from product_importer.imports import maintenance

    unfinished = create(api, len(DATA))
    send(api, unfinished, 0, DATA[:10])
    finished = create(api, len(DATA))
    send(api, finished, 0, DATA)
    with any_engine.begin() as conn:
        path = conn.execute(
            text("SELECT file_path FROM uploads WHERE completed_at IS NULL")
        ).scalar_one()
        # the clock moved past the unfinished upload's expiry
        conn.execute(
            text("UPDATE uploads SET expires_at = :past WHERE completed_at IS NULL"),
            {"past": datetime.now(UTC) - timedelta(seconds=1)},
        )
    assert api.head(unfinished, headers=TUS).status_code == 404  # at once, before the cleanup
    with any_app.app_context():
        assert maintenance.remove_expired_resumable_uploads() == 1
    with any_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM uploads")).scalar() == 1
    assert not os.path.exists(path)
    assert offset_of(api, finished) == len(DATA)


def test_an_import_waits_in_the_queue_while_its_upload_stalls(embedded_app, accounts, account_rows):
    """It gives the queue back after UPLOAD_STALL_SECONDS, and goes on when bytes come."""
    from product_importer.extensions import db
    from product_importer.imports import queue
    from tests.modes import empty_tables

    with embedded_app.app_context():
        empty_tables(db.engine, account_rows)
    client = client_with_token(embedded_app, accounts["admin"].token)
    url = create(client, len(DATA))
    send(client, url, 0, DATA[:10])
    created = client.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]})
    assert created.status_code == 202
    job_url = f"/api/imports/{created.get_json()['id']}"
    embedded_app.config["UPLOAD_STALL_SECONDS"] = 0.2
    try:
        with embedded_app.app_context():
            assert queue.drain_queue() == 1  # ran, and gave the job back
            waiting = client.get(job_url).get_json()
            assert waiting["status"] == "queued"
            assert waiting["message"] == "Waiting for the upload to go on (10 of 33 bytes received)"
            assert queue.drain_queue() == 0  # no byte since: it is not taken again
            assert send(client, url, 10, DATA[10:]).status_code == 204
            assert queue.drain_queue() == 1
    finally:
        embedded_app.config["UPLOAD_STALL_SECONDS"] = 30.0
    job = client.get(job_url).get_json()
    assert (job["status"], job["created"]) == ("completed", 2)
    with embedded_app.app_context(), db.engine.connect() as conn:
        attempts = conn.execute(text("SELECT attempts FROM import_jobs")).scalar_one()
    assert attempts == 1  # waiting was not an attempt


def stored_path(any_engine) -> str:
    with any_engine.connect() as conn:
        return conn.execute(text("SELECT file_path FROM uploads")).scalar()


def test_an_upload_whose_last_piece_failed_before_its_commit_is_finished_when_asked(
    api, any_engine
):
    # The last piece's bytes were written, then its request failed before its commit (the
    # database restarting, a web process killed): asked the offset, clients found the upload
    # whole and sent nothing more, and nothing ever finished it; its import waited a day.
    url = create(api, len(DATA))
    with open(stored_path(any_engine), "ab") as out:  # as the failed piece left it
        out.write(DATA)

    head = api.head(url, headers=TUS)

    assert head.headers["Upload-Offset"] == str(len(DATA))
    assert "Upload-Expires" not in head.headers  # finished: it no longer expires
    with any_engine.connect() as conn:
        assert conn.execute(text("SELECT completed_at FROM uploads")).scalar() is not None
    job = api.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]})
    assert job.status_code == 202, job.get_json()


def test_importing_an_upload_whose_file_is_no_longer_kept_is_404(api, any_engine):
    # Its file goes with the end of an import of it (retention) while the upload is kept a
    # day: a second import of it hashed a missing file and answered 500.
    url = create(api, len(DATA))
    assert send(api, url, 0, DATA).status_code == 204
    os.remove(stored_path(any_engine))

    answer = api.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]})

    assert answer.status_code == 404, answer.get_json()
    upload_id = url.rsplit("/", 1)[-1]
    message = f"Upload {upload_id} no longer has its file. Upload again."
    assert answer.get_json()["error"]["message"] == message


class FillingDisk:
    """A file on a disk that fills: each write takes at most 5 bytes, then none (ENOSPC)."""

    def __init__(self, room: int):
        self.kept, self.room = bytearray(), room

    def write(self, data) -> int:
        if not self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        taken = min(5, self.room, len(data))
        self.kept += data[:taken]
        self.room -= taken
        return taken


def test_a_piece_counts_the_bytes_the_disk_took_and_a_full_disk_is_507(app_ctx):
    # Each write was counted whole: a disk that filled during the last piece took part of it,
    # and a short file was finished as whole (its import then waited for bytes forever).
    from product_importer.errors import InsufficientStorage
    from product_importer.imports.resumable import Target, _copy

    target = Target("a" * 32, "/nowhere", length=40)
    roomy = FillingDisk(room=100)
    assert _copy(io.BytesIO(DATA[:33]), roomy, 7, target) == 40
    assert bytes(roomy.kept) == DATA[:33]

    full = FillingDisk(room=12)
    with pytest.raises(InsufficientStorage, match="disk filled while this piece arrived"):
        _copy(io.BytesIO(DATA[:33]), full, 7, target)
    assert bytes(full.kept) == DATA[:12]  # kept: the client resumes from the file's size


def test_a_post_that_names_another_method_in_the_override_header_is_that_method(api):
    # tus 1.0: a proxy that passes only GET and POST; clients send pieces as POST with
    # X-HTTP-Method-Override: PATCH (tus-js-client's `overridePatchMethod`). They were 405.
    url = create(api, len(DATA))
    override = {**PIECE, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"}

    piece = api.post(url, data=DATA, headers=override)

    assert piece.status_code == 204, piece.get_data(as_text=True)
    assert piece.headers["Upload-Offset"] == str(len(DATA))
    assert offset_of(api, url) == len(DATA)
    # not HEAD: the server, which sees a POST, would promise a body and send none
    assert api.post(url, headers={**TUS, "X-HTTP-Method-Override": "HEAD"}).status_code == 405
    ended = api.post(url, headers={**TUS, "X-HTTP-Method-Override": "delete"})
    assert ended.status_code == 204
    assert api.head(url, headers=TUS).status_code == 404
    # nowhere else: a POST to the products stays a POST
    other = api.post("/api/products", json={"sku": "O-1", "name": "Override"},
                     headers={"X-HTTP-Method-Override": "DELETE"})  # fmt: skip
    assert other.status_code == 201
