"""What people do with a finished job: apply or discard a plan, undo a completed import."""

from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from .. import background
from ..errors import Conflict
from ..timeutil import aware, utcnow
from .endings import final_values
from .engine import discard_plan
from .models import ImportChange, ImportJob
from .progress import PLAN_SHARE
from .queue import DRAIN_TASK
from .service import (
    SAME_FILE_NOTE,
    duplicate_warnings,
    get,
    refuse_past_quota,
    refuse_without_file,
    same_file_imported,
)
from .states import FINISHED, PLANNED_KINDS, SUCCEEDED, Kind, Status

# What an applied plan starts again from: the run measures everything anew, but its percent
# goes on from the plan's (PLAN_SHARE): a bar watched since the upload never goes back.
FRESH_RUN = {
    "phase": None,
    "message": "Waiting for a worker",
    "bytes_processed": 0,
    "rows_per_second": None,
    "eta_seconds": None,
    "error": None,
    "started_at": None,
    "finished_at": None,
    "heartbeat_at": None,
    "attempts": 0,
    "cancel_requested": False,
}


def _planned(session: Session, job_id: int) -> ImportJob:
    job = get(session, job_id, for_update=True)
    if job.status != Status.PLANNED:
        raise Conflict(f"Import {job_id} is {job.status}, not a plan waiting to be applied.")
    return job


def apply(session: Session, job_id: int, *, applied_by: dict | None) -> ImportJob:
    """Queue a plan's import, as the same job; it compares with the catalog again as it runs.

    `applied_by` is who applies it: the import's end is theirs, its upload the uploader's.
    None is the command line, which acts as no account (as for `import FILE`): the end is then
    no one's, not the uploader's.
    """
    job = _planned(session, job_id)
    refuse_without_file(job)
    refuse_past_quota(session, applied_by)
    earlier = same_file_imported(session, job.sha256)
    for column, value in FRESH_RUN.items():
        setattr(job, column, value)
    job.status, job.plan = Status.QUEUED, False
    # A plan stored before migration 0019's release ended at 100: its apply starts where a
    # plan ends now, since 100 means a job that has ended.
    job.percent = min(job.percent or 0.0, PLAN_SHARE)
    job.applied_by_id = applied_by and applied_by["id"]
    job.applied_by = applied_by and applied_by["email"]
    job.applied_at = utcnow()
    # the file's own warnings stand; whether an identical file was imported is asked again
    own = [warning for warning in job.warnings or [] if not warning.startswith(SAME_FILE_NOTE)]
    duplicate = duplicate_warnings(earlier)
    job.duplicate_of, job.warnings = earlier and earlier.id, [*duplicate, *own]
    background.send_after_commit(session, DRAIN_TASK)
    return job


def discard(session: Session, job_id: int) -> ImportJob:
    """End a plan without applying it (the upkeep removes what it recorded)."""
    job = _planned(session, job_id)
    discard_plan(session.connection(), job_id)
    for column, value in final_values(Status.DISCARDED).items():
        setattr(job, column, value)
    return job


def discard_expired(session: Session) -> int:
    """Discard plans left unapplied for UPLOAD_RETENTION_HOURS; return how many."""
    cutoff = utcnow() - timedelta(hours=current_app.config["UPLOAD_RETENTION_HOURS"])
    expired = session.scalars(
        select(ImportJob.id).where(
            ImportJob.status == Status.PLANNED, ImportJob.finished_at < cutoff
        )
    ).all()
    discarded = 0
    for job_id in expired:
        try:
            discard(session, job_id)
        except Conflict:  # applied (or discarded) since the look: the upkeep goes on
            continue
        discarded += 1
    return discarded


def undo(session: Session, job_id: int, *, created_by: dict | None) -> ImportJob:
    """Queue the undo of a completed import of the last IMPORT_UNDO_DAYS, as a new job."""
    target = get(session, job_id, for_update=True)
    refuse_undo(session, target)
    refuse_past_quota(session, created_by)
    job = ImportJob(
        kind=Kind.UNDO,
        undo_of=target.id,
        filename=target.filename,
        file_path="",
        bytes_total=0,
        created_by_id=created_by and created_by["id"],
        created_by=created_by and created_by["email"],
        status=Status.QUEUED,
        warnings=[],
    )
    session.add(job)
    session.flush()
    background.send_after_commit(session, DRAIN_TASK)
    return job


def refuse_undo(session: Session, target: ImportJob) -> None:
    """Raise Conflict unless `target` is a completed import that can still be undone."""
    if target.kind == Kind.UNDO:
        # "Import 22 is completed: only a completed import can be undone" contradicted itself
        raise Conflict(
            f"Job {target.id} is an undo (of import {target.undo_of}): an undo cannot be "
            f"undone. To bring back what it removed, import the file of import "
            f"{target.undo_of} again."
        )
    if target.status not in SUCCEEDED:
        raise Conflict(
            f"Import {target.id} is {target.status}: only a completed import can be undone."
        )
    days = current_app.config["IMPORT_UNDO_DAYS"]
    if aware(target.finished_at) < utcnow() - timedelta(days=days):
        raise Conflict(
            f"Import {target.id} finished more than {days:g} days ago; its change record is no "
            "longer kept, so it cannot be undone. Import the products you want back instead."
        )
    earlier = undo_under_way(session, target.id)
    if target.undone_by:
        raise Conflict(f"Import {target.id} is already undone (by job {target.undone_by}).")
    if earlier:
        raise Conflict(f"Import {target.id} is being undone (by job {earlier}).")


def undo_under_way(session: Session, target_id: int) -> int | None:
    """The id of the undo of this import that is queued, running or done, if any."""
    return session.scalar(
        select(ImportJob.id).where(
            ImportJob.undo_of == target_id,
            ImportJob.status.notin_([Status.FAILED, Status.CANCELLED]),
        )
    )


def remove_old_changes(session: Session) -> int:
    """Delete the change records of imports finished more than IMPORT_UNDO_DAYS ago, those of
    plans applied or discarded, and rows a failed import's lost attempt left (`bulk.Build.analyze`);
    return how many products they recorded."""
    cutoff = utcnow() - timedelta(days=current_app.config["IMPORT_UNDO_DAYS"])
    # An undo asked for just inside the window reads the record when it runs, maybe later.
    undo = aliased(ImportJob)
    undo_waits = exists().where(
        undo.undo_of == ImportJob.id, undo.status.in_((Status.QUEUED, Status.RUNNING))
    )
    old = select(ImportJob.id).where(
        or_(
            ImportJob.finished_at < cutoff,
            ImportJob.status.in_((Status.FAILED, Status.CANCELLED)),
        ),
        ImportJob.status.in_(FINISHED - {Status.PLANNED}),
        ~undo_waits,
    )
    done_planning = select(ImportJob.id).where(ImportJob.status != Status.PLANNED)
    removed = session.execute(delete(ImportChange).where(ImportChange.job_id.in_(old))).rowcount
    removed += session.execute(
        delete(ImportChange).where(
            ImportChange.kind.in_(PLANNED_KINDS.values()),
            ImportChange.job_id.in_(done_planning),
        )
    ).rowcount
    # the created products' record is the block of ids on the job: forget it
    blocks = ImportJob.id.in_(old) & ImportJob.created_from.is_not(None)
    removed += session.scalar(select(func.coalesce(func.sum(ImportJob.created), 0)).where(blocks))
    session.execute(update(ImportJob).where(blocks).values(created_from=None, created_to=None))
    return int(removed)
