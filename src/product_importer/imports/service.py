"""Import jobs as the API sees them: create, read, cancel, retry, rejected rows."""

import json
import os
from collections.abc import Iterator
from dataclasses import replace

from flask import current_app, has_request_context, request
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from .. import background, database
from ..errors import Conflict, NotFound, TooMany
from . import runner, uploads
from .endings import final_values
from .failures import RETRY_CANNOT_FIX, cancelled
from .models import ImportJob, RejectedRow, Upload
from .options import Options
from .queue import DRAIN_TASK
from .states import FINISHED, SUCCEEDED, Kind, Status


def create(
    session: Session,
    *,
    filename: str,
    file_path: str,
    bytes_total: int,
    created_by: dict | None,
    sha256: str | None = None,
    options: Options | None = None,
    retry_of_id: int | None = None,
    upload_id: str | None = None,
) -> ImportJob:
    """Queue an import of a stored file; it starts once committed and earlier jobs are done.

    `created_by` is `{"id", "email"}` of the account that asked for it; None from a terminal.
    A file identical (`sha256`) to an earlier completed import is noted with a warning.
    """
    refuse_past_quota(session, created_by)
    options = options or Options()
    earlier = same_file_imported(session, sha256)
    job = ImportJob(
        filename=uploads.shown_name(filename),
        file_path=file_path,
        bytes_total=bytes_total,
        retry_of_id=retry_of_id,
        upload_id=upload_id,
        origin=asked_at(),
        created_by_id=created_by and created_by["id"],
        created_by=created_by and created_by["email"],
        status=Status.QUEUED,
        sha256=sha256,
        duplicate_of=earlier and earlier.id,
        warnings=duplicate_warnings(earlier),
        plan=options.plan,
        max_invalid=options.max_invalid,
        columns=options.columns,
    )
    session.add(job)
    session.flush()
    background.send_after_commit(session, DRAIN_TASK)
    return job


def asked_at() -> str | None:
    """The app's address as the request asking for an import reached it, for its webhook's
    `changes_url`; None from the command line. Flask refuses a Host name not in ALLOWED_HOSTS
    but takes any port: one the Host names must be the port `serve` listens on (SERVE_PORT),
    else an editor could send receivers, and their tokens, to a port of their choosing."""
    if not has_request_context():
        return None
    _, colon, port = request.host.rpartition(":")
    if colon and port != current_app.config["SERVE_PORT"]:
        return None  # the path alone
    return request.url_root.rstrip("/")


def same_file_imported(session: Session, sha256: str | None) -> ImportJob | None:
    """The latest completed import of a file with this SHA-256 still in effect, if any: the
    file of an undone import is imported again without a warning that it already was."""
    if sha256 is None:
        return None
    return session.scalars(
        select(ImportJob)
        .where(
            ImportJob.sha256 == sha256,
            ImportJob.kind == Kind.IMPORT,
            ImportJob.status.in_(SUCCEEDED),
            ImportJob.undone_by.is_(None),
        )
        .order_by(ImportJob.id.desc())
        .limit(1)
    ).first()


def note_same_file(session: Session, upload_id: str, sha256: str) -> None:
    """Give the imports that followed an upload its SHA-256, now whole, and the warning when
    the file is identical to an earlier completed import (their runs read it at the end)."""
    earlier = same_file_imported(session, sha256)
    # the rows locked: an import ending meanwhile (`Run.end_values`) is waited for, then read
    waiting = select(ImportJob).where(ImportJob.upload_id == upload_id, ImportJob.sha256.is_(None))
    for job in session.scalars(waiting.with_for_update()):
        job.sha256 = sha256
        if earlier is not None and earlier.id != job.id:
            job.duplicate_of = earlier.id
            job.warnings = [*(job.warnings or []), *duplicate_warnings(earlier)]


def unfinished_import_of(session: Session, upload_id: str) -> ImportJob | None:
    """The import of the upload that is still waiting or running, if any."""
    asked = select(ImportJob).where(
        ImportJob.upload_id == upload_id, ImportJob.status.notin_(FINISHED)
    )
    return session.scalars(asked.order_by(ImportJob.id).limit(1)).first()


def options_of(job: ImportJob) -> Options:
    """The options the import was asked with."""
    return Options(plan=job.plan, max_invalid=job.max_invalid, columns=job.columns)


SAME_FILE_NOTE = "This file is identical to import #"


def duplicate_warnings(earlier: ImportJob | None) -> list[str]:
    """The warning a job gets when its file is identical to `earlier`'s."""
    if earlier is None:
        return []
    when = (earlier.finished_at or earlier.created_at).strftime("%Y-%m-%d %H:%M UTC")
    return [f"{SAME_FILE_NOTE}{earlier.id} of {when}."]


def refuse_past_quota(session: Session, actor: dict | None) -> None:
    """Raise TooMany once `actor` has MAX_QUEUED_IMPORTS imports waiting or running (none for
    the command line): those it uploaded, and plans it applied."""
    if actor is None:
        return
    quota = current_app.config["MAX_QUEUED_IMPORTS"]
    # An applied plan is the work of who applied it, who queued it just now; its uploader
    # may not even know it was applied, and would be refused for someone else's work. One
    # applied from the command line is no one's (applied_by_id None); one applied before
    # migration 0021 has no applied_at.
    owner = case(
        (
            ImportJob.applied_at.is_(None),
            func.coalesce(ImportJob.applied_by_id, ImportJob.created_by_id),
        ),
        else_=ImportJob.applied_by_id,
    )
    unfinished = session.scalar(
        select(func.count())
        .select_from(ImportJob)
        .where(owner == actor["id"], ImportJob.status.notin_(FINISHED))
    )
    if unfinished >= quota:
        raise TooMany(
            f"You have {unfinished} import{'s' if unfinished != 1 else ''} waiting or running; "
            f"the limit is {quota}. "
            "Wait for one to finish, or cancel one, then upload again."
        )


def get(session: Session, job_id: int, *, for_update: bool = False) -> ImportJob:
    """Return the job, or raise NotFound; `for_update` locks its row until the commit."""
    # FOR NO KEY UPDATE: a running import holds a key-share lock on its job row (its change
    # record refers to it), which a cancel must not wait for.
    lock = {"key_share": True} if for_update else None
    if for_update:
        # a second request (an Undo clicked twice) reads the job once the first has committed
        database.of(session).lock_before_reading(session, ImportJob, job_id)
    job = session.get(ImportJob, job_id, with_for_update=lock, populate_existing=for_update)
    if job is None:
        raise NotFound(f"Import {job_id} does not exist.")
    return job


HISTORY_PER_PAGE = 200  # the jobs of one page of the history (and of GET /api/imports)


def list_recent(
    session: Session, *, limit: int = HISTORY_PER_PAGE, page: int = 1
) -> list[ImportJob]:
    """Return one page of the jobs, the newest first."""
    query = select(ImportJob).order_by(ImportJob.id.desc())
    return list(session.scalars(query.offset((page - 1) * limit).limit(limit)))


def count_jobs(session: Session) -> int:
    """How many jobs there are, each page of the history together."""
    return session.scalar(select(func.count()).select_from(ImportJob)) or 0


def cancel(session: Session, job_id: int) -> ImportJob:
    """Cancel a queued job now, or ask the worker to stop a running one."""
    # On SQLite the merge holds the one writer until it commits: the request written below
    # would wait for it, and come too late. A run of this process is stopped first, in memory;
    # its rollback frees the writer.
    stopped_here = database.of(session).one_writer and runner.cancel_here(job_id)
    # Locking the row waits for a worker that is committing the job, and then sees it finished.
    job = get(session, job_id, for_update=True)
    ended_by_this = stopped_here and job.status == Status.CANCELLED
    if job.status == Status.PLANNED:
        raise Conflict(f"Import {job_id} is a plan waiting: discard it instead.")
    if job.finished and not ended_by_this:
        raise Conflict(f"Import {job_id} has already finished ({job.status}).")
    job.cancel_requested = True
    if job.status == Status.QUEUED:
        error = str(cancelled(job.undo_of))
        for column, value in final_values(Status.CANCELLED, error=error).items():
            setattr(job, column, value)
    return job


def retry(
    session: Session, job_id: int, *, created_by: dict | None, options: dict | None = None
) -> ImportJob:
    """Queue a new job for the same stored file, with the options given or the job's own."""
    job = get(session, job_id)
    if job.kind != Kind.IMPORT:
        # only one that ended without undoing may be asked for again (queued, it still runs)
        ended_short = job.status in (Status.FAILED, Status.CANCELLED)
        again = f"; undo import {job.undo_of} again instead" if ended_short else ""
        raise Conflict(f"Job {job_id} is an undo: it cannot be retried{again}.")
    if not job.finished:
        raise Conflict(f"Import {job_id} is still {job.status}; cancel it or wait for it.")
    refusal = retry_refusal(session, job)
    if refusal:
        raise Conflict(refusal)
    return create(
        session,
        filename=job.filename,
        file_path=job.file_path,
        bytes_total=job.bytes_total,
        created_by=created_by,
        sha256=job.sha256,
        options=replace(options_of(job), **(options or {})),
        retry_of_id=job.id,
        upload_id=job.upload_id,  # an upload still arriving is followed again
    )


NOT_KEPT = "The uploaded file is no longer kept on the server. Upload it again."


def job_json(session: Session, job: ImportJob) -> dict:
    """The job's JSON as the API serves it: with `retry_refusal`, why a retry of it would be
    refused (409), so that a page offers no Retry that cannot work."""
    refusal = None
    if job.finished and job.kind == Kind.IMPORT:
        refusal = retry_refusal(session, job)
    return job.to_dict() | {"retry_refusal": refusal} | progress_here(session, job)


def progress_here(session: Session, job: ImportJob) -> dict:
    """A running job's progress as its run in this process has it now, over what its row says.

    On SQLite the merge holds the one writer, and the heartbeat cannot write the bar's
    progress until the merge commits; the web requests of the embedded worker's process read
    it in memory. Elsewhere the row is the truth (its worker may be another process).
    """
    if not database.of(session).one_writer:
        return {}
    return run_progress(job)


def run_progress(job: ImportJob) -> dict:
    """A running job's progress as its run in this process has it now, over what its row
    says (written every HEARTBEAT_SECONDS); {} if it does not run here."""
    if job.status != Status.RUNNING:
        return {}
    figures = runner.progress_here(job.id, job.attempts)
    if figures is None:
        return {}
    return figures | {"percent": round(max(figures["percent"], job.percent or 0.0), 1)}


def retry_refusal(session: Session, job: ImportJob) -> str | None:
    """Why the job's file cannot be imported again, and what to do instead; None if it can.

    A file its bytes failed (`error_code`) would fail the same way: it is to be fixed first.
    """
    cannot_fix = RETRY_CANNOT_FIX.get(job.error_code)
    if job.file_removed_at or not os.path.exists(job.file_path):
        return cannot_fix or NOT_KEPT
    whole = job.upload_id is None or job.sha256 is not None  # multipart, or a finished upload
    upload = None if whole else session.get(Upload, job.upload_id)
    if upload is not None and upload.error:
        return f"This upload was refused: {upload.error}"
    if cannot_fix or whole:
        return cannot_fix
    if upload is None:  # cancelled or expired before its last byte (or refused, then expired)
        return (
            "The upload of this file stopped before its last byte: the file never arrived "
            "whole. Upload the file again."
        )
    return None  # still arriving: a retry follows it again


def refuse_without_file(job: ImportJob) -> None:
    """Raise Conflict when the job's uploaded file is no longer kept."""
    if job.file_removed_at or not os.path.exists(job.file_path):
        raise Conflict(NOT_KEPT)


def rejected_rows(session: Session, job_id: int) -> Iterator[tuple]:
    """Yield `(line, sku, reason)` of every row the job rejected, in line order."""
    for row in _rejected(session, job_id):
        yield row.line, row.sku, row.reason


REPORT_COLUMNS = ("line", "reason")


def rejected_file(session: Session, job: ImportJob) -> tuple[list[str], Iterator[list]]:
    """The header and rows of the rejected rows as the file had them, after `line,reason`.

    Importing these rows once fixed is the repair: the two added columns are ignored then.
    Jobs that kept no cells (before migration 0008) give their SKU alone.
    """
    names = json.loads(job.source_header) if job.source_header else ["sku"]

    def cells(row) -> list[str]:
        if not job.source_header:
            return [row.sku or ""]
        # a row whose quotes could not be read has no cells: its line says where to look
        return json.loads(row.cells) if row.cells is not None else []

    def rows():
        for row in _rejected(session, job.id):
            yield [row.line, row.reason, *cells(row)]

    return [*REPORT_COLUMNS, *names], rows()


def _rejected(session: Session, job_id: int, *, chunk: int = 5000) -> Iterator:
    """Yield the rows the job rejected, in line order, a chunk of them at a time."""
    last_line = -1
    while True:
        rows = session.execute(
            select(RejectedRow.line, RejectedRow.sku, RejectedRow.reason, RejectedRow.cells)
            .where(RejectedRow.job_id == job_id, RejectedRow.line > last_line)
            .order_by(RejectedRow.line)
            .limit(chunk)
        ).all()
        yield from rows
        if len(rows) < chunk:
            return
        last_line = rows[-1].line
