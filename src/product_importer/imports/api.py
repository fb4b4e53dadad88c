"""The imports JSON API: upload, list, progress (JSON and server-sent events), cancel, retry."""

import os

from flask import Blueprint, current_app, jsonify, request, url_for

from ..accounts import audit
from ..accounts.auth import current_actor, requires
from ..accounts.roles import Role
from ..apiutil import (
    csv_download,
    json_object,
    json_object_or_none_sent,
    page_count,
    paging,
    refuse_unknown,
    true_or_false,
    whole_number,
)
from ..errors import AppError, BadRequest, Conflict, Invalid, TooLarge
from ..extensions import db, removed_unless_committed
from ..security import large_body, refuse_cross_site_requests
from . import changes, options, plans, resumable, service, streams, uploads

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
    # A body sent in chunks says not its size: taken as the largest a file may be.
    announced = request.content_length
    largest = current_app.config["MAX_UPLOAD_BYTES"]
    uploads.refuse_if_disk_would_fill(largest if announced is None else announced)
    file = request.files.get("file")
    if file is None:
        raise BadRequest("Send the CSV as multipart/form-data in a field named 'file'.")
    given = options.parse(request.form)
    path, size = uploads.keep(file)
    try:
        uploads.check(path, size)
    except AppError:
        os.remove(path)
        raise
    # refused (the quota, looked at again) or cut: no job keeps the file
    with removed_unless_committed(path):
        job = service.create(
            db.session,
            filename=file.filename,
            file_path=path,
            bytes_total=size,
            created_by=actor,
            sha256=uploads.sha256(path),
            options=options.Options(**given),
        )
        what = f"import #{job.id}"
        audit.record(db.session, "import.created", what, file=job.filename, bytes=size, **given)
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
    given = options.parse(body, json_body=True)
    asked_with = options.Options(**given)
    sha256 = _checked_sha256(resumable.get_owned(db.session, body["upload"], actor["id"]))
    # Read again, locked, after hashing (1 GB under the lock would hold others): a second ask
    # for its import waits here, then finds the first; and its last piece compares the file
    # with earlier imports for the imports committed by then (`service.note_same_file`).
    upload = resumable.get_owned(db.session, body["upload"], actor["id"], lock=True)
    sha256 = sha256 or _checked_sha256(upload)  # its last piece may have arrived meanwhile
    if (asked := service.unfinished_import_of(db.session, upload.id)) is not None:
        return _asked_again(asked, asked_with)
    service.refuse_past_quota(db.session, actor)
    job = service.create(
        db.session,
        filename=upload.filename,
        file_path=upload.file_path,
        bytes_total=upload.length,
        created_by=actor,
        sha256=sha256,
        options=asked_with,
        upload_id=upload.id,
    )
    audit.record(db.session, "import.created", f"import #{job.id}", upload=upload.id, **given)
    db.session.commit()
    return _accepted(job)


def _checked_sha256(upload) -> str | None:
    """The SHA-256 of an upload already whole, None for one still arriving (not compared);
    Invalid for one refused at its last byte."""
    if upload.error:
        raise Invalid(f"This upload was refused: {upload.error}")
    try:
        return uploads.sha256(upload.file_path) if upload.completed_at else None
    except FileNotFoundError:  # removed with the end of an import of it: HEAD says 404 too
        raise resumable.file_gone(upload.id) from None


def _asked_again(job, given: options.Options):
    """The import already asked for an upload, asked for again (a page reloaded before the
    first answer came, a client retrying a lost one): the same job, or 409 if the options
    differ. A second job would read the same bytes and import the file twice."""
    if service.options_of(job) != given:
        raise Conflict(
            f"This upload is already being imported, as import #{job.id}, with other options. "
            "Follow that import, or cancel it and ask again.",
            details={"import": job.id},
        )
    return _accepted(job)


def _accepted(job):
    location = url_for("imports_api.get_import", job_id=job.id)
    return jsonify(service.job_json(db.session, job)), 202, {"Location": location}


@bp.get("")
@requires(Role.VIEWER)
def list_imports():
    """Return a page of the import jobs, newest first (the first 200 unless `page` says)."""
    page, per_page = paging(service.HISTORY_PER_PAGE, most=service.HISTORY_PER_PAGE)
    jobs = service.list_recent(db.session, limit=per_page, page=page)
    total = service.count_jobs(db.session)
    return jsonify(
        items=[service.job_json(db.session, job) for job in jobs],
        page=page,
        pages=page_count(total, per_page),
        per_page=per_page,
        total=total,
    )


@bp.get("/<int:job_id>")
@requires(Role.VIEWER)
def get_import(job_id: int):
    """Return one import job."""
    return jsonify(service.job_json(db.session, service.get(db.session, job_id)))


@bp.post("/<int:job_id>/cancel")
@requires(Role.EDITOR)
def cancel_import(job_id: int):
    """Cancel a queued or running import: 202; 409 once finished."""
    job = service.cancel(db.session, job_id)
    audit.record(db.session, "import.cancelled", f"import #{job.id}")
    db.session.commit()
    return jsonify(service.job_json(db.session, job)), 202


@bp.post("/<int:job_id>/retry")
@requires(Role.EDITOR)
def retry_import(job_id: int):
    """Queue a new import of the same file: 202 with the new job; 409 while it still runs.

    A JSON body may set `plan`, `max_invalid` and `columns`; those not given are the job's own.
    """
    given = _json_options()
    job = service.retry(db.session, job_id, created_by=current_actor(), options=given)
    audit.record(db.session, "import.retried", f"import #{job.id}", retry_of=job_id, **given)
    db.session.commit()
    return _accepted(job)


def _json_options() -> dict:
    """The import options of a JSON body (none without a body)."""
    body = json_object_or_none_sent("options")
    refuse_unknown(body, set(options.FIELDS))
    return options.parse(body, json_body=True)


@bp.post("/<int:job_id>/apply")
@requires(Role.EDITOR)
def apply_plan(job_id: int):
    """Run a plan's import (the same job): 202; 409 unless it is a plan waiting."""
    job = plans.apply(db.session, job_id, applied_by=current_actor())
    audit.record(db.session, "import.applied", f"import #{job.id}")
    db.session.commit()
    return _accepted(job)


@bp.post("/<int:job_id>/discard")
@requires(Role.EDITOR)
def discard_plan(job_id: int):
    """End a plan without applying it: 200; 409 unless it is a plan waiting."""
    job = plans.discard(db.session, job_id)
    audit.record(db.session, "import.discarded", f"import #{job.id}")
    db.session.commit()
    return jsonify(service.job_json(db.session, job))


@bp.post("/<int:job_id>/undo")
@requires(Role.EDITOR)
def undo_import(job_id: int):
    """Queue the undo of a completed import: 202 with the undo job; 409 when it cannot be."""
    job = plans.undo(db.session, job_id, created_by=current_actor())
    audit.record(db.session, "import.undone", f"import #{job_id}", undo_job=job.id)
    db.session.commit()
    return _accepted(job)


@bp.get("/<int:job_id>/changes")
@requires(Role.VIEWER)
def list_changes(job_id: int):
    """A page of the products the import (or plan) created or updated, before and after."""
    job = service.get(db.session, job_id)
    kind = changes.parse_kind(request.args.get("kind"))
    page = whole_number("page", 1)
    per_page = whole_number("per_page", changes.DEFAULT_PER_PAGE)
    found = changes.page(db.session, job, kind=kind, page=page, per_page=per_page)
    return jsonify(found)


@bp.get("/<int:job_id>/changes.csv")
@requires(Role.VIEWER)
def changes_csv(job_id: int):
    """Stream the change record as CSV: one row per product, its values after and before."""
    job = service.get(db.session, job_id)
    kind = changes.parse_kind(request.args.get("kind"))
    bom = true_or_false("bom")  # for Excel: the import pages ask for it
    rows = changes.csv_rows(db.session, job, kind=kind)
    return csv_download(rows, changes.CSV_HEADER, f"import-{job_id}-changes.csv", bom=bom)


@bp.get("/<int:job_id>/errors.csv")
@requires(Role.VIEWER)
def rejected_rows_csv(job_id: int):
    """Stream `line,sku,reason` for every rejected row."""
    bom = true_or_false("bom")
    service.get(db.session, job_id)
    rows = service.rejected_rows(db.session, job_id)
    return csv_download(rows, ("line", "sku", "reason"), f"import-{job_id}-errors.csv", bom=bom)


@bp.get("/<int:job_id>/rejected.csv")
@requires(Role.VIEWER)
def rejected_rows_file(job_id: int):
    """Stream the rejected rows as the file had them, after `line,reason`: fix, import again."""
    bom = true_or_false("bom")  # for Excel: the import pages ask for it
    header, rows = service.rejected_file(db.session, service.get(db.session, job_id))
    return csv_download(rows, header, f"import-{job_id}-rejected.csv", bom=bom)


@bp.get("/<int:job_id>/events")
@requires(Role.VIEWER)
def import_events(job_id: int):
    """Stream the job's progress as server-sent events until it has finished."""
    service.get(db.session, job_id)
    db.session.rollback()  # hold no transaction open while the stream lasts
    return streams.progress_stream(job_id)
