"""Progress event streams hold a web thread each: a cap per web process, a bounded life.

Each test runs its own `product-importer serve` with one web process and a small limit, so
the cap and the end of a stream are reached in seconds. The import being followed is held
running by a lock on the catalog, so its stream has no natural end.
"""

import json
import os
import signal
import time
from contextlib import ExitStack

import httpx
import pytest

from tests.conftest import BIN, Process, free_port, http_client, wait_until_up
from tests.helpers import upload_csv, wait_for_job

from .conftest import TABLE_LOCK, wait_for

pytestmark = pytest.mark.usefixtures("live_worker")


@pytest.fixture(scope="module")
def start_server(test_env, app, tmp_path_factory):
    """Return a function that starts a one-process server with the given settings."""
    started: list[Process] = []

    def start(**settings) -> str:
        port = free_port()
        log = tmp_path_factory.mktemp("server") / "server.log"
        args = [str(BIN / "product-importer"), "serve", "--port", str(port)]
        server = Process(args, {"WEB_CONCURRENCY": "1", **settings}, log)
        started.append(server)
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, server)
        return url

    yield start
    for server in started:
        server.kill()


def running_job(client: httpx.Client) -> int:
    """Upload a file whose import then waits for the catalog lock the test holds."""
    response = upload_csv(client, "sku,name\nA-1,Apple\n")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    wait_for(client, job_id, lambda job: job["rows_processed"] == 1, "read")
    return job_id


def parse_events(lines) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, json.loads(line.removeprefix("data: "))))
    return events


class Stream:
    """One open event stream, read one event at a time."""

    def __init__(self, streams: ExitStack, client: httpx.Client, job_id: int):
        request = client.stream("GET", f"/api/imports/{job_id}/events")
        self.response = streams.enter_context(request)
        self._lines = self.response.iter_lines()

    def next_event(self) -> tuple[str, dict]:
        """Return the next event (the read times out should none come)."""
        lines = []
        for line in self._lines:
            lines.append(line)
            if line.startswith("data: "):
                return parse_events(lines)[0]
        pytest.fail("the stream ended")

    def rest(self) -> list[tuple[str, dict]]:
        """Read the events left until the server ends the stream."""
        return parse_events(self._lines)


def open_stream_when_free(streams, client, job_id, timeout: float = 60) -> Stream:
    """Open a stream, asking again while the server is at its cap."""
    deadline = time.monotonic() + timeout
    while True:
        stream = Stream(streams, client, job_id)
        if stream.response.status_code == 200 or time.monotonic() > deadline:
            return stream
        stream.response.close()
        time.sleep(0.2)


def test_past_the_cap_a_stream_is_refused_until_an_open_one_closes(start_server, holding, accounts):
    server = start_server(MAX_EVENT_STREAMS="2")
    with http_client(server, accounts["admin"].token) as client, ExitStack() as streams:
        with holding(TABLE_LOCK):
            job_id = running_job(client)
            first, second = (Stream(streams, client, job_id) for _ in range(2))
            assert first.next_event()[0] == second.next_event()[0] == "progress"

            refused = Stream(streams, client, job_id).response
            assert refused.status_code == 503
            assert refused.headers["Retry-After"].isdigit()
            error = json.loads(refused.read())["error"]
            assert error["code"] == "too_many_streams"
            assert f"GET /api/imports/{job_id}" in error["message"]
            assert client.get(f"/api/imports/{job_id}").json()["status"] == "running"

            first.response.close()  # a tab closed: its slot is free within a second or so
            third = open_stream_when_free(streams, client, job_id)
            assert third.response.status_code == 200
            assert third.next_event()[0] == "progress"

        # The catalog is free: the import finishes and the streams still open see it.
        for stream in (second, third):
            events = stream.rest()
            assert events[-1][0] == "done" and events[-1][1]["status"] == "completed"


def test_a_stream_ends_after_its_time_without_done_and_a_new_one_goes_on(
    start_server, holding, accounts
):
    server = start_server(EVENT_STREAM_SECONDS="2")
    events_url = "/api/imports/{}/events"
    with http_client(server, accounts["admin"].token) as client:
        with holding(TABLE_LOCK):
            job_id = running_job(client)
            for _ in range(2):  # a client that reconnects gets a new stream each time
                started = time.monotonic()
                response = client.get(events_url.format(job_id))  # returns once it ends
                assert time.monotonic() - started >= 2  # EVENT_STREAM_SECONDS
                assert response.status_code == 200
                assert "retry: " in response.text  # EventSource reconnects after this delay
                events = parse_events(response.text.splitlines())
                assert events and {name for name, _ in events} == {"progress"}
                assert events[-1][1]["status"] == "running"

        events = []
        deadline = time.monotonic() + 60
        while not events or events[-1][0] != "done":  # reconnect until the import's end is told
            assert time.monotonic() < deadline, events[-3:]
            events += parse_events(client.get(events_url.format(job_id)).text.splitlines())
        assert {name for name, _ in events[:-1]} <= {"progress"}
        assert events[-1] == ("done", wait_for_job(client, job_id))
        assert events[-1][1]["status"] == "completed"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_server_stopped_while_a_stream_is_open_ends_the_stream_and_stops(
    test_env, tmp_path, holding, accounts, stop
):
    # gunicorn waited out its graceful timeout (30 s) for the stream, then killed the web
    # process ("Worker was sent SIGKILL! Perhaps out of memory?"): Ctrl-C on `make run`, or a
    # `systemctl restart`, with a page following an import open somewhere.
    port = free_port()
    args = [str(BIN / "product-importer"), "serve", "--port", str(port)]
    server = Process(args, {"WEB_CONCURRENCY": "1"}, tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server)
        with (
            http_client(url, accounts["admin"].token) as client,
            ExitStack() as streams,
            holding(TABLE_LOCK),
        ):
            stream = Stream(streams, client, running_job(client))
            assert stream.next_event()[0] == "progress"

            os.killpg(server.popen.pid, stop)  # as a terminal's Ctrl-C, or systemd, does

            # The stream ends without `done` (the browser reconnects, to a server that runs),
            # and the server stops by itself. Ctrl-C is gunicorn's quick stop: the end may be
            # cut short there, which the browser takes as the same.
            try:
                assert {name for name, _ in stream.rest()} <= {"progress"}
            except httpx.RemoteProtocolError:
                assert stop == signal.SIGINT
            server.popen.wait()
    finally:
        server.kill()
    assert "SIGKILL" not in server.output()
    assert "Traceback" not in server.output()
