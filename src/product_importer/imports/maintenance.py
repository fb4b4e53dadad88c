"""Upkeep every worker runs each second: recover lost jobs, restart the queue, clean up.

State of this module (when uploads were last cleaned) is per process, which is all it needs:
each worker cleans at most once a minute, and cleaning twice does no harm.
"""

import logging
import os
import time
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from .. import background, database
from ..extensions import db
from ..products import totals
from ..timeutil import utcnow
from ..webhooks import events
from . import bulk, plans, resumable
from .endings import announce, final_values, record_end, stopped_values
from .engine import forget_unused_plans
from .failures import MAX_ATTEMPTS, WorkerLost, cancelled
from .models import ImportJob
from .queue import DRAIN_TASK, ready_to_run
from .runner import application_name
from .states import FINISHED, Status

log = logging.getLogger(__name__)

CLEANUP_EVERY_SECONDS = 60.0
ABANDONED_PART_SECONDS = 24 * 3600  # no upload takes a day
jobs = ImportJob.__table__
_last_cleanup = {"at": 0.0}
BUILD_LEFT_EVERY_SECONDS = 30.0
_build_left_asked = {"at": -BUILD_LEFT_EVERY_SECONDS}


def periodic() -> None:
    """Recover jobs whose worker died, start the queue if idle, remove old uploads."""
    if recover_stale_jobs() or _queue_waiting() or _search_left_refreshing() or _build_left():
        background.submit(DRAIN_TASK)
    if time.monotonic() - _last_cleanup["at"] >= CLEANUP_EVERY_SECONDS:
        _last_cleanup["at"] = time.monotonic()
        _expire_plans_and_changes()
        prune_edit_log()
        remove_expired_uploads()
        remove_expired_resumable_uploads()
        remove_abandoned_parts()


def recover_stale_jobs() -> int:
    """Requeue (or, after MAX_ATTEMPTS, fail) running jobs whose heartbeat stopped."""
    timeout = current_app.config["IMPORT_HEARTBEAT_TIMEOUT_SECONDS"]
    cutoff = utcnow() - timedelta(seconds=timeout)
    with db.engine.begin() as conn:
        stale = conn.execute(
            select(
                jobs.c.id, jobs.c.attempts, jobs.c.db_pid, jobs.c.cancel_requested, jobs.c.undo_of
            )
            .where(jobs.c.status == Status.RUNNING, jobs.c.heartbeat_at < cutoff)
            .with_for_update(skip_locked=True)
        ).all()
        deliveries = []
        for job in stale:
            database.of(conn).end_session(conn, job.db_pid, application_name(job.id))
            deliveries += _recover(conn, job, timeout, cutoff)
    events.send(deliveries)
    return len(stale)


def _recover(conn: Connection, job, timeout: float, cutoff: datetime) -> list[int]:
    """End a lost job (cancelled if asked, failed after MAX_ATTEMPTS) or queue it again."""
    # Only while it is the same stale attempt: on SQLite (no row locks) the import may have
    # committed since the SELECT, while this statement waited for the write lock.
    still_stale = jobs.c.heartbeat_at < cutoff
    if job.cancel_requested:
        values = final_values(Status.CANCELLED, error=str(cancelled(job.undo_of)))
    elif job.attempts >= MAX_ATTEMPTS:
        values = stopped_values(WorkerLost(timeout, job.attempts, job.undo_of))
    else:
        _requeue(conn, job, timeout, still_stale)
        return []
    database.of(conn).drop_staging(conn, job.id)  # what its reading left, never to be applied
    return announce(conn, record_end(conn, job.id, job.attempts, values, still_stale))


def _requeue(conn: Connection, job, timeout: float, still_stale) -> None:
    lost = f"The worker running this import stopped responding for {timeout:.0f} seconds"
    requeued = conn.execute(
        update(jobs)
        .where(
            jobs.c.id == job.id,
            jobs.c.status == Status.RUNNING,
            jobs.c.attempts == job.attempts,
            still_stale,
        )
        .values(
            status=Status.QUEUED,
            phase=None,
            worker=None,
            db_pid=None,
            message=f"{lost}; starting again (attempt {job.attempts + 1} of {MAX_ATTEMPTS})",
        )
    ).rowcount
    if requeued:
        log.warning("import %s: worker lost; requeued for attempt %s", job.id, job.attempts + 1)


def _queue_waiting() -> bool:
    """Whether jobs wait that a drain could start: a lost wake-up, a job handed back, a slot free.

    On PostgreSQL any worker with a free slot may read a queued job while others run; on
    SQLite the one queue runner takes it when its current job ends.
    """
    with db.engine.connect() as conn:
        queued = conn.execute(
            select(jobs.c.id).where(jobs.c.status == Status.QUEUED, ready_to_run()).limit(1)
        )
        if queued.first() is None:
            return False
        if database.of(conn).parallel_reading:
            return True
        running = conn.execute(select(jobs.c.id).where(jobs.c.status == Status.RUNNING).limit(1))
        return running.first() is None


def _search_left_refreshing() -> bool:
    """Whether an import's search index waits to be built while no import runs, nor builds it.

    The import's worker builds it after the switch, the job already completed, holding the
    turn: a drain then could only find the turn taken (one a second from every worker).
    """
    with db.engine.connect() as conn:
        refreshing = conn.execute(
            select(jobs.c.id).where(jobs.c.search_index == "refreshing").limit(1)
        ).first()
        return refreshing is not None and _nothing_applies(conn)


def _build_left() -> bool:
    """Whether a lost import's build of the catalog (a second catalog on disk) is left while no
    import runs nor holds the turn: the drain recovery started may have found the turn taken,
    or the tables still held by the lost import's helpers (`drop_leftovers`)."""
    # At most once in BUILD_LEFT_EVERY_SECONDS: a table held for long (a pg_dump holds every
    # table) would have each worker take the turn and wait for it every second.
    if time.monotonic() - _build_left_asked["at"] < BUILD_LEFT_EVERY_SECONDS:
        return False
    with db.engine.connect() as conn:
        if database.of(conn).name != "postgresql":
            return False  # SQLite builds nothing beside the catalog
        if conn.exec_driver_sql(f"SELECT to_regclass('{bulk.BUILD}')").scalar() is None:
            return False
        left = _nothing_applies(conn)
    if left:
        _build_left_asked["at"] = time.monotonic()
    return left


def _nothing_applies(conn: Connection) -> bool:
    """Whether no import runs, nor holds the turn (one builds its search indexes after its
    commit, an undo...): a drain asked for now would find work, not the turn taken."""
    running = conn.execute(select(jobs.c.id).where(jobs.c.status == Status.RUNNING).limit(1))
    return running.first() is None and not database.of(conn).turn_taken(conn)


def _expire_plans_and_changes() -> None:
    """Discard plans nobody applied in time; drop change records past the undo window, and
    the rows kept by plans no apply will read."""
    try:
        database.of(db.session).without_statement_timeout(db.session)
        discarded = plans.discard_expired(db.session)
        removed = plans.remove_old_changes(db.session)
        forget_unused_plans(db.session.connection())
        db.session.commit()
    finally:
        db.session.remove()
    if discarded or removed:
        log.info("discarded %s expired plans, removed %s old change rows", discarded, removed)


def prune_edit_log() -> int:
    """Drop logged product edits too old to carry a list total over (`products/totals.py`)."""
    with db.engine.begin() as conn:
        database.of(conn).without_statement_timeout(conn)
        pruned = totals.prune_edit_log(conn)
    if pruned:
        log.info("removed %s old rows of the product edit log", pruned)
    return pruned


def remove_expired_uploads() -> int:
    """Delete stored files whose jobs all finished more than UPLOAD_RETENTION_HOURS ago."""
    hours = current_app.config["UPLOAD_RETENTION_HOURS"]
    cutoff = utcnow() - timedelta(hours=hours)
    unfinished = func.sum(func.cast(jobs.c.status.notin_([s.value for s in FINISHED]), db.Integer))
    with db.engine.begin() as conn:
        paths = (
            conn.execute(
                select(jobs.c.file_path)
                .where(jobs.c.file_removed_at.is_(None))
                .group_by(jobs.c.file_path)
                .having(unfinished == 0, func.max(jobs.c.finished_at) < cutoff)
            )
            .scalars()
            .all()
        )
        for path in paths:
            with suppress(FileNotFoundError):
                os.remove(path)
            conn.execute(
                update(jobs).where(jobs.c.file_path == path).values(file_removed_at=utcnow())
            )
    return len(paths)


def remove_expired_resumable_uploads() -> int:
    """Remove tus uploads past their expiry (unfinished ones after UPLOAD_RETENTION_HOURS)."""
    with Session(db.engine) as session:
        removed = resumable.remove_expired(session)
        session.commit()
    return removed


def remove_abandoned_parts() -> int:
    """Delete half-received uploads left by a web process that died while receiving them."""
    cutoff = time.time() - ABANDONED_PART_SECONDS
    removed = 0
    for part in Path(current_app.config["UPLOAD_FOLDER"]).glob(".incoming-*.part"):
        with suppress(FileNotFoundError):  # finished meanwhile
            if part.stat().st_mtime < cutoff:
                part.unlink()
                removed += 1
    return removed
