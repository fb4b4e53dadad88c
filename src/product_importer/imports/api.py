"""The imports JSON API: upload, list, progress (JSON and server-sent events), cancel, retry."""

import csv
import io
import json
import os
import time

from flask import Blueprint, Response, jsonify, request, stream_with_context, url_for

from ..errors import AppError, BadRequest
from ..extensions import db
from ..security import refuse_cross_site_requests
from . import service, uploads

bp = Blueprint("imports_api", __name__, url_prefix="/api/imports")
bp.before_request(refuse_cross_site_requests)

EVENT_POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0


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


@bp.get("/<int:job_id>/events")
def import_events(job_id: int):
    """Stream `progress` events about once a second while the job changes, then `done`."""
    service.get(db.session, job_id)
    db.session.rollback()
    return Response(
        stream_with_context(_events(job_id)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _events(job_id: int):
    last_sent, last_write = None, time.monotonic()
    while True:
        job = service.get(db.session, job_id)
        data = job.to_dict()
        finished = job.finished
        db.session.rollback()  # hold no transaction open between polls
        if finished:
            yield _event("done", data)
            return
        if data != last_sent:
            yield _event("progress", data)
            last_sent, last_write = data, time.monotonic()
        elif time.monotonic() - last_write > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_write = time.monotonic()
        time.sleep(EVENT_POLL_SECONDS)


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"
