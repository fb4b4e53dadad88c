"""Resumable uploads against a running server, with a real tus client (tuspy), both modes."""

import io
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text as sql_text
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError

from product_importer.imports import remote
from tests.conftest import BIN, http_client, paused
from tests.helpers import import_csv, wait_for_job, wait_until
from tests.imports.conftest import (
    PIECE,
    TUS,
    assert_retry_refused,
    generate,
    products_by_key,
    wait_for,
)


def tus_client(served, accounts) -> tus.TusClient:
    headers = {"Authorization": f"Bearer {accounts['admin'].token}"}
    return tus.TusClient(f"{served.url}/api/uploads", headers=headers)


def offset_of(http, url: str) -> int:
    response = http.head(url, headers=TUS)
    assert response.status_code == 200
    return int(response.headers["Upload-Offset"])


def stored_bytes(served, url: str) -> bytes:
    upload_id = url.rsplit("/", 1)[-1]
    with served.engine.connect() as conn:
        path = conn.exec_driver_sql(
            "SELECT file_path FROM uploads WHERE id = ?"
            if served.mode == "embedded"
            else "SELECT file_path FROM uploads WHERE id = %s",
            (upload_id,),
        ).scalar_one()
    with open(path, "rb") as stored:
        return stored.read()


def test_tuspy_uploads_in_pieces_and_resumes_from_the_offset(served, any_http, accounts):
    data = generate(2_000).data
    client = tus_client(served, accounts)
    first = client.uploader(
        file_stream=io.BytesIO(data), chunk_size=16 * 1024, metadata={"filename": "p.csv"}
    )
    first.upload(stop_at=len(data) // 2)
    assert offset_of(any_http, first.url) == first.offset >= len(data) // 2
    # another client (a new process, say) resumes from the URL: it asks the offset with HEAD
    second = client.uploader(file_stream=io.BytesIO(data), url=first.url, chunk_size=64 * 1024)
    assert second.offset == first.offset
    second.upload()
    assert offset_of(any_http, first.url) == len(data)
    assert stored_bytes(served, first.url) == data


def send_part_and_drop(url: str, token: str, data: bytes, sent: int) -> None:
    """PATCH all of `data` at offset 0 by its Content-Length, send `sent` bytes, hang up."""
    parts = urlsplit(url)
    head = (
        f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
        "Content-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(head.encode() + data[:sent])
        sock.shutdown(socket.SHUT_WR)  # the connection drops mid-piece


def wait_for_offset(http, url: str, expected: int) -> None:
    """Wait until the server has noticed the drop and kept what arrived."""
    while (offset := offset_of(http, url)) != expected:
        assert offset < expected
        time.sleep(0.05)


def test_a_connection_dropped_mid_piece_keeps_what_arrived(served, any_http, accounts):
    data = generate(2_000).data
    created = any_http.post("/api/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    assert created.status_code == 201
    url = served.url + created.headers["Location"]
    sent = len(data) // 3
    send_part_and_drop(url, accounts["admin"].token, data, sent)
    wait_for_offset(any_http, url, sent)
    # the tus client asks the offset and finishes from there
    rest = tus_client(served, accounts).uploader(file_stream=io.BytesIO(data), url=url)
    assert rest.offset == sent
    rest.upload()
    assert stored_bytes(served, url) == data


def finished(http, job_id: int) -> dict:
    return wait_for(http, job_id, lambda job: job["status"] not in ("queued", "running"), "done")


def start_upload(http, served, data: bytes, sent: int) -> str:
    """Create an upload of `data` and send its first `sent` bytes; return its URL."""
    created = http.post("/api/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    url = served.url + created.headers["Location"]
    if sent:
        piece = http.patch(url, content=data[:sent], headers={**PIECE, "Upload-Offset": "0"})
        assert piece.status_code == 204
    return url


def test_a_finished_upload_is_imported(served, any_http, any_catalog):
    file = generate(3_000)
    url = start_upload(any_http, served, file.data, len(file.data))
    response = any_http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]})
    assert response.status_code == 202
    job = finished(any_http, response.json()["id"])
    assert job["status"] == "completed", job
    assert job["created"] == len(file.expected)
    assert products_by_key(any_catalog()) == file.expected


def test_uploaded_files_are_readable_by_the_servers_user_alone(served, any_http):
    # A resumable upload's file was made with open(): with the usual umask (022), any user of
    # the machine could read the catalog; a multipart upload's was this user's alone.
    data = generate(50).data
    url = start_upload(any_http, served, data, len(data))
    small = any_http.post("/api/imports", files={"file": ("small.csv", data, "text/csv")})
    assert small.status_code == 202
    with served.engine.connect() as conn:
        paths = conn.exec_driver_sql("SELECT file_path FROM uploads").scalars().all()
        paths += conn.exec_driver_sql("SELECT file_path FROM import_jobs").scalars().all()
    assert len(paths) == 2
    assert [oct(os.stat(path).st_mode & 0o777) for path in paths] == ["0o600"] * 2, url


def test_an_import_asked_for_again_while_it_waits_for_its_upload_is_the_same_import(
    served, any_http, any_catalog
):
    # The upload page asks for the import as the upload starts; reloaded before that answer
    # came, it asked again on resuming: a second import of the same bytes was queued.
    file = generate(3_000)
    half = len(file.data) // 2
    url = start_upload(any_http, served, file.data, half)
    asked = {"upload": url.rsplit("/", 1)[-1]}
    first = any_http.post("/api/imports", json=asked)
    again = any_http.post("/api/imports", json=asked)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == first.headers["Location"]

    other = any_http.post("/api/imports", json={**asked, "plan": True})
    assert other.status_code == 409
    error = other.json()["error"]
    assert error["details"] == {"import": first.json()["id"]}
    assert f"already being imported, as import #{first.json()['id']}" in error["message"]

    rest = any_http.patch(
        url, content=file.data[half:], headers={**PIECE, "Upload-Offset": str(half)}
    )
    assert rest.status_code == 204
    job = finished(any_http, first.json()["id"])
    assert (job["status"], job["created"]) == ("completed", len(file.expected)), job
    assert any_http.get("/api/imports").json()["total"] == 1
    assert products_by_key(any_catalog()) == file.expected


def test_two_asks_for_an_uploads_import_at_once_queue_one_import(
    http, live_server, accounts, holding, live_worker
):
    data = b"sku,name\nONCE-1,Imported once\n"
    created = http.post("/api/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    upload_id = created.headers["Location"].rsplit("/", 1)[-1]

    def ask_for_import():
        with http_client(live_server, accounts["admin"].token) as own:
            return own.post("/api/imports", json={"upload": upload_id})

    with ThreadPoolExecutor(max_workers=2) as pool:
        with holding("SELECT id FROM uploads FOR UPDATE") as held:
            asks = [pool.submit(ask_for_import) for _ in range(2)]
            held.wait_until_blocking()  # one has read it unlocked and waits to lock it,
            wait_until(lambda: waits_behind(held), "the other ask to wait behind it")
        answers = [ask.result() for ask in asks]
    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert http.get("/api/imports").json()["total"] == 1


def test_an_import_reads_while_the_upload_arrives_and_applies_after_its_last_byte(
    served, any_http, any_catalog
):
    file = generate(20_000)
    half = len(file.data) // 2
    url = start_upload(any_http, served, file.data, half)
    response = any_http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]})
    assert response.status_code == 202
    job_id = response.json()["id"]
    reading = wait_for(any_http, job_id, lambda job: job["rows_processed"] > 0, "reading")
    assert reading["phase"] == "reading" and reading["bytes_processed"] <= half
    assert any_catalog() == []  # nothing applied before the last byte
    rest = any_http.patch(
        url, content=file.data[half:], headers={**PIECE, "Upload-Offset": str(half)}
    )
    assert rest.status_code == 204
    job = finished(any_http, job_id)
    assert job["status"] == "completed", job
    assert job["rows_processed"] == file.rows
    assert products_by_key(any_catalog()) == file.expected


def test_a_dropped_upload_never_leaves_a_half_written_import(served, any_http, any_catalog):
    file = generate(20_000)  # its first half holds a batch of rows (5,000)
    url = start_upload(any_http, served, file.data, len(file.data) // 2)
    response = any_http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]})
    job_id = response.json()["id"]
    wait_for(any_http, job_id, lambda job: job["rows_processed"] > 0, "reading")
    assert any_http.delete(url, headers=TUS).status_code == 204  # the upload is given up
    job = finished(any_http, job_id)
    assert job["status"] == "failed"
    assert "cancelled or expired before its last byte" in job["error"]
    assert any_catalog() == []


def test_an_upload_refused_at_its_last_byte_fails_its_import(served, any_http, any_catalog):
    data = b"sku,name\r\nA-1,Apple\r\n\x00\x00"
    url = start_upload(any_http, served, data, 10)
    response = any_http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]})
    job_id = response.json()["id"]
    last = any_http.patch(url, content=data[10:], headers={**PIECE, "Upload-Offset": "10"})
    assert last.status_code == 422
    job = finished(any_http, job_id)
    assert job["status"] == "failed" and "binary" in job["error"]
    assert any_catalog() == []


def test_the_command_line_plans_on_a_remote_server_and_says_how_to_apply(
    served, accounts, any_catalog, tmp_path
):
    path = tmp_path / "remote.csv"
    path.write_text("sku,name\nA-1,Apple\nB-2,Banana\n")
    args = [str(BIN / "product-importer"), "import", str(path), "--plan", "--url", served.url]
    token = ["--token", accounts["editor"].token]

    run = subprocess.run([*args, *token], capture_output=True, text=True, timeout=300)

    assert run.returncode == 0, run.stderr
    shown = summary(run.stdout)
    assert (shown["Outcome"], shown["Rows read"], shown["Would be created"]) == (
        "Planned",
        "2",
        "2",
    )
    job_id = run.stdout.split("/imports/")[1].split()[0]
    assert (
        f"Nothing has changed yet. Review and apply it: {served.url}/imports/{job_id}" in run.stdout
    )
    assert any_catalog() == []


def test_the_command_line_says_which_option_is_wrong_before_sending_the_file(
    served, accounts, tmp_path, any_http
):
    path = tmp_path / "remote.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    args = [str(BIN / "product-importer"), "import", str(path), "--max-invalid", "lots"]
    token = ["--token", accounts["editor"].token]

    run = subprocess.run(
        [*args, "--url", served.url, *token], capture_output=True, text=True, timeout=300
    )

    assert run.returncode == 2  # as without --url: it used to upload, and the server refused
    assert "Error: Some import options are not valid. --max-invalid: A count of rows" in run.stderr
    assert any_http.get("/api/imports").json()["items"] == []


def test_a_binary_file_read_before_its_last_byte_fails_as_binary(served, any_http, any_catalog):
    # A PNG's first line is "\x89PNG": read as a header, it would ask for a column mapping
    # that can never work. The reader sees the NUL bytes first, as the upload's check would.
    data = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 400
    sent = 80 * 1024  # more than a read waits for: the reader starts before the last byte
    url = start_upload(any_http, served, data, sent)
    response = any_http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]})
    job = finished(any_http, response.json()["id"])
    assert job["status"] == "failed"
    assert job["error"].startswith("The file is binary, not a CSV"), job["error"]
    assert job["header"] is None  # nothing to map
    assert any_catalog() == []
    # Its upload, left unfinished, refused nothing; yet a retry would fail the same way.
    assert_retry_refused(any_http, job, "binary_file", "Export the products as CSV")


def test_an_upload_cancelled_before_its_last_byte_is_not_offered_a_retry(served, any_http):
    # As the upload page's Cancel does: cancel the import that follows the upload, then
    # remove the upload. Its file never arrived whole: retrying could only fail.
    file = generate(20_000)
    url = start_upload(any_http, served, file.data, len(file.data) // 2)
    job_id = any_http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]}).json()["id"]
    wait_for(any_http, job_id, lambda job: job["rows_processed"] > 0, "reading")
    assert any_http.post(f"/api/imports/{job_id}/cancel").status_code == 202
    assert finished(any_http, job_id)["status"] == "cancelled"
    assert any_http.delete(url, headers=TUS).status_code == 204

    retried = any_http.post(f"/api/imports/{job_id}/retry", json={})
    assert retried.status_code == 409
    assert "never arrived whole" in retried.json()["error"]["message"]
    assert "Upload the file again" in retried.json()["error"]["message"]
    for page in (f"/imports/{job_id}", "/imports"):
        html = any_http.get(page).text
        assert 'data-action="retry"' not in html and "data-retry=" not in html, page
        assert "never arrived whole" in html, page
    # the upload page (/?job=ID) reads the job's JSON: it says so too
    refusal = any_http.get(f"/api/imports/{job_id}").json()["retry_refusal"]
    assert refusal == retried.json()["error"]["message"]
    listed = any_http.get("/api/imports").json()["items"]
    assert [job["retry_refusal"] for job in listed if job["id"] == job_id] == [refusal]
    # its reason says the same, not the shared "Retry it to run it again"
    error = any_http.get(f"/api/imports/{job_id}").json()["error"]
    assert "Upload the file again" in error and "Retry it" not in error, error


def test_a_refused_upload_is_not_offered_a_retry(served, any_http):
    data = b"sku,name\r\nA-1,Apple\r\n\x00\x00"
    url = start_upload(any_http, served, data, 10)
    job_id = any_http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]}).json()["id"]
    last = any_http.patch(url, content=data[10:], headers={**PIECE, "Upload-Offset": "10"})
    assert last.status_code == 422
    assert finished(any_http, job_id)["status"] == "failed"

    retried = any_http.post(f"/api/imports/{job_id}/retry", json={})
    assert retried.status_code == 409
    assert retried.json()["error"]["message"].startswith("This upload was refused: The file is")
    html = any_http.get(f"/imports/{job_id}").text
    assert 'data-action="retry"' not in html


def test_the_command_line_imports_into_a_remote_server_over_tus(
    served, accounts, any_catalog, tmp_path
):
    file = generate(3_000)
    path = tmp_path / "remote.csv"
    path.write_bytes(file.data)
    args = [str(BIN / "product-importer"), "import", str(path), "--url", served.url]
    run = subprocess.run(
        [*args, "--token", accounts["editor"].token], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    shown = summary(run.stdout)
    assert (shown["Outcome"], shown["Rows read"]) == ("Completed", f"{file.rows:,}")
    assert shown["Created"] == f"{len(file.expected):,}"
    assert products_by_key(any_catalog()) == file.expected
    with served.engine.connect() as conn:
        upload = conn.exec_driver_sql("SELECT filename, completed_at FROM uploads").one()
    assert upload.filename == "remote.csv" and upload.completed_at is not None


class PieceGate:
    """A proxy in front of the server that holds every upload piece (PATCH) after the first
    until `open()`: what the command sends after its import failed is then up to it, not to
    how soon the worker read the first piece. It counts the pieces (`pieces`), and drops the
    connection of piece number `cut` after its first bytes, as a flaky link would."""

    def __init__(self, target_url: str, *, cut: int | None = None):
        self.cut = cut
        parts = urlsplit(target_url)
        self.target = (parts.hostname, parts.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.opened = threading.Event()
        self.pieces = 0
        self.counting = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def open(self) -> None:
        self.opened.set()

    def close(self) -> None:
        self.opened.set()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        """Pass one connection through; tuspy opens one per piece."""
        with client:
            first = client.recv(65536)
            number = self._count(first)
            if number > 1:
                self.opened.wait()
            with socket.create_connection(self.target) as server:
                server.sendall(first)
                if number == self.cut:
                    return  # both connections close with the piece half sent
                back = threading.Thread(target=pipe, args=(server, client), daemon=True)
                back.start()
                pipe(client, server)
                back.join()

    def _count(self, first: bytes) -> int:
        """The piece's number if the connection sends one (a PATCH), else 0."""
        if not first.startswith(b"PATCH "):
            return 0
        with self.counting:
            self.pieces += 1
            return self.pieces


def pipe(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes until `source` ends, then end `target`'s side too."""
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the other side hung up


def import_through_gate(served, accounts, path) -> subprocess.CompletedProcess:
    """Run the command on `path` through a PieceGate, its second piece held until the import
    has failed; return the finished run."""
    gate = PieceGate(served.url)
    args = [str(BIN / "product-importer"), "import", str(path), "--url", gate.url]
    command = subprocess.Popen(
        [*args, "--token", accounts["editor"].token],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: job_status(served) == "failed", "the import failed")
        gate.open()
        stdout, stderr = command.communicate(timeout=300)
    finally:
        command.kill()
        gate.close()
    return subprocess.CompletedProcess(args, command.returncode, stdout, stderr)


def job_status(served) -> str | None:
    with served.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT status FROM import_jobs").scalar()


def received(served) -> int:
    """How many bytes of the file the server holds for its (one) import."""
    with served.engine.connect() as conn:
        path = conn.exec_driver_sql("SELECT file_path FROM import_jobs").scalar_one()
    return os.path.getsize(path)


def summary(stdout: str) -> dict[str, str]:
    """The summary table's rows, name -> value."""
    return dict(
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in stdout.splitlines()
        if line.count("│") == 3
    )


def several_pieces(head: bytes) -> bytes:
    """`head`, then rows: six pieces of the command's upload."""
    row = b"B-2,Banana\r\n"
    return head + row * (6 * remote.PIECE_BYTES // len(row))


def test_the_command_line_stops_uploading_a_file_whose_bytes_failed_its_import(
    served, accounts, tmp_path
):
    # A NUL byte at the start: the import fails on the first piece, and no retry or mapping
    # could help. The command went on sending the whole file (up to 1 GB) before saying so.
    data = several_pieces(b"sku,name\r\nA-1,Apple\x00\r\n")
    path = tmp_path / "catalog.csv"
    path.write_bytes(data)

    run = import_through_gate(served, accounts, path)

    assert run.returncode == 1, run.stderr
    assert received(served) <= 2 * remote.PIECE_BYTES < len(data)
    with served.engine.connect() as conn:  # removed, as the page's Cancel removes it
        assert conn.exec_driver_sql("SELECT count(*) FROM uploads").scalar() == 0
    assert "The upload was stopped after " in run.stdout
    assert f"of {len(data) // 2**20} MB: the import failed on the file's own bytes" in run.stdout
    assert (summary(run.stdout)["Outcome"], summary(run.stdout)["Rows read"]) == ("Failed", "0")
    assert "Error: The file is binary, not a CSV (it holds NUL bytes)." in run.stderr
    assert "upload that file" in run.stderr  # what to do


def test_the_command_line_finishes_the_upload_of_a_file_that_lacks_a_column(
    served, accounts, tmp_path
):
    # The import fails at once, but a column mapping's retry reads the file as uploaded: it
    # must arrive whole, as the upload page lets it.
    data = several_pieces(b"title,ref\r\n")
    path = tmp_path / "catalog.csv"
    path.write_bytes(data)

    run = import_through_gate(served, accounts, path)

    assert run.returncode == 1, run.stderr
    assert received(served) == len(data)
    complete = "SELECT count(*) FROM uploads WHERE completed_at IS NOT NULL"
    with served.engine.connect() as conn:
        assert conn.exec_driver_sql(complete).scalar() == 1
    assert "The upload was stopped" not in run.stdout
    assert "Error: Missing required columns: sku, name." in run.stderr


def remote_import(served, accounts, path, gate) -> subprocess.CompletedProcess:
    """Run the command on `path` through an open PieceGate."""
    gate.open()
    args = [str(BIN / "product-importer"), "import", str(path), "--url", gate.url]
    try:
        return subprocess.run(
            [*args, "--token", accounts["editor"].token],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        gate.close()


def test_the_command_line_says_at_once_why_the_server_refused_a_piece(served, accounts, tmp_path):
    # The server refuses the file at its last byte (binary). The command sent the refused piece
    # again ten times, three seconds apart, before saying why.
    path = tmp_path / "catalog.csv"
    path.write_bytes(b"sku,name\r\nA-1,Apple\x00\r\n")
    gate = PieceGate(served.url)

    run = remote_import(served, accounts, path, gate)

    assert run.returncode == 2  # the file refused, as the same file imported here
    assert gate.pieces == 1
    assert "Error: The file is binary, not a CSV (it holds NUL bytes)." in run.stderr


def test_the_command_line_sends_a_dropped_piece_again(served, accounts, any_catalog, tmp_path):
    file = generate(3_000)
    assert len(file.data) > 4 * 65536  # cut after its first bytes, the piece is half sent
    path = tmp_path / "catalog.csv"
    path.write_bytes(file.data)
    gate = PieceGate(served.url, cut=1)

    run = remote_import(served, accounts, path, gate)

    assert run.returncode == 0, run.stderr
    assert gate.pieces > 1
    shown = summary(run.stdout)
    assert (shown["Outcome"], shown["Rows read"]) == ("Completed", f"{file.rows:,}")
    assert products_by_key(any_catalog()) == file.expected


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (
            b'{"error": {"code": "too_large", "message": "The file is too large."}}',
            "The file is too large.",
        ),
        (
            b'{"error": {"code": "too_large"}}',
            "The upload failed: the server answered 413 (too_large).",
        ),
        (b"<html>Bad gateway</html>", "The upload failed: the server answered 413."),
    ],
)
def test_the_remote_import_says_why_an_upload_failed_in_words(content, said):
    failure = TusCommunicationError(None, status_code=413, response_content=content)

    assert remote._tus_error(failure, "https://products.example.com") == said


def test_an_import_asked_for_as_the_last_piece_arrives_still_names_the_same_file(
    http, live_server, accounts, holding, live_worker
):
    # The page asks for the import while the upload's last piece is on its way. The request
    # that queues the import read the upload unfinished; the last piece then compared the whole
    # file with earlier imports before that import was committed, so no one ever did: no
    # "identical to import #N" warning, no SHA-256. Held here at that point: the queueing
    # request waits (its job written, not committed) while the last piece arrives.
    data = b"sku,name\nSAME-1,Same file\n"
    first = import_csv(http, data, filename="monday.csv")
    created = http.post("/api/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    url = created.headers["Location"]
    token = accounts["admin"].token

    def ask_for_import():
        with http_client(live_server, token) as own:
            return own.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]})

    def send_last_piece():
        with http_client(live_server, token) as own:
            return own.patch(url, content=data, headers={**PIECE, "Upload-Offset": "0"})

    with ThreadPoolExecutor(max_workers=2) as pool:
        with holding("LOCK TABLE audit_log IN SHARE MODE") as held:
            asked = pool.submit(ask_for_import)
            held.wait_until_blocking()  # the import's request: its job written, not committed
            last = pool.submit(send_last_piece)
            # the piece has arrived, or waits for the import's request to end
            wait_until(lambda: last.done() or waits_behind(held), "the last piece to wait")
        assert last.result().status_code == 204
        assert asked.result().status_code == 202

    job = wait_for_job(http, asked.result().json()["id"])
    assert job["status"] == "completed"
    assert job["duplicate_of"] == first["id"]
    assert any(f"identical to import #{first['id']}" in warning for warning in job["warnings"])


def waits_behind(held) -> bool:
    """Whether a session waits for one that waits for the held transaction."""
    behind = (
        "SELECT count(*) FROM pg_stat_activity AS later WHERE EXISTS ("
        "  SELECT 1 FROM pg_stat_activity AS held_up"
        "  WHERE :pid = ANY(pg_blocking_pids(held_up.pid))"
        "    AND held_up.pid = ANY(pg_blocking_pids(later.pid)))"
    )
    with held.engine.connect() as conn:
        return conn.execute(sql_text(behind), {"pid": held.pid}).scalar() > 0


def test_a_cancel_asked_before_an_import_gave_way_to_its_stalled_upload_wins_over_removal(
    app, http, sql, live_worker, monkeypatch
):
    # The upload page's Discard cancels the import, then removes its upload. A run whose
    # upload stood still may give its job back to the queue before a heartbeat brought the
    # cancel: the job waits there, its cancel asked, when the removal comes.
    from product_importer.imports import progress, queue

    monkeypatch.setitem(app.config, "UPLOAD_STALL_SECONDS", 0)  # gives way at the first wait
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 3600)  # no beat brings the cancel
    data = generate(20_000).data
    created = http.post("/api/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    url = created.headers["Location"]
    half = {**PIECE, "Upload-Offset": "0"}
    assert http.patch(url, content=data[: len(data) // 2], headers=half).status_code == 204
    with paused(live_worker):  # the import runs here
        job_id = http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]}).json()["id"]
        with app.app_context(), queue.import_engine().connect() as conn:
            job = queue.claim_next(conn)
            assert job.id == job_id
            assert http.post(f"/api/imports/{job_id}/cancel").status_code == 202  # running
            queue.run_claimed(conn, job)
        waiting = "SELECT status, cancel_requested FROM import_jobs WHERE id = :id"
        assert sql(waiting, id=job_id) == [("queued", True)]  # back in the queue, cancel asked

        assert http.delete(url, headers=TUS).status_code == 204

    job = finished(http, job_id)
    assert job["status"] == "cancelled", job
    assert "Upload the file again" in job["error"], job
