"""The imports JSON API: upload, list, progress (JSON and server-sent events), cancel, retry."""

import csv
import io
import json
import os
import socket
import threading
import time

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context, url_for

from ..errors import AppError, BadRequest, error_response
from ..extensions import db
from ..security import refuse_cross_site_requests
from . import service, uploads

bp = Blueprint("imports_api", __name__, url_prefix="/api/imports")
bp.before_request(refuse_cross_site_requests)

EVENT_POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
RECONNECT_MILLISECONDS = 1000  # how soon EventSource reopens a stream the server ended
STREAMS_BUSY_RETRY_SECONDS = 10


@bp.post("")
def upload():
    """Store the uploaded CSV and queue its import: 202 with the job."""
    file = request.files.get("file")
    if file is None:
        raise BadRequest("Send the CSV as multipart/form-data in a field named 'file'.")
    path, size = uploads.keep(file)
    try:
        uploads.check(path, size)
    except AppError:
        os.remove(path)
        raise
    job = service.create(
        db.session, filename=file.filename or "upload.csv", file_path=path, bytes_total=size
    )
    db.session.commit()
    return _accepted(job)


def _accepted(job):
    location = url_for("imports_api.get_import", job_id=job.id)
    return jsonify(job.to_dict()), 202, {"Location": location}


@bp.get("")
def list_imports():
    """Return the import jobs, newest first."""
    return jsonify(items=[job.to_dict() for job in service.list_recent(db.session)])


@bp.get("/<int:job_id>")
def get_import(job_id: int):
    """Return one import job."""
    return jsonify(service.get(db.session, job_id).to_dict())


@bp.post("/<int:job_id>/cancel")
def cancel_import(job_id: int):
    """Cancel a queued or running import: 202; 409 once finished."""
    job = service.cancel(db.session, job_id)
    db.session.commit()
    return jsonify(job.to_dict()), 202


@bp.post("/<int:job_id>/retry")
def retry_import(job_id: int):
    """Queue a new import of the same file: 202 with the new job; 409 while it still runs."""
    job = service.retry(db.session, job_id)
    db.session.commit()
    return _accepted(job)


@bp.get("/<int:job_id>/errors.csv")
def rejected_rows_csv(job_id: int):
    """Stream `line,sku,reason` for every rejected row."""
    service.get(db.session, job_id)

    def lines():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(["line", "sku", "reason"])
        for count, row in enumerate(service.rejected_rows(db.session, job_id), start=1):
            writer.writerow(row)
            if count % 1000 == 0:
                yield _drain(buffer)
        yield _drain(buffer)

    headers = {"Content-Disposition": f'attachment; filename="import-{job_id}-errors.csv"'}
    return Response(stream_with_context(lines()), mimetype="text/csv", headers=headers)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


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


stream_slots = StreamSlots()


@bp.get("/<int:job_id>/events")
def import_events(job_id: int):
    """Stream `progress` events about once a second while the job changes, then `done`.

    A stream still open after EVENT_STREAM_SECONDS ends without `done` and the client
    reconnects; past MAX_EVENT_STREAMS open streams the answer is 503.
    """
    service.get(db.session, job_id)
    db.session.rollback()
    if not stream_slots.take(current_app.config["MAX_EVENT_STREAMS"]):
        return _streams_busy(job_id)
    events = _events(job_id, current_app.config["EVENT_STREAM_SECONDS"], _client_socket())
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


def _events(job_id: int, lifetime: float, client: socket.socket | None):
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
    ends = time.monotonic() + lifetime
    last_sent, last_write = None, time.monotonic()
    while not _client_gone(client):
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
        time.sleep(EVENT_POLL_SECONDS)


def _job_state(job_id: int) -> tuple[dict, bool]:
    job = service.get(db.session, job_id)
    data, finished = job.to_dict(), job.finished
    db.session.rollback()  # hold no transaction open between polls
    return data, finished


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"
