"""The imports JSON API: upload, list, progress (JSON and server-sent events), cancel, retry."""

import os

from flask import Blueprint, current_app, jsonify, request, url_for

from ..accounts import audit
from ..accounts.auth import current_actor, requires
from ..accounts.roles import Role
from ..apiutil import csv_download, json_object, refuse_unknown
from ..errors import AppError, BadRequest, Invalid, TooLarge
from ..extensions import db
from ..security import large_body, refuse_cross_site_requests
from . import resumable, service, streams, uploads

bp = Blueprint("imports_api", __name__, url_prefix="/api/imports")
bp.before_request(refuse_cross_site_requests)


@bp.post("")
@requires(Role.EDITOR)
@large_body
def upload_import():
    """Store the uploaded CSV and queue its import: 202 with the job.

    JSON `{"upload": id}` imports a resumable upload instead, even one still arriving.
    """
    actor = current_actor()
    if request.is_json:
        return _import_upload(actor)
    # Refused before a byte of the body is read: a quota or a full disk wastes no upload.
    service.refuse_past_quota(db.session, actor)
    uploads.refuse_if_disk_would_fill(request.content_length or 0)
    file = request.files.get("file")
    if file is None:
        raise BadRequest("Send the CSV as multipart/form-data in a field named 'file'.")
    path, size = uploads.keep(file)
    try:
        uploads.check(path, size)
    except AppError:
        os.remove(path)
        raise
    filename = file.filename or "upload.csv"
    job = service.create(
        db.session, filename=filename, file_path=path, bytes_total=size, created_by=actor
    )
    audit.record(db.session, "import.created", f"import #{job.id}", file=filename, bytes=size)
    db.session.commit()
    return _accepted(job)


def _import_upload(actor: dict):
    """Queue the import of a resumable upload; it applies only after the upload's last byte."""
    if (request.content_length or 0) > current_app.config["MAX_CONTENT_LENGTH"]:
        raise TooLarge("The JSON body is larger than 1 MiB. Send only the upload's id.")
    body = json_object('import, {"upload": "<upload id>"},')
    refuse_unknown(body, {"upload", "plan", "max_invalid", "columns"})
    if not isinstance(body.get("upload"), str):
        raise Invalid(
            'Name the upload: {"upload": "<upload id>"}.', details={"upload": "Required."}
        )
    _refuse_options_not_supported(body)
    service.refuse_past_quota(db.session, actor)
    upload = resumable.get_owned(db.session, body["upload"], actor["id"])
    if upload.error:
        raise Invalid(f"This upload was refused: {upload.error}")
    job = service.create(
        db.session,
        filename=upload.filename,
        file_path=upload.file_path,
        bytes_total=upload.length,
        created_by=actor,
        upload_id=upload.id,
    )
    audit.record(db.session, "import.created", f"import #{job.id}", upload=upload.id)
    db.session.commit()
    return _accepted(job)


def _refuse_options_not_supported(body: dict) -> None:
    """Plans, error thresholds and column mappings are not read from uploads yet: refuse them
    rather than apply the file in a way that was not asked for."""
    asked = [name for name in ("plan", "max_invalid", "columns") if body.get(name)]
    if asked:
        raise Invalid(
            f"{', '.join(asked)} cannot be used with a resumable upload yet. Import it without, "
            "or upload the file as multipart/form-data.",
            details=dict.fromkeys(asked, "Not supported with an upload yet."),
        )


def _accepted(job):
    location = url_for("imports_api.get_import", job_id=job.id)
    return jsonify(job.to_dict()), 202, {"Location": location}


@bp.get("")
@requires(Role.VIEWER)
def list_imports():
    """Return the import jobs, newest first."""
    return jsonify(items=[job.to_dict() for job in service.list_recent(db.session)])


@bp.get("/<int:job_id>")
@requires(Role.VIEWER)
def get_import(job_id: int):
    """Return one import job."""
    return jsonify(service.get(db.session, job_id).to_dict())


@bp.post("/<int:job_id>/cancel")
@requires(Role.EDITOR)
def cancel_import(job_id: int):
    """Cancel a queued or running import: 202; 409 once finished."""
    job = service.cancel(db.session, job_id)
    audit.record(db.session, "import.cancelled", f"import #{job.id}")
    db.session.commit()
    return jsonify(job.to_dict()), 202


@bp.post("/<int:job_id>/retry")
@requires(Role.EDITOR)
def retry_import(job_id: int):
    """Queue a new import of the same file: 202 with the new job; 409 while it still runs."""
    job = service.retry(db.session, job_id, created_by=current_actor())
    audit.record(db.session, "import.retried", f"import #{job.id}", retry_of=job_id)
    db.session.commit()
    return _accepted(job)


@bp.get("/<int:job_id>/errors.csv")
@requires(Role.VIEWER)
def rejected_rows_csv(job_id: int):
    """Stream `line,sku,reason` for every rejected row."""
    service.get(db.session, job_id)
    rows = service.rejected_rows(db.session, job_id)
    return csv_download(rows, ("line", "sku", "reason"), f"import-{job_id}-errors.csv")


@bp.get("/<int:job_id>/rejected.csv")
@requires(Role.VIEWER)
def rejected_rows_file(job_id: int):
    """Stream the rejected rows as the file had them, after `line,reason`: fix, import again."""
    header, rows = service.rejected_file(db.session, service.get(db.session, job_id))
    return csv_download(rows, header, f"import-{job_id}-rejected.csv")


@bp.get("/<int:job_id>/events")
@requires(Role.VIEWER)
def import_events(job_id: int):
    """Stream the job's progress as server-sent events until it has finished."""
    service.get(db.session, job_id)
    db.session.rollback()  # hold no transaction open while the stream lasts
    return streams.progress_stream(job_id)
