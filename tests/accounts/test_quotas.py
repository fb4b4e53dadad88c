"""Quotas: unfinished imports per account (429) and free disk space (507), both refused before
a byte of the upload is read or stored."""

import io
import os
import shutil
import socket
from urllib.parse import urlsplit

from product_importer.extensions import db
from product_importer.imports import plans
from tests.conftest import client_with_token, http_client, paused
from tests.helpers import upload_csv, wait_until

from .test_hardening import raw_exchange, request_head

BOUNDARY = "quota-test-boundary"
# Of a body sent in two parts: past the 64 KiB the form parser reads at a time, so that the
# server has begun to store the file when the first part is in.
FIRST = 200 * 1024


def multipart(content: bytes) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
            f"Content-Type: text/csv\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def upload_head(url: str, token: str, length: int) -> str:
    """The head of a multipart upload to /api/imports announcing `length` bytes of body."""
    return request_head(
        "POST",
        url,
        "/api/imports",
        token,
        Content_Type=f"multipart/form-data; boundary={BOUNDARY}",
        Content_Length=length,
    )


def files_in(folder: str) -> set[str]:
    return set(os.listdir(folder)) if os.path.isdir(folder) else set()


def test_past_max_queued_imports_an_account_is_refused_429_before_its_upload_is_read(
    live_server, live_worker, accounts, client
):
    with paused(live_worker), http_client(live_server, accounts["editor"].token) as editor:
        for n in range(3):  # MAX_QUEUED_IMPORTS is 3 by default; the worker holds them queued
            assert upload_csv(editor, f"sku,name\nQ-{n},Q\n").status_code == 202
        # announced; only its start is sent
        head = upload_head(live_server, accounts["editor"].token, 100 * 1024 * 1024)
        status, _, body = raw_exchange(live_server, head, multipart(b"sku,name\n")[:200])
        with http_client(live_server, accounts["admin"].token) as admin:
            others = upload_csv(admin, "sku,name\nA-1,A\n")  # the quota is per account
        for job in client.get("/api/imports").get_json()["items"]:
            client.post(f"/api/imports/{job['id']}/cancel")

    assert status == 429
    assert b"the limit is 3" in body and b"too_many" in body
    assert others.status_code == 202
    assert len(client.get("/api/imports").get_json()["items"]) == 4


def test_the_quota_counts_only_unfinished_imports(make_app, accounts, live_worker):
    app = make_app(MAX_QUEUED_IMPORTS=1)
    editor = client_with_token(app, accounts["editor"].token)

    def upload():
        return editor.post("/api/imports", data={"file": (io.BytesIO(b"sku,name\nA,B\n"), "a.csv")})

    with paused(live_worker):  # imports stay queued until cancelled
        first = upload()
        assert first.status_code == 202
        assert upload().status_code == 429
        assert editor.post(f"/api/imports/{first.get_json()['id']}/cancel").status_code == 202
        second = upload()
        assert second.status_code == 202
        assert editor.post(f"/api/imports/{second.get_json()['id']}/cancel").status_code == 202


def test_an_applied_plan_counts_against_who_applied_it_not_who_uploaded_it(
    make_app, accounts, live_worker
):
    app = make_app(MAX_QUEUED_IMPORTS=1)
    editor = client_with_token(app, accounts["editor"].token)
    admin = client_with_token(app, accounts["admin"].token)

    def upload(client, **fields):
        data = {"file": (io.BytesIO(b"sku,name\nA,B\n"), "a.csv"), **fields}
        return client.post("/api/imports", data=data)

    def status(job_id):
        return editor.get(f"/api/imports/{job_id}").get_json()["status"]

    plan = upload(editor, plan="true").get_json()["id"]
    wait_until(lambda: status(plan) == "planned", "planned")
    with paused(live_worker):  # the applied plan stays queued until cancelled
        assert admin.post(f"/api/imports/{plan}/apply").status_code == 202
        uploader = upload(editor)
        applier = upload(admin)
        for job in editor.get("/api/imports").get_json()["items"]:
            editor.post(f"/api/imports/{job['id']}/cancel")

    assert uploader.status_code == 202, uploader.get_json()
    assert applier.status_code == 429
    assert (
        "You have 1 import waiting or running; the limit is 1."
        in applier.get_json()["error"]["message"]
    )


def test_a_plan_applied_from_the_command_line_counts_against_nobodys_queue(
    make_app, accounts, live_worker
):
    app = make_app(MAX_QUEUED_IMPORTS=1)
    editor = client_with_token(app, accounts["editor"].token)

    def upload(**fields):
        data = {"file": (io.BytesIO(b"sku,name\nA,B\n"), "a.csv"), **fields}
        return editor.post("/api/imports", data=data)

    job_id = upload(plan="true").get_json()["id"]
    wait_until(
        lambda: editor.get(f"/api/imports/{job_id}").get_json()["status"] == "planned", "planned"
    )
    with paused(live_worker):  # the applied plan stays queued until cancelled
        with app.app_context():
            plans.apply(db.session, job_id, applied_by=None)  # what `import --apply` does first
            db.session.commit()
        again = upload()
        for job in editor.get("/api/imports").get_json()["items"]:
            editor.post(f"/api/imports/{job['id']}/cancel")

    assert again.status_code == 202, again.get_json()


def test_an_upload_that_would_fill_the_disk_is_507_and_nothing_is_stored(make_app, accounts):
    app = make_app(MIN_FREE_DISK_BYTES=2**62)  # more than any disk has free
    folder = app.config["UPLOAD_FOLDER"]
    before = files_in(folder)
    body = io.BytesIO(multipart(b"sku,name\nA,B\n" * 1000))

    response = client_with_token(app, accounts["editor"].token).post(
        "/api/imports",
        input_stream=body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        content_length=len(body.getvalue()),
    )

    assert response.status_code == 507
    error = response.get_json()["error"]
    assert error["code"] == "insufficient_storage" and "disk space" in error["message"]
    assert body.tell() == 0  # not a byte of the upload was read
    assert files_in(folder) == before
    imports = client_with_token(app, accounts["editor"].token).get("/api/imports").get_json()
    assert imports["items"] == []  # no import was made for it


def test_an_upload_refused_by_the_quota_it_met_while_arriving_leaves_no_file(
    live_server, live_worker, accounts, client, test_env
):
    # The quota is looked at before the body is read, and again as the job is made: another
    # import can fill it meanwhile. The file stored was kept on disk for good before.
    folder = test_env["UPLOAD_FOLDER"]
    body = multipart(b"sku,name\n" + b"R-1,Refused\n" * 30_000)  # 360 KB
    head = upload_head(live_server, accounts["editor"].token, len(body))
    parts = urlsplit(live_server)
    with paused(live_worker), http_client(live_server, accounts["editor"].token) as editor:
        for n in range(2):  # MAX_QUEUED_IMPORTS is 3 by default; the worker holds them queued
            assert upload_csv(editor, f"sku,name\nQ-{n},Q\n").status_code == 202
        with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
            sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body[:FIRST])
            wait_until(lambda: any(name.endswith(".part") for name in files_in(folder)), "read")
            assert upload_csv(editor, "sku,name\nQ-2,Q\n").status_code == 202  # the third
            kept = {name for name in files_in(folder) if not name.endswith(".part")}
            sock.sendall(body[FIRST:])
            answer = sock.makefile("rb").read()
        for job in client.get("/api/imports").get_json()["items"]:
            client.post(f"/api/imports/{job['id']}/cancel")

    assert answer.startswith(b"HTTP/1.1 429"), answer[:300]
    assert b"the limit is 3" in answer
    assert files_in(folder) == kept  # the refused upload's file removed, the .part closed


def test_a_piece_of_an_upload_whose_rest_would_fill_the_disk_is_507_and_can_be_sent_later(
    make_app, accounts
):
    # The space free when an upload begins is set aside for none: uploads side by side filled
    # the disk past MIN_FREE_DISK_BYTES, each piece taken whatever was left.
    tus = {"Tus-Resumable": "1.0.0"}
    piece = {**tus, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    data = b"sku,name\nA-1,Apple\n"
    roomy = client_with_token(make_app(), accounts["editor"].token)
    created = roomy.post("/api/uploads", headers={**tus, "Upload-Length": str(len(data))})
    url = created.headers["Location"]
    full = client_with_token(make_app(MIN_FREE_DISK_BYTES=2**62), accounts["editor"].token)

    refused = full.patch(url, data=data, headers=piece)
    sent_later = roomy.patch(url, data=data, headers=piece)

    assert refused.status_code == 507
    assert "too little disk space" in refused.get_json()["error"]["message"]
    assert sent_later.status_code == 204
    assert sent_later.headers["Upload-Offset"] == str(len(data))


def test_an_upload_in_chunks_is_taken_as_the_largest_file_against_the_free_disk(make_app, accounts):
    # Sent in chunks, an upload says not its size: it was checked as 0 bytes, then stored
    # whatever was left. Here the disk has room for a small file, not for the largest.
    probe = make_app()
    os.makedirs(probe.config["UPLOAD_FOLDER"], exist_ok=True)
    free = shutil.disk_usage(probe.config["UPLOAD_FOLDER"]).free
    app = make_app(MIN_FREE_DISK_BYTES=free - probe.config["MAX_UPLOAD_BYTES"] // 2)
    editor = client_with_token(app, accounts["editor"].token)
    body = multipart(b"sku,name\nA,B\n")
    kind = f"multipart/form-data; boundary={BOUNDARY}"

    sized = editor.post("/api/imports", data=body, content_type=kind)
    chunked = editor.post(
        "/api/imports",
        input_stream=io.BytesIO(body),
        content_type=kind,
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert sized.status_code == 202, sized.get_json()
    assert chunked.status_code == 507, chunked.get_json()
    assert "too little disk space" in chunked.get_json()["error"]["message"]
    editor.post(f"/api/imports/{sized.get_json()['id']}/cancel")
