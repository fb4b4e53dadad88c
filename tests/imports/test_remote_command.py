"""`product-importer import FILE --url URL`, against a real server: the summary a person reads
at the end, and what the command does when the server stops answering for a while."""

import collections
import contextlib
import email.utils
import http.server
import json
import math
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
from click.testing import CliRunner
from tusclient.exceptions import TusCommunicationError

from product_importer import cli
from product_importer.imports import remote
from product_importer.imports.failures import CANCELLED_MESSAGE
from product_importer.tls import CA_VARIABLES
from tests.conftest import BIN
from tests.helpers import wait_until
from tests.imports.conftest import wait_for

from .test_tus_served import PieceGate, pipe, several_pieces, summary


def raw_answer(status: bytes, content_type: bytes, body: bytes, more: bytes = b"") -> bytes:
    """An HTTP answer as its bytes, for the proxy below to send; `more` holds more headers,
    each ending in CRLF."""
    head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nConnection: close\r\n" % (status, content_type)
    return head + more + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def asking_to_wait(status: bytes, retry_after: str) -> bytes:
    """A proxy's answer `status` asking to be asked again after `retry_after` (Retry-After)."""
    more = b"Retry-After: %s\r\n" % retry_after.encode()
    return raw_answer(status, b"text/html", b"<h1>Busy</h1>", more)


def api_error(message: str) -> bytes:
    """The API's JSON error of `message`."""
    return json.dumps({"error": {"code": "x", "message": message, "details": None}}).encode()


BODY = b"<h1>502 Bad Gateway</h1>"
HANG = b"(no answer)"
BAD_GATEWAY = raw_answer(b"502 Bad Gateway", b"text/html", BODY)
UNAVAILABLE = raw_answer(b"503 Service Unavailable", b"text/html", b"<h1>503</h1>")
SERVER_ERROR = raw_answer(
    b"500 Internal Server Error", b"application/json", api_error("Reading the job failed (a bug)")
)


class Outage:
    """A proxy in front of the server that passes everything through until `fail(answer)`:
    then it cuts the connections it carries, and answers each request with `answer` (a proxy's
    502; b"" hangs up, as a server restarting does), counting them in `failed`, and each
    answer's in `answered[answer]`, until `end()`. `fail(answer, only=b"PATCH ")` fails the
    requests of that method alone (of those methods, given a tuple), the others passed through;
    with answer HANG, they are never answered (until `close()`); `fail(answer, times=1)` ends
    after that many answers. Every request is looked at, those a client sends on a connection
    kept alive as its first (a request failed ends its connection), up to one with a chunked
    body: the rest of its connection is passed on as it comes. `refuse()` stops
    listening, as a server restarting does, until `listen_again()`. Each request line is noted
    in `seen`, with the time it came (`time.time()`), and each failed request's time in
    `failed_at`.
    """

    def __init__(self, target_url: str):
        parts = urlsplit(target_url)
        self.target = (parts.hostname, parts.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.answer: bytes | None = None
        self.only = b""
        self.times: int | None = None
        self.failed = 0
        self.failed_at: list[float] = []
        self.seen: list[tuple[float, bytes]] = []
        self.answered: collections.Counter[bytes] = collections.Counter()
        self.carried: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.closed = threading.Event()
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def fail(
        self, answer: bytes, only: bytes | tuple[bytes, ...] = b"", times: int | None = None
    ) -> None:
        with self.lock:
            self.answer, self.only, self.times = answer, only, times
            if not only:
                self._cut_carried()

    def _cut_carried(self) -> None:
        for carried in self.carried:
            with contextlib.suppress(OSError):  # its other side hung up first
                carried.shutdown(socket.SHUT_RDWR)

    def end(self) -> None:
        with self.lock:
            self.answer = None

    def close(self) -> None:
        self.closed.set()
        self.listener.close()

    def refuse(self) -> None:
        """Cut the connections carried and stop listening: new ones are refused."""
        with self.lock:
            for carried in self.carried:
                carried.shutdown(socket.SHUT_RDWR)
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes its accept(), which close() does not
        self.listener.close()

    def listen_again(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", urlsplit(self.url).port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """Pass each request of `client`'s connection on to the server, on one connection
        there, until one is failed: its answer then ends the connection."""
        server, back, pending = None, None, b""
        try:
            while (request := _request_head(client, pending)) is not None:
                head, pending = request
                if (answer := self._look_at(client, head)) is not None:
                    self._fail_request(client, answer)
                    return
                if server is None:
                    server = socket.create_connection(self.target)
                    back = threading.Thread(target=pipe, args=(server, client), daemon=True)
                    back.start()
                pending = _pass_on(head, pending, client, server)
                if pending is None:  # a body of unknown length: the rest went through as it came
                    return
        except OSError:
            pass  # a side hung up, or was cut
        finally:
            with self.lock:
                self.carried.discard(client)
            if server is not None:  # no more requests: it ends once it has answered, piped back
                with contextlib.suppress(OSError):  # it hung up first
                    server.shutdown(socket.SHUT_WR)
                back.join()
                server.close()
            client.close()

    def _look_at(self, client: socket.socket, head: bytes) -> bytes | None:
        """Note the request of `head`; return the answer that fails it (None: passed on)."""
        with self.lock:
            self.seen.append((time.time(), head.split(b"\r\n", 1)[0]))
            answer = self.answer if head.startswith(self.only) else None
            if answer is None:
                self.carried.add(client)
                return None
            self.failed += 1
            self.failed_at.append(time.time())
            self.answered[answer] += 1
            self._count_down()
            return answer

    def _fail_request(self, client: socket.socket, answer: bytes) -> None:
        """Answer a request with `answer`; HANG never does (until `close()`)."""
        if answer is HANG:
            self.closed.wait()
        else:
            client.sendall(answer)  # b"" sends nothing: the connection ends unanswered

    def _count_down(self) -> None:
        if self.times is not None:
            self.times -= 1
            if self.times == 0:
                self.answer = None

    def seen_at(self, start: bytes) -> list[float]:
        """When the requests whose line starts with `start` came."""
        with self.lock:
            return [at for at, line in self.seen if line.startswith(start)]


def _request_head(client: socket.socket, pending: bytes) -> tuple[bytes, bytes] | None:
    """The head of the next request on `client`, its first bytes in `pending`, and the bytes
    read past it; None if the client hung up first."""
    while b"\r\n\r\n" not in pending:
        if not (chunk := client.recv(65536)):
            return None
        pending += chunk
    end = pending.index(b"\r\n\r\n") + 4
    return pending[:end], pending[end:]


def _pass_on(
    head: bytes, pending: bytes, client: socket.socket, server: socket.socket
) -> bytes | None:
    """Send the request of `head` and its body (its first bytes in `pending`) on to `server`;
    return the bytes read past it (the next request's). A body whose length the head does not
    say (chunked) is passed on with the rest of the connection as it comes: None."""
    if re.search(rb"\r\nTransfer-Encoding:", head, re.IGNORECASE):
        server.sendall(head + pending)
        pipe(client, server)
        return None
    length = re.search(rb"\r\nContent-Length:\s*(\d+)", head, re.IGNORECASE)
    left = int(length[1]) if length else 0
    body, pending = pending[:left], pending[left:]
    server.sendall(head + body)
    left -= len(body)
    while left:
        if not (chunk := client.recv(min(left, 65536))):
            raise ConnectionResetError("the client hung up within a body")
        server.sendall(chunk)
        left -= len(chunk)
    return pending


@pytest.fixture
def start_import():
    """Return a function that starts the command on `path` for the server at `url`; whatever it
    started is stopped when the test ends (one that hangs must not outlive its test)."""
    started: list[subprocess.Popen] = []

    def start(path, url: str, token: str, *options: str) -> subprocess.Popen:
        args = [str(BIN / "product-importer"), "import", str(path), "--url", url]
        args += ["--token", token, *options]
        started.append(
            subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
        return started[-1]

    yield start
    for command in started:
        command.kill()
        command.communicate()  # reaped, its pipes closed


def ended(command: subprocess.Popen) -> bool:
    return command.poll() is not None


def upload_complete(sql) -> bool:
    return sql("SELECT count(*) FROM uploads WHERE completed_at IS NOT NULL")[0][0] == 1


def removed_as_said(url: str, token: str, sql) -> None:
    """A tus DELETE at the address the command said its upload stays removes it."""
    headers = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    assert requests.delete(url, headers=headers).status_code == 204
    assert sql("SELECT count(*) FROM uploads")[0][0] == 0


@pytest.fixture
def held_remote_import(
    tmp_path, start_import, live_server, live_worker, accounts, sql, held_file, holding_rejections
):
    """Return a context manager: the command imports the held file through an `Outage` in
    front of the server, as the editor; inside it, the upload is complete and the server's
    import stops half-way through reading. It gives the command and the proxy."""

    @contextlib.contextmanager
    def held():
        path = tmp_path / "held.csv"
        path.write_bytes(held_file.data)
        outage = Outage(live_server)
        with holding_rejections() as reading:
            command = start_import(path, outage.url, accounts["editor"].token)
            reading.wait_until_blocking()
            wait_until(lambda: upload_complete(sql), "the file uploaded")
            yield command, outage

    return held


@pytest.fixture
def import_one_row(tmp_path, live_server, accounts):
    """Import a file of one row through an `Outage` in front of the server, failing with
    `answer` as `failing` says (`Outage.fail`); the command's result and the proxy, passing
    everything through since (closed as the test ends)."""
    outages = []

    def run(answer: bytes, **failing):
        path = tmp_path / "catalog.csv"
        path.write_bytes(b"sku,name\r\nA-1,Apple\r\n")
        outage = Outage(live_server)
        outages.append(outage)
        outage.fail(answer, **failing)
        args = ["import", str(path), "--url", outage.url, "--token", accounts["editor"].token]
        result = CliRunner().invoke(cli.main, args)
        outage.end()
        return result, outage

    yield run
    for outage in outages:
        outage.close()


def test_a_remote_import_rides_out_a_server_that_stops_answering_for_a_while(
    held_file, held_remote_import
):
    # The first 502 of a proxy (or a restart's refused connection) ended the command with a
    # traceback (JSONDecodeError), the import going on unwatched.
    with held_remote_import() as (command, outage):
        outage.fail(BAD_GATEWAY)
        wait_until(lambda: outage.answered[BAD_GATEWAY] >= 3 or ended(command), "502s")
        outage.fail(b"")
        wait_until(lambda: outage.answered[b""] >= 3 or ended(command), "hang-ups")
        outage.end()
    stdout, stderr = command.communicate(timeout=300)
    outage.close()

    assert command.returncode == 0, stdout + stderr
    assert outage.answered[BAD_GATEWAY] >= 3, outage.answered
    assert outage.answered[b""] >= 3, outage.answered
    assert "Traceback" not in stderr
    shown = summary(stdout)
    assert shown["Outcome"] == "Completed with errors", stdout
    assert shown["Rows read"] == f"{held_file.rows:,}"
    assert shown["Rejected"] == f"{held_file.rejected:,}"


def test_a_server_that_answered_then_refuses_connections_is_waited_for_as_a_restart(
    tmp_path,
    monkeypatch,
    start_import,
    live_server,
    live_worker,
    accounts,
    http,
    sql,
    held_file,
    holding_rejections,
):
    # A refused connection on the command's first request is said at once (a wrong --url);
    # once the server has answered, it is a restart's, asked again until it listens again.
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # its bar is drawn, saying why it waits
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "held.csv"
    path.write_bytes(held_file.data)
    outage = Outage(live_server)

    with holding_rejections() as reading:  # stops half-way through reading
        command = start_import(path, outage.url, accounts["editor"].token)
        stderr = Collected(command.stderr)
        reading.wait_until_blocking()
        wait_until(lambda: upload_complete(sql), "the file uploaded")
        outage.refuse()
        wait_until(lambda: "connection refused" in stderr.text or ended(command), "refused")
        outage.listen_again()
    command.wait(timeout=300)
    outage.close()

    assert command.returncode == 0, stderr.text[-1000:]
    assert "connection refused · asking again" in stderr.text
    (job,) = http.get("/api/imports").json()["items"]
    assert job["status"] == "completed_with_errors"


class Collected:
    """The text a stream gave so far (`text`), read on a thread of its own."""

    def __init__(self, stream):
        self.text = ""
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        while chunk := stream.read(1):
            self.text += chunk


def test_a_token_revoked_during_a_remote_import_stops_the_watch_saying_where_to_watch_it(
    tmp_path, start_import, live_server, live_worker, http, sql, held_file, holding_rejections
):
    # It ended with a traceback (KeyError: 'message', the 401's JSON read as the job's).
    path = tmp_path / "held.csv"
    path.write_bytes(held_file.data)
    token = http.post("/api/tokens", json={"name": "laptop", "role": "editor"}).json()

    with holding_rejections() as reading:  # stops half-way through reading
        command = start_import(path, live_server, token["token"])
        reading.wait_until_blocking()
        wait_until(lambda: upload_complete(sql), "the file uploaded")
        assert http.delete(f"/api/tokens/{token['id']}").status_code == 204
        stdout, stderr = command.communicate(timeout=300)
        (job,) = http.get("/api/imports").json()["items"]

    assert command.returncode == 1, stdout + stderr
    assert stderr.splitlines()[-1] == (
        f"Error: Stopped watching import {job['id']}: That token is not valid (unknown, "
        "expired, revoked, or its account deactivated). The import goes on on the server: "
        f"watch it at {live_server}/imports/{job['id']}"
    ), stderr
    assert job["status"] == "running"
    wait_for(http, job["id"], lambda job: job["status"] == "completed_with_errors", "ended")


def test_a_remote_import_ends_with_the_summary_and_where_to_get_its_rejected_rows(
    tmp_path, start_import, live_server, live_worker, accounts, http
):
    # It printed one line, "completed_with_errors: 3 rows read, ...", where the local command
    # prints a table; and no word of the rejected rows.
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\nB-2,Banana\na-1,Apple 2\n,Nameless\n")
    token = accounts["editor"].token

    command = start_import(path, live_server, token)
    stdout, stderr = command.communicate(timeout=300)

    assert command.returncode == 0, stdout + stderr
    shown = summary(stdout)
    assert shown["Outcome"] == "Completed with errors"
    assert (shown["Rows read"], shown["Created"], shown["Updated"]) == ("4", "2", "0")
    assert (shown["Unchanged"], shown["Rejected"]) == ("0", "1")
    assert shown["Repeated SKUs"] == "1 row repeated an earlier SKU; the last one was kept."
    assert re.match(r"\d", shown["Duration"]), shown  # "0.4 s", "2 min 3 s"...
    said = r"^Rejected rows, to fix and import again: on the import's page (\S+)\n"
    said += r"or with your token: (\S+)$"
    where = re.search(said, stdout, re.MULTILINE)
    assert where, stdout
    assert http.get(where[1]).status_code == 200
    rejected = http.get(where[2])
    assert rejected.status_code == 200 and "Nameless" in rejected.text


def test_a_file_whose_name_is_not_utf8_is_sent_under_a_name_that_is(
    tmp_path, start_import, live_server, live_worker, accounts, http
):
    # tus sends a name in UTF-8: a name in Latin-1 bytes ended the command in a traceback.
    path = tmp_path / os.fsdecode(b"caf\xe9.csv")
    path.write_text("sku,name\nA-1,Apple\n")

    command = start_import(path, live_server, accounts["editor"].token)
    stdout, stderr = command.communicate(timeout=300)

    assert command.returncode == 0, stdout + stderr
    (job,) = http.get("/api/imports").json()["items"]
    assert (job["filename"], job["status"]) == ("caf\ufffd.csv", "completed")


def test_an_upload_the_server_stops_taking_ends_saying_how_far_it_got_its_import_cancelled(
    import_one_row, tmp_path, monkeypatch, live_server, live_worker, accounts, http, sql
):
    # After its ten tries it said "The upload failed: the server answered 502." alone, and the
    # server's import was left waiting for the rest of the file. Run in this process, so that
    # the 3 s between tries can be made short.
    monkeypatch.setattr(remote, "RETRY_DELAY_SECONDS", 0.1)
    result, outage = import_one_row(BAD_GATEWAY, only=b"PATCH ")
    stderr = result.stderr

    (job,) = http.get("/api/imports").json()["items"]
    assert result.exit_code == 1, result.output
    assert outage.failed == remote.RETRIES + 1
    said = (
        rf"Error: The upload stopped at 0 B of 21 B: {outage.url} did not take the rest in "
        rf"{remote.RETRIES + 1} tries \((HTTP 502|connection dropped)\)\. Run this command again "
        rf"once the server answers\. The upload was removed, and import {job['id']} was "
        r"cancelled\."
    )
    assert re.fullmatch(said, stderr.splitlines()[-1]), stderr
    wait_until(
        lambda: http.get(f"/api/imports/{job['id']}").json()["status"] == "cancelled", "cancelled"
    )
    assert sql("SELECT count(*) FROM uploads")[0][0] == 0  # removed, as Ctrl-C removes it


def test_a_remote_import_past_its_limit_is_followed_by_what_mends_it(
    tmp_path, start_import, live_server, live_worker, accounts, http
):
    # The local command says which option mends it; the remote one printed the API's words
    # alone ("retry with a higher max_invalid"). The command it prints keeps the mapping given
    # (it left it out, and that run failed on the columns), and takes the token from the shell.
    path = tmp_path / "items.csv"
    path.write_text("Item Code,Title\nA-1,Apple\n,Nameless\n,Nameless too\n")
    columns = '{"sku": "Item Code", "name": "Title"}'
    args = ["--max-invalid", "1", "--columns", columns]

    command = start_import(path, live_server, accounts["editor"].token, *args)
    stdout, stderr = command.communicate(timeout=300)

    (job,) = http.get("/api/imports").json()["items"]
    assert command.returncode == 1, stdout + stderr
    assert stderr.splitlines()[-1] == (
        f"To import its valid rows anyway: product-importer import {path} --url {live_server} "
        f"--token \"$PRODUCT_IMPORTER_TOKEN\" --columns '{columns}' --max-invalid 100% "
        "(or on its page, without sending the file again: "
        f"{live_server}/imports/{job['id']})"
    ), stderr


def test_a_piece_the_server_never_answers_is_sent_again(
    tmp_path, monkeypatch, live_server, live_worker, accounts
):
    # tuspy waits for an answer for ever: a server or proxy that took a piece and never
    # answered held the upload for good, its bar still. Run in this process, so that the
    # wait for an answer (60 s) can be made short.
    monkeypatch.setattr(remote, "ANSWER_SECONDS", 2)
    monkeypatch.setattr(remote, "RETRY_DELAY_SECONDS", 0.1)
    path = tmp_path / "catalog.csv"
    path.write_bytes(b"sku,name\r\nA-1,Apple\r\n")
    outage = Outage(live_server)
    outage.fail(HANG, only=b"PATCH ")
    threading.Thread(target=_end_after_first_failure, args=(outage,), daemon=True).start()

    args = ["import", str(path), "--url", outage.url, "--token", accounts["editor"].token]
    result = CliRunner().invoke(cli.main, args)
    outage.close()

    assert outage.failed == 1
    assert result.exit_code == 0, result.output
    assert summary(result.stdout)["Outcome"] == "Completed"


def _end_after_first_failure(outage: "Outage") -> None:
    """Let the requests through once the first piece has hung: the next try goes through."""
    wait_until(lambda: outage.failed == 1, "the first piece sent")
    outage.end()


def test_a_token_revoked_during_the_upload_is_said_with_where_to_cancel_the_import(
    tmp_path, start_import, live_server, live_worker, http
):
    # It said the server's 401 alone ("That token is not valid ..."), the server's import left
    # waiting for the rest of the file, with no word of it.
    path = tmp_path / "catalog.csv"
    path.write_bytes(several_pieces(b"sku,name\r\n"))
    token = http.post("/api/tokens", json={"name": "laptop", "role": "editor"}).json()
    gate = PieceGate(live_server)  # holds the second piece until it opens

    command = start_import(path, gate.url, token["token"])
    wait_until(lambda: gate.pieces == 2 or ended(command), "the second piece sent")
    assert http.delete(f"/api/tokens/{token['id']}").status_code == 204
    gate.open()
    stdout, stderr = command.communicate(timeout=300)
    gate.close()

    (job,) = http.get("/api/imports").json()["items"]
    assert command.returncode == 1, stdout + stderr
    assert stderr.splitlines()[-1] == (
        "Error: That token is not valid (unknown, expired, revoked, or its account "
        f"deactivated). Import {job['id']} waits on the server for the rest of the file: "
        f"cancel it on its page {gate.url}/imports/{job['id']}"
    ), stderr
    # as the message says; else the import waits for the rest of its file past the test
    assert http.post(f"/api/imports/{job['id']}/cancel").status_code == 202


def test_a_piece_sent_slowly_but_steadily_is_not_cut_off_by_the_answer_timeout(monkeypatch):
    # The timeout given to tuspy's requests bounded the whole sending of a piece, one sendall
    # of 8 MiB: on a link slower than 8 MiB per ANSWER_SECONDS every try ran out, and the
    # upload failed for good. Each block sent must be bounded, not the piece. Here the
    # timeout is 4 s, and a body of 32 MiB is read at ~4 MB/s: ~8 s in all, the last ~1 s of
    # it what the kernel's buffers (up to 4 MiB) took at once.
    monkeypatch.setattr(remote, "ANSWER_SECONDS", 4)
    body = b"x" * (32 * 1024 * 1024)
    server = SlowReader(len(body), block=64 * 1024, pause=0.015)

    with remote._answered_in_time():
        answer = requests.patch(server.url, data=body)
    server.close()

    assert answer.status_code == 204
    assert server.received == len(body)


class SlowReader:
    """A server that reads one request's body of `length` bytes `block` bytes at a time,
    pausing `pause` seconds between blocks, then answers 204: a slow but steady link."""

    def __init__(self, length: int, *, block: int, pause: float):
        self.listener = socket.socket()
        # small buffers, so that the kernel holds little of the piece and the reads set the pace
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, block)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/piece"
        self.length, self.block, self.pause, self.received = length, block, pause, 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            head = b""
            while b"\r\n\r\n" not in head:
                head += connection.recv(1024)
            self.received = len(head.split(b"\r\n\r\n", 1)[1])
            while self.received < self.length:
                time.sleep(self.pause)
                self.received += len(connection.recv(self.block))
            connection.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.thread.join()
        self.listener.close()


def test_a_server_out_of_reach_when_the_upload_starts_is_waited_for(
    tmp_path, monkeypatch, live_server, live_worker, accounts
):
    # A proxy's 502 or 503 (it could not reach the app: the request went no further) as the
    # upload was created ended the command at once, "The upload failed: the server answered
    # 502.", where the same outage a moment later was waited for. Run in this process, so that
    # the second between two asks can be made short.
    monkeypatch.setattr(remote, "ASK_AGAIN_SECONDS", 0.1)
    path = tmp_path / "catalog.csv"
    path.write_bytes(b"sku,name\r\nA-1,Apple\r\n")
    outage = Outage(live_server)
    outage.fail(BAD_GATEWAY, only=b"POST /api/uploads ")
    threading.Thread(target=_unavailable_then_end, args=(outage,), daemon=True).start()

    args = ["import", str(path), "--url", outage.url, "--token", accounts["editor"].token]
    result = CliRunner().invoke(cli.main, args)
    outage.close()

    assert outage.answered[BAD_GATEWAY] >= 2, outage.answered
    assert outage.answered[UNAVAILABLE] >= 2, outage.answered
    assert result.exit_code == 0, result.output
    assert summary(result.stdout)["Outcome"] == "Completed"


def _unavailable_then_end(outage: "Outage") -> None:
    """After two 502s, answer the upload's creation 503 twice, then let it through."""
    wait_until(lambda: outage.answered[BAD_GATEWAY] >= 2, "two 502s")
    outage.fail(UNAVAILABLE, only=b"POST /api/uploads ")
    wait_until(lambda: outage.answered[UNAVAILABLE] >= 2, "two 503s")
    outage.end()


DATABASE_AWAY = raw_answer(
    b"503 Service Unavailable",
    b"application/json",
    api_error("The database is not answering. Nothing was changed: try again in a few seconds."),
    b"Retry-After: 0\r\n",
)


def test_a_server_whose_database_is_away_as_the_import_is_asked_for_is_waited_for(
    monkeypatch, live_worker, import_one_row
):
    # The import asked for while the server's database restarted (its 503: nothing changed)
    # ended the command at once, its upload made for nothing.
    monkeypatch.setattr(remote, "ASK_AGAIN_SECONDS", 0.1)
    result, outage = import_one_row(DATABASE_AWAY, only=b"POST /api/imports ", times=3)

    assert outage.answered[DATABASE_AWAY] == 3, outage.answered
    assert result.exit_code == 0, result.output
    assert summary(result.stdout)["Outcome"] == "Completed"


def test_a_database_that_stays_away_as_the_import_is_asked_for_is_said_in_its_words(
    monkeypatch, import_one_row
):
    monkeypatch.setattr(remote, "ASK_AGAIN_SECONDS", 0.1)
    monkeypatch.setattr(remote, "PATIENCE_SECONDS", 1)
    result, outage = import_one_row(DATABASE_AWAY, only=b"POST /api/imports ")

    assert result.exit_code == 1, result.output
    assert outage.answered[DATABASE_AWAY] >= 2, outage.answered
    assert result.stderr.splitlines()[-1] == (
        f"Error: The import could not be asked for: {outage.url} did not answer for 1 s (HTTP "
        "503). It said: The database is not answering. Nothing was changed: try again in a few "
        "seconds. Run this command again once it answers."
    ), result.stderr


def test_a_server_that_stays_out_of_reach_as_the_upload_starts_is_given_up_on_in_one_line(
    tmp_path, monkeypatch, live_server
):
    # A proxy's 503 (the app behind it restarting) is asked again for PATIENCE_SECONDS (1 s
    # here), then said in a line. It printed urllib3's "HTTPConnectionPool(host=..., port=...):
    # Max retries exceeded ...". (A refused connection was the outage here: it is now said at
    # once when nothing answered before it, the next test.)
    monkeypatch.setattr(remote, "ASK_AGAIN_SECONDS", 0.1)
    monkeypatch.setattr(remote, "PATIENCE_SECONDS", 1)
    path = tmp_path / "catalog.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    outage = Outage(live_server)
    outage.fail(UNAVAILABLE, only=b"POST /api/uploads ")

    args = ["import", str(path), "--url", outage.url, "--token", "t"]
    result = CliRunner().invoke(cli.main, args)
    outage.close()

    assert result.exit_code == 1, result.output
    assert outage.failed >= 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: The upload could not be started: {outage.url} did not answer for 1 s (HTTP "
        "503). Check --url, and that the server is running there."
    ), result.stderr
    assert "HTTPConnectionPool" not in result.stderr


def test_a_url_where_nothing_listens_is_said_at_once_without_asking_again(tmp_path, monkeypatch):
    # A wrong port in --url was taken for a server restarting: the command asked again every
    # second for 60 s ("connection refused · asking again" on its bar), then said it. The bar
    # is drawn as on a terminal here, so that an ask again would show.
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "catalog.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    url = f"http://127.0.0.1:{closed_port()}"

    result = CliRunner().invoke(cli.main, ["import", str(path), "--url", url, "--token", "t"])

    assert result.exit_code == 2, result.stderr[-1000:]  # as a wrong option is
    assert result.stderr.splitlines()[-1] == (
        f"Error: Nothing answers at {url} (connection refused): check --url, and that the "
        "server is running there."
    ), result.stderr
    assert "asking again" not in result.stderr


def closed_port() -> int:
    """A port of 127.0.0.1 where nothing listens: a connection to it is refused."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return unused.getsockname()[1]


class TinyServer:
    """A tiny HTTP server on 127.0.0.1 whose every request, whatever its method, is answered
    by the subclass's `answer(request)`."""

    def __init__(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.answer(self)

            do_GET = do_POST = do_HEAD = do_PATCH = do_DELETE = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, request: http.server.BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Answering(TinyServer):
    """A tiny HTTP server that answers every request 200 (or `status`) with `body` as
    `content_type`, as a captive portal or another site does; with `uploads`, it first takes
    the upload's creation as a tus server does (201 and the upload's address), so that what
    follows meets it."""

    def __init__(self, content_type: str, body: bytes, *, uploads: bool = False, status=200):
        self.content_type, self.body, self.uploads, self.status = (
            content_type,
            body,
            uploads,
            status,
        )
        super().__init__()

    def answer(self, request) -> None:
        request.rfile.read(int(request.headers.get("Content-Length") or 0))
        if self.uploads and request.command == "POST" and request.path == "/api/uploads":
            self.uploads = False
            request.send_response(201)
            request.send_header("Location", "/api/uploads/abc")
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        request.send_response(self.status)
        request.send_header("Content-Type", self.content_type)
        request.send_header("Content-Length", str(len(self.body)))
        request.end_headers()
        request.wfile.write(self.body)


PORTAL = b"<!DOCTYPE html>\n<html><body><h1>Welcome to the hotel's Wi-Fi</h1></body></html>"


@pytest.mark.parametrize(
    ("content_type", "body", "what"),
    [
        ("text/html; charset=utf-8", PORTAL, "an HTML page"),
        ("application/json", b'{"status": "ok"}', "JSON of another shape"),
    ],
    ids=["html", "json"],
)
def test_a_url_that_is_not_product_importer_is_said_so_with_what_to_check(
    tmp_path, content_type, body, what
):
    # A captive portal, or --url naming another site, answered 200: "The upload failed: the
    # server answered 200.", which reads as a success that failed.
    path = tmp_path / "catalog.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    portal = Answering(content_type, body)

    result = CliRunner().invoke(
        cli.main, ["import", str(path), "--url", portal.url, "--token", "t"]
    )
    portal.close()

    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1] == (
        f"Error: The upload failed: {portal.url} answered with {what}, not Product Importer's "
        "API: check --url (it should be the address of the Product Importer server, like "
        "http://host:8000)."
    ), result.stderr


def test_an_html_page_where_the_import_is_asked_for_is_said_so(tmp_path):
    # The upload was made, then a portal's page answered the import's request: "The server
    # answered 200."
    path = tmp_path / "catalog.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    portal = Answering("text/html", PORTAL, uploads=True)

    result = CliRunner().invoke(
        cli.main, ["import", str(path), "--url", portal.url, "--token", "t"]
    )
    portal.close()

    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1] == (
        f"Error: The import could not be asked for: {portal.url} answered with an HTML page, "
        "not Product Importer's API: check --url (it should be the address of the Product "
        "Importer server, like http://host:8000)."
    ), result.stderr


class Refusing(TinyServer):
    """A tiny HTTP server that answers every request `status` with the API's JSON error of
    `message`, counting the requests in `asked`: a server that refuses for good."""

    def __init__(self, status: int, message: str):
        self.status, self.body, self.asked = status, api_error(message), 0
        super().__init__()

    def answer(self, request) -> None:
        self.asked += 1
        request.send_response(self.status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(self.body)))
        request.end_headers()
        request.wfile.write(self.body)


DISK_FULL = (
    "The server has too little disk space for this upload (1,000 bytes free, 536,870,912 kept "
    "free). Try again later, or ask the operator to free space."
)


@pytest.mark.parametrize(
    ("status", "message"),
    [(507, DISK_FULL), (500, "Something went wrong on the server (reference 4f2a).")],
    ids=["disk-full", "bug"],
)
def test_a_server_refusing_the_upload_for_good_is_said_at_once_in_its_words(
    tmp_path, monkeypatch, status, message
):
    # Every answer >= 500 was taken for an outage: the command asked again for 60 s, then said
    # "did not answer for 60 s (HTTP 507). Check --url...", the server's words lost.
    monkeypatch.setattr(remote, "ASK_AGAIN_SECONDS", 0.1)
    monkeypatch.setattr(remote, "PATIENCE_SECONDS", 1)
    path = tmp_path / "catalog.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    server = Refusing(status, message)

    args = ["import", str(path), "--url", server.url, "--token", "t"]
    result = CliRunner().invoke(cli.main, args)
    server.close()

    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1] == f"Error: {message}", result.stderr
    assert server.asked == 1


@pytest.mark.parametrize("status", [413, 422])
def test_a_file_refused_as_its_upload_is_created_exits_2_as_it_does_here(tmp_path, status):
    # A file refused before it is read exits 2 here (README); with --url it exited 1.
    path = tmp_path / "catalog.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    server = Refusing(status, "The file is 40 bytes; the limit is 10 bytes.")

    args = ["import", str(path), "--url", server.url, "--token", "t"]
    result = CliRunner().invoke(cli.main, args)
    server.close()

    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == "Error: The file is 40 bytes; the limit is 10 bytes."
    assert server.asked == 1


def test_an_empty_file_refused_by_the_server_exits_2_as_it_does_here(
    tmp_path, live_server, accounts, catalog
):
    path = tmp_path / "empty.csv"
    path.write_text("")

    args = ["import", str(path), "--url", live_server, "--token", accounts["editor"].token]
    result = CliRunner().invoke(cli.main, args)

    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1].startswith("Error: The file is empty."), result.stderr
    assert catalog() == []


def test_a_blank_file_refused_at_its_last_byte_exits_2_as_it_does_here(
    tmp_path, live_server, accounts, catalog
):
    path = tmp_path / "blank.csv"
    path.write_text("   \n\n")  # not empty: the server sees it blank once it is all there

    args = ["import", str(path), "--url", live_server, "--token", accounts["editor"].token]
    result = CliRunner().invoke(cli.main, args)

    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1].startswith("Error: The file is empty."), result.stderr
    assert "The upload was removed" in result.stderr
    assert catalog() == []


def test_an_import_refused_as_it_is_asked_for_exits_2(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    message = "This upload was refused: The file is empty."
    server = Answering("application/json", api_error(message), uploads=True, status=422)

    args = ["import", str(path), "--url", server.url, "--token", "t"]
    result = CliRunner().invoke(cli.main, args)
    server.close()

    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == f"Error: {message}", result.stderr


class Redirecting(TinyServer):
    """A tiny HTTP server that answers every request 301 to the same path at `to`, as nginx's
    http -> https does (deploy/nginx.conf)."""

    def __init__(self, to: str):
        self.to = to
        super().__init__()

    def answer(self, request) -> None:
        request.send_response(301)
        request.send_header("Location", f"{self.to}{request.path}")
        request.send_header("Content-Length", "0")
        request.end_headers()


def test_a_server_that_redirects_is_said_with_the_url_to_give_not_followed(tmp_path):
    # Behind nginx's http -> https 301 the upload library followed it: the POST became a GET,
    # the token went along, and the command said the app's answer to that GET (exit 1).
    path = tmp_path / "catalog.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    server = Refusing(405, "The method is not allowed for the requested URL.")
    redirecting = Redirecting(server.url)

    args = ["import", str(path), "--url", redirecting.url, "--token", "t"]
    result = CliRunner().invoke(cli.main, args)
    redirecting.close()
    server.close()

    assert result.exit_code == 2, result.output  # nothing was sent: as a wrong option
    assert result.stderr.splitlines()[-1] == (
        f"Error: The upload could not be started: the server at {redirecting.url} redirects to "
        f"{server.url}/api/uploads: give --url {server.url}"
    ), result.stderr
    assert server.asked == 0  # not followed


def test_a_token_pasted_with_a_line_break_is_refused_at_once_without_printing_it(
    tmp_path, monkeypatch
):
    # requests refuses the header (InvalidHeader), which was taken for an outage: asked again
    # for 60 s, then "did not answer for 60 s (no answer)".
    monkeypatch.setattr(remote, "ASK_AGAIN_SECONDS", 0.1)
    monkeypatch.setattr(remote, "PATIENCE_SECONDS", 1)
    path = tmp_path / "catalog.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    server = Refusing(401, "That token is not valid.")

    args = ["import", str(path), "--url", server.url, "--token", "se\rcret"]
    result = CliRunner().invoke(cli.main, args)
    server.close()

    assert result.exit_code == 2, result.output
    assert "--token holds a line break" in result.stderr, result.stderr
    assert "se\rcret" not in result.stderr and "cret" not in result.stderr
    assert server.asked == 0


def test_a_server_error_while_watching_stops_the_watch_at_once_in_its_words(
    http, held_remote_import
):
    # A 500 (a bug reading the job) was asked again for 60 s, then said "did not answer for
    # 60 s (HTTP 500)", its message lost; the import goes on on the server either way.
    with held_remote_import() as (command, outage):
        outage.fail(SERVER_ERROR)
        stdout, stderr = command.communicate(timeout=300)
        (job,) = http.get("/api/imports").json()["items"]
    outage.close()

    assert command.returncode == 1, stdout + stderr
    assert stderr.splitlines()[-1] == (
        f"Error: Stopped watching import {job['id']}: Reading the job failed (a bug). The "
        f"import goes on on the server: watch it at {outage.url}/imports/{job['id']}"
    ), stderr
    assert outage.failed == 1
    wait_for(http, job["id"], lambda job: job["status"] == "completed_with_errors", "ended")


DISK_FULL_ANSWER = raw_answer(
    b"507 Insufficient Storage", b"application/json", api_error(DISK_FULL)
)


def test_a_piece_the_server_refuses_for_good_is_not_sent_again_its_import_and_upload_ended(
    import_one_row, tmp_path, monkeypatch, live_server, live_worker, accounts, http, sql
):
    # A 507 (the disk nearly full) on a piece was sent again ten times, then said "did not take
    # the rest in 11 tries (HTTP 507)", the server's words lost. Then it was said at once, but
    # the upload stayed on the server, unfinished, its import waiting for bytes that would
    # never come.
    monkeypatch.setattr(remote, "RETRY_DELAY_SECONDS", 0.1)
    result, outage = import_one_row(DISK_FULL_ANSWER, only=b"PATCH ")

    (job,) = http.get("/api/imports").json()["items"]
    assert result.exit_code == 1, result.output
    assert outage.failed == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: {DISK_FULL} The upload was removed, and import {job['id']} was cancelled."
    ), result.stderr
    assert sql("SELECT count(*) FROM uploads")[0][0] == 0
    wait_for(http, job["id"], lambda job: job["status"] == "cancelled", "cancelled")


def test_an_upload_that_could_not_be_removed_after_a_refused_piece_is_said_with_its_address(
    import_one_row, tmp_path, monkeypatch, live_server, live_worker, accounts, http, sql
):
    # The command said the server's words alone, with no word of the upload it left there.
    # Here the import's cancel and the upload's removal are refused too (the same 507): the
    # upload's address is said, to remove it, and the import's page, to cancel it.
    monkeypatch.setattr(remote, "RETRY_DELAY_SECONDS", 0.1)
    refused = (b"PATCH ", b"POST /api/imports/", b"DELETE ")
    result, outage = import_one_row(DISK_FULL_ANSWER, only=refused)

    (job,) = http.get("/api/imports").json()["items"]
    assert result.exit_code == 1, result.output
    said = re.fullmatch(
        rf"Error: {re.escape(DISK_FULL)} The upload could not be removed: it stays at (\S+) \(a "
        r"tus DELETE there removes it; else the server does once it expires\)\. Import "
        rf"{job['id']} waits for the rest of it: cancel it on its page "
        rf"{outage.url}/imports/{job['id']}",
        result.stderr.splitlines()[-1],
    )
    assert said, result.stderr
    assert outage.failed == 3  # the piece, the cancel, the removal: each once
    assert job["status"] in ("queued", "running")  # waiting for the rest
    # as it says: the page cancels the import, the address removes the upload
    assert http.post(f"/api/imports/{job['id']}/cancel").status_code == 202
    removed_as_said(said[1], accounts["editor"].token, sql)
    outage.close()


@pytest.mark.parametrize(
    "answer",
    [b"", raw_answer(b"504 Gateway Timeout", b"text/html", b"<h1>504</h1>")],
    ids=["dropped", "504"],
)
def test_an_upload_whose_creation_may_have_reached_the_server_is_not_asked_for_again(
    tmp_path, monkeypatch, live_server, answer
):
    # A connection dropped once the request was sent, or a proxy's 504, was asked again: if
    # the first had reached the server, a second upload was made, the first left unused.
    monkeypatch.setattr(remote, "ASK_AGAIN_SECONDS", 0.1)
    monkeypatch.setattr(remote, "PATIENCE_SECONDS", 1)
    path = tmp_path / "catalog.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    outage = Outage(live_server)
    outage.fail(answer, only=b"POST /api/uploads ")

    args = ["import", str(path), "--url", outage.url, "--token", "t"]
    result = CliRunner().invoke(cli.main, args)
    outage.close()

    assert result.exit_code == 1, result.output
    assert outage.failed == 1
    why = "connection dropped" if answer == b"" else "HTTP 504"
    assert result.stderr.splitlines()[-1] == (
        f"Error: The upload could not be started: {outage.url} did not answer it ({why}). It "
        "was not asked again: the server may have made the upload. Run this command again once "
        "the server answers."
    ), result.stderr


@pytest.mark.parametrize("form", ["seconds", "date"])
def test_a_retry_after_on_the_uploads_creation_is_waited_for(
    tmp_path, monkeypatch, live_server, live_worker, accounts, form
):
    # A proxy's 503 with Retry-After (seconds, or an HTTP date) was asked again after the
    # command's own pause (0.1 s here), as if it had said nothing.
    monkeypatch.setattr(remote, "ASK_AGAIN_SECONDS", 0.1)
    path = tmp_path / "catalog.csv"
    path.write_bytes(b"sku,name\r\nA-1,Apple\r\n")
    not_before = math.ceil(time.time()) + 4
    retry_after = "4" if form == "seconds" else email.utils.formatdate(not_before, usegmt=True)
    outage = Outage(live_server)
    busy = asking_to_wait(b"503 Service Unavailable", retry_after)
    outage.fail(busy, only=b"POST /api/uploads ", times=1)

    args = ["import", str(path), "--url", outage.url, "--token", accounts["editor"].token]
    result = CliRunner().invoke(cli.main, args)
    outage.close()

    assert result.exit_code == 0, result.output
    assert summary(result.stdout)["Outcome"] == "Completed"
    first, again = outage.seen_at(b"POST /api/uploads ")
    assert again >= (first + 4 if form == "seconds" else not_before), (first, again)


def test_a_retry_after_on_a_piece_is_waited_for_before_sending_it_again(
    import_one_row, tmp_path, monkeypatch, live_server, live_worker, accounts
):
    # A 429 with Retry-After on a piece was sent again after the command's own pause (0.1 s
    # here), and again, using up its ten retries while the server still asked to wait.
    monkeypatch.setattr(remote, "RETRY_DELAY_SECONDS", 0.1)
    result, outage = import_one_row(
        asking_to_wait(b"429 Too Many Requests", "3"),
        only=b"PATCH ",
        times=1,
    )

    assert result.exit_code == 0, result.output
    assert summary(result.stdout)["Outcome"] == "Completed"
    first, again = outage.seen_at(b"PATCH ")
    assert again - first >= 3, (first, again)


def test_a_retry_after_while_watching_the_import_is_waited_for(held_remote_import):
    # A proxy's 503 with Retry-After while the import ran was asked again a second later.
    with held_remote_import() as (command, outage):
        outage.fail(asking_to_wait(b"503 Service Unavailable", "4"), times=1)
        wait_until(lambda: outage.failed == 1 or ended(command), "the 503")
    stdout, stderr = command.communicate(timeout=300)
    outage.close()

    assert command.returncode == 0, stdout + stderr
    assert summary(stdout)["Outcome"] == "Completed with errors", stdout
    (busy_at,) = outage.failed_at
    again = min(at for at in outage.seen_at(b"GET /api/imports/") if at > busy_at)
    assert again - busy_at >= 4, (busy_at, again)


def test_a_retry_after_longer_than_the_command_waits_is_said_at_once(
    tmp_path, monkeypatch, live_server
):
    # A 503 asking for an hour was asked again every second (0.1 s here) until the command's
    # patience (1 s here) ran out, then said as "did not answer for 1 s (HTTP 503)".
    monkeypatch.setattr(remote, "ASK_AGAIN_SECONDS", 0.1)
    monkeypatch.setattr(remote, "PATIENCE_SECONDS", 1)
    path = tmp_path / "catalog.csv"
    path.write_bytes(b"sku,name\r\nA-1,Apple\r\n")
    outage = Outage(live_server)
    busy = asking_to_wait(b"503 Service Unavailable", "3600")
    outage.fail(busy, only=b"POST /api/uploads ")

    result = CliRunner().invoke(
        cli.main, ["import", str(path), "--url", outage.url, "--token", "t"]
    )
    outage.close()

    assert result.exit_code == 1, result.output
    assert outage.failed == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: The upload could not be started: {outage.url} asked to be asked again in "
        "60 min (HTTP 503, Retry-After), longer than this command waits (1 s). Run this "
        "command again once that time has passed."
    ), result.stderr


def test_a_piece_asked_to_wait_longer_than_the_command_waits_ends_the_upload_at_once(
    import_one_row, tmp_path, monkeypatch, live_server, live_worker, accounts, http, sql
):
    # A 503 asking for an hour on a piece was sent again ten times, 0.1 s apart here, then said
    # as "did not take the rest in 11 tries (HTTP 503)".
    monkeypatch.setattr(remote, "RETRY_DELAY_SECONDS", 0.1)
    result, outage = import_one_row(
        asking_to_wait(b"503 Service Unavailable", "3600"),
        only=b"PATCH ",
    )

    (job,) = http.get("/api/imports").json()["items"]
    assert result.exit_code == 1, result.output
    assert outage.failed == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: The upload stopped at 0 B of 21 B: {outage.url} asked to be sent the rest in "
        "60 min (HTTP 503, Retry-After), longer than this command waits (60 s). Run this "
        "command again once the server answers. The upload was removed, and import "
        f"{job['id']} was cancelled."
    ), result.stderr
    wait_until(
        lambda: http.get(f"/api/imports/{job['id']}").json()["status"] == "cancelled", "cancelled"
    )
    assert sql("SELECT count(*) FROM uploads")[0][0] == 0


def test_a_retry_after_past_the_time_left_as_the_upload_starts_is_not_said_as_too_long(
    tmp_path, monkeypatch, live_server
):
    # A 503 asking for 2 s, 2 s into the command's patience of 3 s (60 s), was said as "asked
    # to be asked again in 2 s ..., longer than this command waits (3 s)": 2 s is not.
    monkeypatch.setattr(remote, "ASK_AGAIN_SECONDS", 0.1)
    monkeypatch.setattr(remote, "PATIENCE_SECONDS", 3)
    path = tmp_path / "catalog.csv"
    path.write_bytes(b"sku,name\r\nA-1,Apple\r\n")
    outage = Outage(live_server)
    outage.fail(asking_to_wait(b"503 Service Unavailable", "2"), only=b"POST /api/uploads ")

    result = CliRunner().invoke(
        cli.main, ["import", str(path), "--url", outage.url, "--token", "t"]
    )
    outage.close()

    assert result.exit_code == 1, result.output
    assert outage.failed == 2  # asked again once, after the 2 s it asked for
    said = (
        rf"Error: The upload could not be started: {re.escape(outage.url)} did not answer for "
        r"\d+ s \(HTTP 503\), then asked to be asked again in 2 s \(Retry-After\): past the 3 s "
        r"this command waits\. Run this command again once that time has passed\."
    )
    assert re.fullmatch(said, result.stderr.splitlines()[-1]), result.stderr


def test_a_retry_after_of_no_time_when_the_patience_runs_out_is_said_as_no_answer(
    tmp_path, monkeypatch, live_server
):
    # A 503 asking to be asked again at once (Retry-After: 0) when the command's patience (1 s
    # here) ran out was said as "asked to be asked again in 0 s ..., longer than this command
    # waits (1 s)".
    monkeypatch.setattr(remote, "ASK_AGAIN_SECONDS", 0.1)
    monkeypatch.setattr(remote, "PATIENCE_SECONDS", 1)
    path = tmp_path / "catalog.csv"
    path.write_bytes(b"sku,name\r\nA-1,Apple\r\n")
    outage = Outage(live_server)
    outage.fail(asking_to_wait(b"503 Service Unavailable", "0"), only=b"POST /api/uploads ")

    result = CliRunner().invoke(
        cli.main, ["import", str(path), "--url", outage.url, "--token", "t"]
    )
    outage.close()

    assert result.exit_code == 1, result.output
    assert outage.failed >= 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: The upload could not be started: {outage.url} did not answer for 1 s (HTTP "
        "503). Check --url, and that the server is running there."
    ), result.stderr


def test_a_piece_asked_to_wait_past_the_time_left_is_not_said_as_too_long(
    import_one_row, tmp_path, monkeypatch, live_server, live_worker, accounts, http, sql
):
    # A piece's 503 asking for 2 s, 2 s after its first failure, was said as "asked to be sent
    # the rest in 2 s ..., longer than this command waits (3 s)": 2 s is not.
    monkeypatch.setattr(remote, "RETRY_DELAY_SECONDS", 0.1)
    monkeypatch.setattr(remote, "PATIENCE_SECONDS", 3)
    result, outage = import_one_row(
        asking_to_wait(b"503 Service Unavailable", "2"),
        only=b"PATCH ",
    )

    (job,) = http.get("/api/imports").json()["items"]
    assert result.exit_code == 1, result.output
    assert outage.failed == 2  # sent again once, after the 2 s it asked for
    said = (
        rf"Error: The upload stopped at 0 B of 21 B: {re.escape(outage.url)} did not take the "
        r"rest for \d+ s \(HTTP 503\), then asked to be sent the rest in 2 s \(Retry-After\): "
        r"past the 3 s this command waits\. Run this command again once the server answers\. "
        rf"The upload was removed, and import {job['id']} was cancelled\."
    )
    assert re.fullmatch(said, result.stderr.splitlines()[-1]), result.stderr
    wait_for(http, job["id"], lambda job: job["status"] == "cancelled", "cancelled")
    assert sql("SELECT count(*) FROM uploads")[0][0] == 0


def test_an_upload_given_up_on_that_could_not_be_removed_is_said_with_its_address(
    import_one_row, tmp_path, monkeypatch, live_server, live_worker, accounts, http, sql
):
    # After its ten tries it said where to cancel the import, with no word of the upload: it
    # was not even asked to be removed, and stayed on the server, unfinished. Here the cancel
    # and the removal meet the proxy's 502 too: both addresses are said, to end them there.
    monkeypatch.setattr(remote, "RETRY_DELAY_SECONDS", 0.1)
    failing = (b"PATCH ", b"POST /api/imports/", b"DELETE ")
    result, outage = import_one_row(BAD_GATEWAY, only=failing)

    (job,) = http.get("/api/imports").json()["items"]
    assert result.exit_code == 1, result.output
    said = re.fullmatch(
        rf"Error: The upload stopped at 0 B of 21 B: {re.escape(outage.url)} did not take the "
        rf"rest in {remote.RETRIES + 1} tries \((HTTP 502|connection dropped)\)\. Run this "
        r"command again once the server answers\. The upload could not be removed: it stays at "
        r"(\S+) \(a tus DELETE there removes it; else the server does once it expires\)\. "
        rf"Import {job['id']} waits for the rest of it: cancel it on its page "
        rf"{re.escape(outage.url)}/imports/{job['id']}",
        result.stderr.splitlines()[-1],
    )
    assert said, result.stderr
    assert outage.failed == remote.RETRIES + 3  # the tries, the cancel, the removal
    # as it says: the page cancels the import, the address removes the upload
    assert http.post(f"/api/imports/{job['id']}/cancel").status_code == 202
    removed_as_said(said[2], accounts["editor"].token, sql)
    outage.close()


def test_a_refusal_after_a_proxys_answer_as_the_upload_starts_is_waited_for_as_a_restart(
    tmp_path, monkeypatch, start_import, live_server, live_worker, accounts, http
):
    # Untested until now: a connection refused as the upload is created, once a proxy at
    # --url has answered (a 503 here), is a restart's, asked again until it listens again,
    # not a wrong --url said at once (exit 2, "Nothing answers at ..."). Its bar is drawn, so
    # that the ask again shows.
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "catalog.csv"
    path.write_bytes(b"sku,name\r\nA-1,Apple\r\n")
    outage = Outage(live_server)
    # asked again in 5 s, as the 503 asks: time enough to stop listening before then
    busy = asking_to_wait(b"503 Service Unavailable", "5")
    outage.fail(busy, only=b"POST /api/uploads ", times=1)

    command = start_import(path, outage.url, accounts["editor"].token)
    stderr = Collected(command.stderr)
    wait_until(lambda: outage.failed == 1 or ended(command), "the 503")
    outage.refuse()
    wait_until(lambda: "connection refused" in stderr.text or ended(command), "refused")
    outage.listen_again()
    command.wait(timeout=300)
    outage.close()

    assert command.returncode == 0, stderr.text[-1000:]
    assert "connection refused · asking again" in stderr.text
    (job,) = http.get("/api/imports").json()["items"]
    assert job["status"] == "completed"
    assert len(outage.seen_at(b"POST /api/uploads ")) == 2  # the 503, then the upload made


class BreakingTls:
    """A TLS server on 127.0.0.1, its certificate self-signed (made with openssl in `folder`,
    as `cert`), that reads a request, then sends a record that does not decrypt: a TLS
    connection broken off on the way (a middlebox, a link that mangled it)."""

    def __init__(self, folder):
        key, self.cert = folder / "key.pem", folder / "cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
            + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
            + ["-keyout", str(key), "-out", str(self.cert)],
            check=True,
            capture_output=True,
        )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._break, args=(client,), daemon=True).start()

    def _break(self, client: socket.socket) -> None:
        with (
            contextlib.suppress(OSError),
            self.context.wrap_socket(client, server_side=True) as tls,
        ):
            tls.recv(65536)
            with socket.socket(fileno=os.dup(tls.fileno())) as raw:  # under the TLS
                raw.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
                # kept open: the client reads the record, not a hang-up (which a client still
                # sending its piece meets first, as a connection dropped)
                self.closed.wait()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


def tls_failure(url: str, verify) -> TusCommunicationError:
    """The error a piece sent to `url` meets (`verify` as requests takes it), as tuspy gives it."""
    with pytest.raises(requests.RequestException) as raised:
        requests.patch(url, data=b"sku,name\r\nA-1,Apple\r\n", verify=verify, timeout=10)
    return TusCommunicationError(raised.value)


def test_a_tls_connection_broken_off_on_a_piece_is_sent_again_a_certificate_refused_is_not(
    tmp_path, monkeypatch
):
    # A TLS error on a piece (a record that does not decrypt) was neither a dropped connection
    # nor a refused one: the command took it for the server's refusal, cancelled the import
    # and removed the upload, saying "its TLS certificate was not accepted". Real errors of a
    # real TLS server, without the command: an end-to-end TLS proxy would cost much more.
    for variable in CA_VARIABLES:  # none names a CA: the message says which to set
        monkeypatch.delenv(variable, raising=False)
    server = BreakingTls(tmp_path)
    broken = tls_failure(server.url, verify=str(server.cert))  # trusted: the record breaks
    refused = tls_failure(server.url, verify=True)  # not trusted: the handshake fails
    server.close()

    assert remote._worth_retrying(broken), broken
    assert remote._failure_why(broken) == "TLS connection broken off"
    assert not remote._worth_retrying(refused), refused
    assert remote._tus_error(refused, server.url) == (
        f"The upload failed: could not reach {server.url}: its TLS certificate was not "
        "accepted. Check the host name in --url, and the server's certificate (expired? for "
        "another name? signed by a CA of your own: set SSL_CERT_FILE to its PEM file): a new "
        "run meets the same certificate."
    )


def test_ctrl_c_that_could_not_end_the_servers_import_says_where_its_upload_stays(
    live_server, accounts, http, sql, held_remote_import
):
    # Ctrl-C while the server did not answer said where to cancel the import alone: its upload
    # was not even asked to be removed, and stayed there with no word of it.
    with held_remote_import() as (command, outage):
        outage.refuse()  # the cancel and the removal find nothing there
        command.send_signal(signal.SIGINT)
        stdout, stderr = command.communicate(timeout=300)
        (job,) = http.get("/api/imports").json()["items"]
        # as it says: the page cancels the import, the address removes the upload
        assert http.post(f"/api/imports/{job['id']}/cancel").status_code == 202
    outage.close()

    assert command.returncode == 1, stdout + stderr
    said = re.fullmatch(
        rf"Error: Ctrl-C: import {job['id']} could not be cancelled: {re.escape(outage.url)} "
        r"did not answer \(connection refused\)\. The upload could not be removed: it stays at "
        r"(\S+) \(a tus DELETE there removes it; else the server does once it expires\)\. "
        # (it waits for the rest if Ctrl-C came between the last byte's answer and the watch)
        rf"Import {job['id']} (?:goes on there|waits for the rest of it): cancel it on its page "
        rf"{re.escape(outage.url)}/imports/{job['id']}",
        stderr.splitlines()[-1],
    )
    assert said, stderr
    upload = said[1].replace(outage.url, live_server)  # the proxy no longer listens
    removed_as_said(upload, accounts["editor"].token, sql)


@pytest.mark.parametrize("answer", [b"", BAD_GATEWAY], ids=["dropped", "502"])
def test_ctrl_c_whose_upload_could_not_be_removed_says_where_it_stays_its_import_cancelled(
    answer, accounts, http, sql, held_remote_import
):
    # The one Ctrl-C untested: the server cancelled the import, but its upload was not removed
    # (the DELETE's connection dropped, or a proxy's 502 on it). The DELETE goes on the
    # connection the cancel kept alive, which the proxy looks at request by request.
    with held_remote_import() as (command, outage):
        outage.fail(answer, only=b"DELETE ")
        command.send_signal(signal.SIGINT)
        # the cancel was answered before the removal was asked: let go, the import ends there
        wait_until(lambda: outage.failed == 1 or ended(command), "the removal refused")
    stdout, stderr = command.communicate(timeout=300)
    outage.end()

    assert command.returncode == remote.INTERRUPTED, stdout + stderr
    (job,) = http.get("/api/imports").json()["items"]
    assert job["status"] == "cancelled"
    assert summary(stdout)["Outcome"] == "Cancelled", stdout
    assert outage.failed == 1  # the removal alone: the cancel went through
    said = re.search(
        rf"^Cancelling import {job['id']} on the server \(Ctrl-C\)\.\.\.\n"
        r"The upload could not be removed: it stays at (\S+) \(a tus DELETE there removes it; "
        r"else the server does once it expires\)\.$",
        stderr,
        re.MULTILINE,
    )
    assert said, stderr
    assert stderr.splitlines()[-1] == f"Error: {CANCELLED_MESSAGE}", stderr
    assert "Traceback" not in stderr
    # as it says: the upload stays, and a DELETE at its address removes it
    assert sql("SELECT count(*) FROM uploads")[0][0] == 1
    removed_as_said(said[1], accounts["editor"].token, sql)
    outage.close()
