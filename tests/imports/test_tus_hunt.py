"""Resumable uploads against a running server, hunted: random pieces, drops, conflicts, races.

A model of the upload (the bytes the server must hold) is checked after every step through
HEAD and the stored file; the import asked for while the bytes arrive must give the catalog
the file describes.
"""

import csv
import io
import os
import random
import socket
import struct
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from tusclient import client as tus

from tests.conftest import http_client, paused
from tests.imports.conftest import PIECE, TUS, products_by_key, wait_for
from tests.modes import snapshot
from tests.webhooks.receiver import Receiver

NAMES = ["Crème brûlée", "Ünïcödé ☕", "Smörgåsbord 😀", "Plain name", 'Ĳssel, "quoted"']
# tus-js-client's first retry delays (the upload page's schedule starts with them)
RESUME_DELAYS = [0, 1, 3, 5]
# The server writes a piece in reads of this much: fewer bytes wait in its buffer.
READ_BYTES = 64 * 1024


def hunt_file(count: int, seed: int) -> tuple[bytes, dict]:
    """Return a CSV of multi-byte names and multi-line cells, SKUs repeated in other cases, and
    the catalog an import of it gives (the last spelling wins)."""
    rng = random.Random(seed)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["sku", "name", "description"])
    expected = {}
    for n in range(count):
        sku = f"Hunt-{rng.randrange(count * 9 // 10)}"
        sku = sku.upper() if rng.random() < 0.5 else sku
        name = f"{rng.choice(NAMES)} {n}"
        description = f"Line one {n}, with a comma\r\nline two ✓ {rng.random():.6f}"
        writer.writerow([sku, name, description])
        expected[sku.lower()] = (sku, name, description, True)
    return buffer.getvalue().encode(), expected


class Upload:
    """One tus upload driven through raw HTTP, and the bytes the server must hold."""

    def __init__(self, base: str, engine, http: httpx.Client, token: str, data: bytes):
        self.base, self.engine, self.http, self.token, self.data = base, engine, http, token, data
        created = http.post("/api/uploads", headers={**TUS, "Upload-Length": str(len(data))})
        assert created.status_code == 201, created.text
        self.url = base + created.headers["Location"]
        self.id = self.url.rsplit("/", 1)[-1]
        self.offset = 0  # what the model says has arrived

    def head(self) -> int:
        """Ask the offset with HEAD."""
        response = self.http.head(self.url, headers=TUS)
        assert response.status_code == 200, response.status_code
        assert response.headers["Upload-Length"] == str(len(self.data))
        return int(response.headers["Upload-Offset"])

    def patch(self, at: int, body: bytes, client: httpx.Client | None = None) -> httpx.Response:
        """Send `body` as a piece at offset `at` (on `client`'s connections if given)."""
        headers = {**PIECE, "Upload-Offset": str(at)}
        return (client or self.http).patch(self.url, content=body, headers=headers)

    def stored(self) -> bytes:
        """Read the bytes the server stored for this upload."""
        with self.engine.connect() as conn:
            path = conn.execute(
                text("SELECT file_path FROM uploads WHERE id = :id"), {"id": self.id}
            ).scalar_one()
        with open(path, "rb") as stored:
            return stored.read()

    def check(self) -> None:
        """The server holds exactly the model's bytes, and says so with HEAD."""
        assert self.head() == self.offset
        assert self.stored() == self.data[: self.offset]

    def settle(self) -> int:
        """Wait until no piece is being written (an empty PATCH is let in); return the offset."""
        while True:
            at = self.head()
            probe = self.patch(at, b"")
            if probe.status_code == 204:
                return int(probe.headers["Upload-Offset"])
            assert probe.status_code in (409, 423), probe.text  # a dropped piece still ends
            time.sleep(0.05)

    def open_piece(self, size: int | None) -> socket.socket:
        """Send the head of a PATCH of `size` bytes (chunked if None) on a raw connection."""
        parts = urlsplit(self.url)
        length = "Transfer-Encoding: chunked" if size is None else f"Content-Length: {size}"
        head = (
            f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {self.token}\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Offset: {self.offset}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"{length}\r\n\r\n"
        )
        sock = socket.create_connection((parts.hostname, parts.port))
        sock.sendall(head.encode())
        return sock

    def wait_for_offset(self, wanted: int) -> None:
        """Wait until the server has written the bytes up to `wanted` (a state, not a time)."""
        while (found := self.head()) < wanted:
            time.sleep(0.02)
        assert found >= wanted


def send_and_hang_up(upload: Upload, rng: random.Random) -> None:
    """Send part of a piece and close the connection: FIN, or RST (SO_LINGER 0)."""
    left = len(upload.data) - upload.offset
    reset = left > READ_BYTES + 2 and rng.random() < 0.5
    size = rng.randint(READ_BYTES + 2 if reset else 2, min(300_000, left))
    sent = rng.randint(READ_BYTES + 1 if reset else 1, size - 1)
    sock = upload.open_piece(size)
    sock.sendall(upload.data[upload.offset : upload.offset + sent])
    before = upload.offset
    if reset:
        upload.wait_for_offset(before + READ_BYTES)  # the server is writing this piece
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    else:
        sock.shutdown(socket.SHUT_WR)  # every byte sent arrives before the end
        upload.wait_for_offset(before + sent)
        sock.close()
    upload.offset = upload.settle()
    assert before < upload.offset <= before + sent  # a reset may lose what was in flight


def send_piece(upload: Upload, rng: random.Random) -> None:
    """Send a piece of a random size at the offset: it is written whole."""
    size = rng.choice([1, 7, 1000, rng.randint(1, 150_000)])
    piece = upload.data[upload.offset : upload.offset + size]
    response = upload.patch(upload.offset, piece)
    assert response.status_code == 204, response.text
    upload.offset += len(piece)
    assert response.headers["Upload-Offset"] == str(upload.offset)


def send_at_wrong_offset(upload: Upload, rng: random.Random) -> None:
    """Send a piece at an offset the upload is not at: 409, nothing written."""
    wrong = max(0, upload.offset + rng.choice([-1, 1, -1000, 5000]))
    if wrong == upload.offset:
        return
    response = upload.patch(wrong, upload.data[wrong : wrong + 100] or b"x")
    assert response.status_code == 409, response.text


def send_past_the_length(upload: Upload, rng: random.Random) -> None:
    """Send the rest and more, declared by Content-Length: 413, nothing written."""
    rest = upload.data[upload.offset :] + b"extra,bytes\r\n"
    # its own connection: gunicorn closes one whose unread body is over 64 KiB, though its
    # answer said keep-alive, and the next request on it would fail
    with http_client(upload.base, upload.token) as own:
        response = upload.patch(upload.offset, rest, own)
    assert response.status_code == 413, response.text


def send_twice_at_once(upload: Upload, rng: random.Random) -> None:
    """Two clients send the same piece at the same offset: one is written, once."""
    piece = upload.data[upload.offset : upload.offset + rng.randint(1, 150_000)]
    barrier, answers = threading.Barrier(2), []

    def send() -> None:
        with http_client(upload.base, upload.token) as own:
            barrier.wait()
            answers.append(upload.patch(upload.offset, piece, own).status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) in ([204, 409], [204, 423]), answers
    upload.offset += len(piece)


STEPS = [send_piece, send_piece, send_and_hang_up, send_at_wrong_offset]
STEPS += [send_past_the_length, send_twice_at_once]


def finished(http, job_id: int) -> dict:
    """Wait until the import has ended; return it."""
    return wait_for(http, job_id, lambda job: job["status"] not in ("queued", "running"), "done")


@pytest.mark.parametrize("seed", [5, 17])
def test_random_pieces_drops_and_conflicts_keep_every_byte_and_import_the_file(
    served, any_http, accounts, seed
):
    data, expected = hunt_file(3_000, seed=seed)
    rng = random.Random(seed)
    upload = Upload(served.url, served.engine, any_http, accounts["admin"].token, data)
    send_piece(upload, rng)
    job = any_http.post("/api/imports", json={"upload": upload.id})  # it reads as bytes arrive
    assert job.status_code == 202, job.text
    while len(data) - upload.offset > 1:
        rng.choice(STEPS)(upload, rng)
        upload.check()
    last = upload.patch(upload.offset, data[upload.offset :])
    assert last.status_code == 204, last.text
    upload.offset = len(data)
    upload.check()
    # after the last byte: one more byte is refused, an empty piece changes nothing
    assert upload.patch(len(data), b"x").status_code in (409, 413)
    assert upload.patch(len(data), b"").status_code == 204
    upload.check()

    done = finished(any_http, job.json()["id"])
    assert done["status"] == "completed", done
    assert done["rows_processed"] == 3_000
    assert done["created"] == len(expected)
    assert products_by_key(snapshot(served.engine)) == expected


def test_tuspy_resumes_from_random_stops_with_random_piece_sizes(served, any_http, accounts):
    data, expected = hunt_file(1_500, seed=3)
    rng = random.Random(9)
    headers = {"Authorization": f"Bearer {accounts['admin'].token}"}
    client = tus.TusClient(f"{served.url}/api/uploads", headers=headers)
    first = client.uploader(
        file_stream=io.BytesIO(data),
        chunk_size=rng.randint(1, 40_000),
        metadata={"filename": "h.csv"},
    )
    first.set_url(first.create_url())
    url = first.url
    job = any_http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]})
    assert job.status_code == 202, job.text
    stops = sorted(rng.sample(range(1, len(data)), 4)) + [len(data)]
    for stop in stops:
        # a new client each time, as after a reload: it asks the offset with HEAD
        again = client.uploader(
            file_stream=io.BytesIO(data), url=url, chunk_size=rng.randint(1, 200_000)
        )
        again.upload(stop_at=stop)
    done = finished(any_http, job.json()["id"])
    assert done["status"] == "completed", done
    assert products_by_key(snapshot(served.engine)) == expected


def test_protocol_edges_of_creation_termination_and_expiry(live_server, http, sql):
    options = http.options("/api/uploads", headers=TUS)
    extensions = set(options.headers["Tus-Extension"].split(","))
    assert {"creation", "termination", "expiration"} <= extensions
    # not advertised: a deferred length is refused rather than half-supported
    if "creation-defer-length" not in extensions:
        deferred = http.post("/api/uploads", headers={**TUS, "Upload-Defer-Length": "1"})
        assert deferred.status_code == 400
    for length, status in (("0", 422), ("-1", 400), ("1e3", 400)):  # empty: as a multipart
        answer = http.post("/api/uploads", headers={**TUS, "Upload-Length": length})
        assert answer.status_code == status, (length, answer.text)
    too_big = int(options.headers["Tus-Max-Size"]) + 1
    assert (
        http.post("/api/uploads", headers={**TUS, "Upload-Length": str(too_big)}).status_code == 413
    )

    data, _ = hunt_file(50, seed=1)
    created = http.post("/api/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    url = created.headers["Location"]
    assert (
        http.patch(url, content=data[:100], headers={**PIECE, "Upload-Offset": "0"}).status_code
        == 204
    )
    path = sql("SELECT file_path FROM uploads")[0][0]
    assert http.delete(url, headers=TUS).status_code == 204
    assert http.head(url, headers=TUS).status_code in (404, 410)
    more = http.patch(url, content=data[100:], headers={**PIECE, "Upload-Offset": "100"})
    assert more.status_code in (404, 410)
    assert not os.path.exists(path)  # the bytes received are removed with it

    expiring = http.post("/api/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    url = expiring.headers["Location"]
    sql("UPDATE uploads SET expires_at = now() - interval '1 second'")
    assert http.head(url, headers=TUS).status_code in (404, 410)
    late = http.patch(url, content=data, headers={**PIECE, "Upload-Offset": "0"})
    assert late.status_code in (404, 410)
    assert http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]}).status_code == 404


def test_a_connection_gone_silent_mid_piece_does_not_lock_the_upload(live_server, http, accounts):
    # A phone that loses its network sends neither FIN nor RST: the server never hears of it.
    data, _ = hunt_file(2_000, seed=2)
    token = accounts["admin"].token
    upload = Upload(live_server, None, http, token, data)
    silent = upload.open_piece(len(data))
    silent.sendall(data[: READ_BYTES + 10])
    upload.wait_for_offset(READ_BYTES)
    try:
        at = upload.head()
        # the client resumes from the offset the server gives, on a new connection
        for delay in RESUME_DELAYS:
            time.sleep(delay)
            with http_client(live_server, token) as fresh:
                resumed = upload.patch(at, data[at:], fresh)
            if resumed.status_code != 423:
                break
        assert resumed.status_code == 204, resumed.text
    finally:
        silent.close()


def upload_in_two(http, data: bytes, first: int) -> str:
    """Create an upload of `data` and send its first `first` bytes; return its path."""
    created = http.post("/api/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    url = created.headers["Location"]
    piece = http.patch(url, content=data[:first], headers={**PIECE, "Upload-Offset": "0"})
    assert piece.status_code == 204
    return url


def test_a_refused_upload_removed_afterwards_is_never_imported(live_worker, http, sql):
    data = b"sku,name\r\nA-1,Apple\r\n\x00\x00"  # NUL bytes: refused at the last byte
    url = upload_in_two(http, data, 10)
    with paused(live_worker):  # the import waits in the queue meanwhile
        job = http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]}).json()
        refused = http.patch(url, content=data[10:], headers={**PIECE, "Upload-Offset": "10"})
        assert refused.status_code == 422
        assert http.delete(url, headers=TUS).status_code == 204  # the client gives it up
    done = finished(http, job["id"])
    assert done["status"] == "failed", done
    assert sql("SELECT sku FROM products") == []


def test_an_expired_upload_fails_its_waiting_import_with_an_import_failed_webhook(
    app, live_worker, http, sql
):
    from product_importer.extensions import db
    from product_importer.imports import resumable

    receiver = Receiver()
    try:
        hook = {"url": receiver.url, "events": ["import.failed"]}
        assert http.post("/api/webhooks", json=hook).status_code == 201
        data, _ = hunt_file(100, seed=4)
        url = upload_in_two(http, data, 1_000)  # abandoned: the rest never comes
        with paused(live_worker):  # the import waits in the queue, as one whose upload stalled
            job = http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]}).json()
            sql("UPDATE uploads SET expires_at = now() - interval '1 second'")
            with app.app_context(), Session(db.engine) as session:
                assert resumable.remove_expired(session) == 1  # the maintenance loop's step
                session.commit()
        done = finished(http, job["id"])
        assert done["status"] == "failed" and "expired" in done["error"]
        # the outbox row is written with the job's end: no need to wait for the receiver
        assert sql("SELECT event_type FROM webhook_deliveries") == [("import.failed",)]
        (request,) = receiver.wait_for(1)
        assert request.json()["data"]["id"] == job["id"]
    finally:
        receiver.close()


def answer_of(sock: socket.socket) -> bytes:
    """The status line the server sent on a raw connection."""
    with sock, sock.makefile("rb") as answer:
        return answer.readline().strip()


def test_an_upload_terminated_before_its_last_byte_is_never_imported(
    live_worker, live_server, http, accounts, sql
):
    data, _ = hunt_file(1_000, seed=6)
    upload = Upload(live_server, None, http, accounts["admin"].token, data)
    with paused(live_worker):  # the import waits in the queue meanwhile
        job = http.post("/api/imports", json={"upload": upload.id}).json()
        piece = upload.open_piece(len(data))
        piece.sendall(data[: READ_BYTES + 10])
        upload.wait_for_offset(READ_BYTES)
        assert http.delete(upload.url, headers=TUS).status_code == 204  # "Cancel upload"
        piece.sendall(data[READ_BYTES + 10 :])  # what was already on its way
        answer_of(piece)
    done = finished(http, job["id"])
    assert done["status"] == "failed", done
    assert sql("SELECT count(*) FROM products") == [(0,)]


def test_a_piece_arriving_while_its_upload_is_terminated_is_answered_not_found(
    live_server, http, accounts
):
    data, _ = hunt_file(1_000, seed=6)
    upload = Upload(live_server, None, http, accounts["admin"].token, data)
    piece = upload.open_piece(len(data))
    piece.sendall(data[: READ_BYTES + 10])
    upload.wait_for_offset(READ_BYTES)
    assert http.delete(upload.url, headers=TUS).status_code == 204
    piece.sendall(data[READ_BYTES + 10 :])
    assert answer_of(piece).split(b" ")[1] in (b"404", b"410")


def test_a_chunked_piece_past_the_length_leaves_no_upload_full_but_unfinished(
    live_server, http, accounts, sql
):
    data, _ = hunt_file(300, seed=2)
    upload = Upload(live_server, None, http, accounts["admin"].token, data)
    piece = upload.open_piece(None)  # no Content-Length: the server learns the size late
    grown = data + b"GROWN-1,A row written while the file was sent\r\n"
    piece.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(grown), grown))
    assert answer_of(piece).split(b" ")[1] == b"413"
    offset = upload.head()
    (completed,) = sql("SELECT completed_at IS NOT NULL FROM uploads")[0]
    # either the piece is refused whole, or the upload is whole and finished
    assert offset < len(data) or completed, (offset, completed)
