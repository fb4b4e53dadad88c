"""Server-sent progress events of one import, without exhausting the web threads.

Each open stream holds a web thread, so a process keeps at most MAX_EVENT_STREAMS open (past
that, 503 and the page polls instead); each stream ends after EVENT_STREAM_SECONDS (the
browser reconnects at once), as soon as the client hangs up, once its caller may no longer
read it (signed out, token revoked, account deactivated), and once the server stops.
"""

import json
import socket
import threading
import time
from collections.abc import Callable

from flask import Response, current_app, request, stream_with_context

from ..accounts.auth import allowance
from ..errors import error_response
from ..extensions import db
from . import service

EVENT_POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
RECONNECT_MILLISECONDS = 1000  # how soon EventSource reopens a stream the server ended
STREAMS_BUSY_RETRY_SECONDS = 10
STOP_CHECK_SECONDS = 0.05  # how often a stream's wait, and a stop's, look for what they wait on


class StreamSlots:
    """Count this process's open event streams, each of which holds a web thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._open = 0

    def take(self, limit: int) -> bool:
        """Take a slot if fewer than `limit` are taken; tell whether it was."""
        with self._lock:
            if self._open >= limit:
                return False
            self._open += 1
            return True

    def give_back(self) -> None:
        """Free a slot taken by `take`."""
        with self._lock:
            self._open -= 1

    def wait_until_none_open(self, seconds: float) -> None:
        """Wait until every stream has ended, for `seconds` at most.

        Called from a signal handler, so it takes no lock: it reads the count (one attribute,
        read whole) every STOP_CHECK_SECONDS."""
        ends = time.monotonic() + seconds
        while self._open > 0 and time.monotonic() < ends:
            time.sleep(STOP_CHECK_SECONDS)


class StopFlag:
    """Whether this web process is asked to stop, raised from its signal handlers.

    Not a `threading.Event`: its `set` takes a lock, and a second stop signal (a terminal
    and gunicorn's master each send one) handled while the first handler holds it would wait
    on it forever, and the process with it."""

    def __init__(self):
        self._raised = False

    def set(self) -> None:
        """Raise the flag (safe in a signal handler: one attribute written, no lock)."""
        self._raised = True

    def is_set(self) -> bool:
        """Tell whether the flag is raised."""
        return self._raised

    def wait(self, seconds: float) -> None:
        """Sleep for `seconds`, or until the flag is raised (looked at every STOP_CHECK_SECONDS)."""
        ends = time.monotonic() + seconds
        while not self._raised and time.monotonic() < ends:
            time.sleep(min(STOP_CHECK_SECONDS, max(0.0, ends - time.monotonic())))


stream_slots = StreamSlots()
# Raised when this web process is asked to stop (gunicorn_app): the open streams end without
# `done`, and their browsers reconnect to a server that runs.
server_stopping = StopFlag()


def progress_stream(job_id: int) -> Response:
    """Stream `progress` events about once a second while the job changes, then `done`.

    A stream still open after EVENT_STREAM_SECONDS ends without `done` and the client
    reconnects; past MAX_EVENT_STREAMS open streams the answer is 503.
    """
    if not stream_slots.take(current_app.config["MAX_EVENT_STREAMS"]):
        return _streams_busy(job_id)
    lifetime = current_app.config["EVENT_STREAM_SECONDS"]
    events = _events(job_id, lifetime, _client_socket(), allowance())
    response = Response(
        stream_with_context(events),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # Called by the server once the stream ends for any reason, even before it started.
    response.call_on_close(stream_slots.give_back)
    return response


def _streams_busy(job_id: int):
    message = (
        "Too many progress streams are open on this server. "
        f"Poll GET /api/imports/{job_id} about once a second instead."
    )
    body, status = error_response(503, "too_many_streams", message)
    return body, status, {"Retry-After": str(STREAMS_BUSY_RETRY_SECONDS)}


def _client_socket() -> socket.socket | None:
    """The connection to the client when the server hands it over (gunicorn does)."""
    sock = request.environ.get("gunicorn.socket")
    return sock if isinstance(sock, socket.socket) else None


def _client_gone(sock: socket.socket | None) -> bool:
    """Tell whether the client hung up, so a closed tab frees its thread before a write fails."""
    if sock is None:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False  # nothing to read: still connected
    except ValueError:
        return False  # a TLS socket cannot peek: rely on failed writes
    except OSError:
        return True


def _events(
    job_id: int, lifetime: float, client: socket.socket | None, allowed: Callable[[], bool]
):
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
    ends = time.monotonic() + lifetime
    last_sent, last_write = None, time.monotonic()
    # asked again before each read of the job: a session signed out meanwhile reads no more
    while not _client_gone(client) and not server_stopping.is_set() and allowed():
        data, finished = _job_state(job_id)
        if finished:
            yield _event("done", data)
            return
        if data != last_sent:
            yield _event("progress", data)
            last_sent, last_write = data, time.monotonic()
        elif time.monotonic() - last_write > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_write = time.monotonic()
        if time.monotonic() >= ends:
            return  # after the current state, so every stream tells the client something
        server_stopping.wait(EVENT_POLL_SECONDS)


def _job_state(job_id: int) -> tuple[dict, bool]:
    job = service.get(db.session, job_id)
    data, finished = service.job_json(db.session, job), job.finished
    # no transaction held between polls, nor rows as last read: the next poll reads the job,
    # and the caller's sign-in or token (`allowance`), as they are then
    db.session.rollback()
    db.session.expire_all()
    return data, finished


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"
