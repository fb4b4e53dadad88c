"""Import jobs: create, cancel, retry, run the queue, recover jobs whose worker died."""

import fcntl
import gzip
import logging
import os
import socket
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import Connection, Engine, create_engine, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from .. import background
from ..errors import Conflict, NotFound
from ..extensions import db
from ..timeutil import utcnow
from . import csv_rows, runner
from .engine import APPLY_LOCK_KEY, IMPORT_LOCK_KEY
from .models import FINISHED, ImportJob, RejectedRow, Status

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # the first run and two retries after a worker died
CANCELLED_ERROR = "The import was cancelled; the catalog was not changed. Retry it to run it again."
CLEANUP_EVERY_SECONDS = 60.0
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
jobs = ImportJob.__table__
_last_cleanup = {"at": 0.0}


# --- jobs, as the API sees them -------------------------------------------------------------


def create(
    session: Session,
    *,
    filename: str,
    file_path: str,
    bytes_total: int,
    retry_of_id: int | None = None,
) -> ImportJob:
    """Queue an import of a stored file; it starts once committed and earlier jobs are done."""
    job = ImportJob(
        filename=filename[:255],
        file_path=file_path,
        bytes_total=bytes_total,
        retry_of_id=retry_of_id,
        status=Status.QUEUED,
        warnings=[],
    )
    session.add(job)
    session.flush()
    from .tasks import drain_imports

    background.submit_after_commit(session, drain_imports)
    return job


def get(session: Session, job_id: int, *, for_update: bool = False) -> ImportJob:
    """Return the job, or raise NotFound; `for_update` locks its row until the commit."""
    job = session.get(ImportJob, job_id, with_for_update=for_update, populate_existing=for_update)
    if job is None:
        raise NotFound(f"Import {job_id} does not exist.")
    return job


def list_recent(session: Session, *, limit: int = 200) -> list[ImportJob]:
    """Return the newest jobs first."""
    return list(session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(limit)))


def cancel(session: Session, job_id: int) -> ImportJob:
    """Cancel a queued job now, or ask the worker to stop a running one."""
    # Locking the row waits for a worker that is committing the job, and then sees it finished.
    job = get(session, job_id, for_update=True)
    if job.finished:
        raise Conflict(f"Import {job_id} has already finished ({job.status}).")
    job.cancel_requested = True
    if job.status == Status.QUEUED:
        _mark_cancelled(job)
    return job


def _mark_cancelled(job: ImportJob) -> None:
    job.status, job.phase, job.message = Status.CANCELLED, None, "Import cancelled"
    job.error = CANCELLED_ERROR
    job.finished_at = utcnow()


def retry(session: Session, job_id: int) -> ImportJob:
    """Queue a new job for the same stored file."""
    job = get(session, job_id)
    if not job.finished:
        raise Conflict(f"Import {job_id} is still {job.status}; cancel it or wait for it.")
    if job.file_removed_at or not os.path.exists(job.file_path):
        raise Conflict("The uploaded file is no longer kept on the server. Upload it again.")
    return create(
        session,
        filename=job.filename,
        file_path=job.file_path,
        bytes_total=job.bytes_total,
        retry_of_id=job.id,
    )


def rejected_rows(session: Session, job_id: int, *, chunk: int = 5000) -> Iterator[tuple]:
    """Yield `(line, sku, reason)` of every row the job rejected, in line order."""
    last_line = -1
    while True:
        rows = session.execute(
            select(RejectedRow.line, RejectedRow.sku, RejectedRow.reason)
            .where(RejectedRow.job_id == job_id, RejectedRow.line > last_line)
            .order_by(RejectedRow.line)
            .limit(chunk)
        ).all()
        yield from rows
        if len(rows) < chunk:
            return
        last_line = rows[-1].line


def is_applying(session: Session) -> bool:
    """Whether an import is merging into the catalog right now."""
    if session.get_bind().dialect.name == "postgresql":
        got = session.execute(select(func.pg_try_advisory_xact_lock(APPLY_LOCK_KEY))).scalar()
        return not got
    phase = ImportJob.phase == "applying"
    return session.execute(select(ImportJob.id).where(phase).limit(1)).first() is not None


# --- the queue, as workers run it -----------------------------------------------------------


def import_engine() -> Engine:
    """An engine without a pool: each import gets a fresh connection, closed afterwards."""
    engine = current_app.extensions.get("import_engine")
    if engine is None:
        engine = create_engine(
            current_app.config["SQLALCHEMY_DATABASE_URI"],
            poolclass=NullPool,
            **{
                k: v
                for k, v in current_app.config["SQLALCHEMY_ENGINE_OPTIONS"].items()
                if k == "connect_args"
            },
        )
        current_app.extensions["import_engine"] = engine
    return engine


def drain_queue() -> int:
    """Run queued jobs one at a time, oldest first, unless another worker is doing so."""
    ran = 0
    with import_engine().connect() as conn, _import_lock(conn) as locked:
        if not locked:
            return 0
        _prepare_session(conn)
        while (job := _claim_next(conn)) is not None:
            run_claimed(conn, job)
            ran += 1
    return ran


@contextmanager
def _import_lock(conn: Connection) -> Iterator[bool]:
    """Hold the import lock: a PostgreSQL advisory lock, or a lock file beside SQLite."""
    if conn.dialect.name == "postgresql":
        locked = conn.execute(select(func.pg_try_advisory_lock(IMPORT_LOCK_KEY))).scalar()
        conn.commit()
        yield bool(locked)
        return  # closing the connection releases the lock, even if the process dies
    path = os.path.join(current_app.instance_path, "import.lock")
    with open(path, "w") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _prepare_session(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET temp_buffers = '128MB'")
        conn.commit()


def _claim_next(conn: Connection) -> runner.ClaimedJob | None:
    """Mark the oldest queued job running, on this connection; return it."""
    oldest = (
        select(jobs.c.id)
        .where(jobs.c.status == Status.QUEUED)
        .order_by(jobs.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    pid = conn.connection.driver_connection.info.backend_pid if _is_pg(conn) else None
    now = utcnow()
    row = conn.execute(
        update(jobs)
        .where(jobs.c.id == oldest)
        .values(
            status=Status.RUNNING,
            phase="reading",
            message="Parsing CSV",
            attempts=jobs.c.attempts + 1,
            started_at=func.coalesce(jobs.c.started_at, now),
            heartbeat_at=now,
            worker=WORKER_ID,
            db_pid=pid,
        )
        .returning(jobs.c.id, jobs.c.attempts, jobs.c.file_path, jobs.c.bytes_total)
    ).first()
    if row and pid:
        # lets recovery find and end this session if the worker is lost
        conn.exec_driver_sql(
            "SELECT set_config('application_name', %s, false)", (runner.application_name(row.id),)
        )
    conn.commit()
    return runner.ClaimedJob(*row) if row else None


def run_claimed(conn: Connection, job: runner.ClaimedJob) -> None:
    """Run a claimed job to its end and record the outcome; never raise."""
    limit = 10 * current_app.config["MAX_UPLOAD_BYTES"]
    started = time.monotonic()
    try:
        runner.run(
            conn,
            db.engine,
            job,
            max_decompressed=limit,
            before_commit=_publish_outcome,
            after_commit=_send_now,
        )
        log.info("import %s finished in %.1fs", job.id, time.monotonic() - started)
    except runner.Cancelled:
        _finish(
            job,
            Status.CANCELLED,
            "Import cancelled",
            CANCELLED_ERROR,
        )
    except csv_rows.FileRejected as error:
        _finish(job, Status.FAILED, "Import failed", str(error))
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        _finish(
            job,
            Status.FAILED,
            "Import failed",
            f"The compressed file is damaged or incomplete ({error}); the catalog was not "
            "changed. Compress the CSV again, or upload it uncompressed.",
        )
    except FileNotFoundError:
        _finish(
            job,
            Status.FAILED,
            "Import failed",
            "The uploaded file is no longer on the server. Upload it again.",
        )
    except Exception as error:
        log.exception("import %s failed", job.id)
        _finish(
            job,
            Status.FAILED,
            "Import failed",
            f"The import failed unexpectedly ({_describe(error)}); the catalog was not "
            "changed. Retry the import; if it fails again, ask the operator to check the "
            "worker log.",
        )


def _describe(error: Exception) -> str:
    if isinstance(error, DBAPIError) and error.orig is not None:
        return f"{type(error.orig).__name__}: {str(error.orig).strip().splitlines()[0]}"
    return f"{type(error).__name__}: {error}"


def _finish(job: runner.ClaimedJob, status: str, message: str, error: str | None) -> None:
    """Record how a run ended, unless another attempt has taken the job over."""
    with db.engine.begin() as conn:
        finished = conn.execute(
            update(jobs)
            .where(
                jobs.c.id == job.id,
                jobs.c.status == Status.RUNNING,
                jobs.c.attempts == job.attempts,
            )
            .values(
                status=status,
                phase=None,
                message=message,
                error=error,
                finished_at=utcnow(),
                eta_seconds=None,
            )
        ).rowcount
        deliveries = _publish_outcome(conn, job.id) if finished and status == Status.FAILED else []
    _send_now(deliveries)


def _publish_outcome(conn: Connection, job_id: int) -> list[int]:
    """Queue the `import.completed` or `import.failed` webhook in the caller's transaction.

    The caller sends the returned deliveries (`_send_now`) after its commit.
    """
    from ..webhooks import events

    values = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().one()
    row = ImportJob(**values)  # not added to any session: only serialized
    if row.status in (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS):
        return events.publish(conn, "import.completed", row.to_dict(), will_send=True)
    if row.status == Status.FAILED:
        return events.publish(conn, "import.failed", row.to_dict(), will_send=True)
    return []


def _send_now(delivery_ids: list[int]) -> None:
    """Start the committed import's deliveries now rather than at the next sweep."""
    from ..webhooks import events

    try:
        events.send(delivery_ids)
    except Exception:  # the periodic sweep sends them anyway
        log.warning("could not start webhook deliveries %s now", delivery_ids, exc_info=True)


# --- periodic maintenance -------------------------------------------------------------------


def periodic() -> None:
    """Recover jobs whose worker died, start the queue if idle, remove old uploads."""
    if recover_stale_jobs() or _queue_idle():
        from .tasks import drain_imports

        background.submit(drain_imports)
    if time.monotonic() - _last_cleanup["at"] >= CLEANUP_EVERY_SECONDS:
        _last_cleanup["at"] = time.monotonic()
        remove_expired_uploads()
        remove_abandoned_parts()


def recover_stale_jobs() -> int:
    """Requeue (or, after MAX_ATTEMPTS, fail) running jobs whose heartbeat stopped."""
    timeout = current_app.config["IMPORT_HEARTBEAT_TIMEOUT_SECONDS"]
    cutoff = utcnow() - timedelta(seconds=timeout)
    with db.engine.begin() as conn:
        stale = conn.execute(
            select(jobs.c.id, jobs.c.attempts, jobs.c.db_pid, jobs.c.cancel_requested)
            .where(jobs.c.status == Status.RUNNING, jobs.c.heartbeat_at < cutoff)
            .with_for_update(skip_locked=True)
        ).all()
        deliveries = []
        for job in stale:
            _terminate_backend(conn, job.id, job.db_pid)
            if job.cancel_requested:
                _cancel_lost(conn, job.id, job.attempts, cutoff)
            else:
                deliveries += _requeue_or_fail(conn, job.id, job.attempts, timeout, cutoff)
    _send_now(deliveries)
    return len(stale)


def _terminate_backend(conn: Connection, job_id: int, pid: int | None) -> None:
    """End a lost worker's database session, so its transaction and lock go away."""
    if pid and _is_pg(conn):
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid = %s AND application_name = %s",
            (pid, runner.application_name(job_id)),
        )


def _still_stale(job_id: int, attempts: int, cutoff: datetime):
    """An UPDATE of the job only while it is the same stale attempt.

    SQLite has no row locks: the import may have committed since the SELECT, while this
    statement waited for the database's write lock.
    """
    return update(jobs).where(
        jobs.c.id == job_id,
        jobs.c.status == Status.RUNNING,
        jobs.c.attempts == attempts,
        jobs.c.heartbeat_at < cutoff,
    )


def _cancel_lost(conn: Connection, job_id: int, attempts: int, cutoff: datetime) -> None:
    """A job whose worker died after a cancel was asked for ends cancelled, not run again."""
    conn.execute(
        _still_stale(job_id, attempts, cutoff).values(
            status=Status.CANCELLED,
            phase=None,
            message="Import cancelled",
            finished_at=utcnow(),
            eta_seconds=None,
            error=CANCELLED_ERROR,
        )
    )


def _requeue_or_fail(
    conn: Connection, job_id: int, attempts: int, timeout: float, cutoff: datetime
) -> list[int]:
    """Run a lost job again, or fail it after MAX_ATTEMPTS; return webhook deliveries to send."""
    lost = f"The worker running this import stopped responding for {timeout:.0f} seconds"
    still_stale = _still_stale(job_id, attempts, cutoff)
    if attempts >= MAX_ATTEMPTS:
        failed = conn.execute(
            still_stale.values(
                status=Status.FAILED,
                phase=None,
                message="Import failed",
                finished_at=utcnow(),
                error=f"{lost}, {attempts} times. The catalog was not changed. Check that workers "
                "are running and have enough memory, then retry the import.",
            )
        ).rowcount
        return _publish_outcome(conn, job_id) if failed else []
    requeued = conn.execute(
        still_stale.values(
            status=Status.QUEUED,
            phase=None,
            worker=None,
            db_pid=None,
            message=f"{lost}; starting again (attempt {attempts + 1} of {MAX_ATTEMPTS})",
        )
    ).rowcount
    if requeued:
        log.warning("import %s: worker lost; requeued for attempt %s", job_id, attempts + 1)
    return []


def _queue_idle() -> bool:
    """Whether jobs wait while none runs: a lost wake-up message, or a worker just started."""
    with db.engine.connect() as conn:
        queued = conn.execute(select(jobs.c.id).where(jobs.c.status == Status.QUEUED).limit(1))
        running = conn.execute(select(jobs.c.id).where(jobs.c.status == Status.RUNNING).limit(1))
        return queued.first() is not None and running.first() is None


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
            _remove_file(path)
            conn.execute(
                update(jobs).where(jobs.c.file_path == path).values(file_removed_at=utcnow())
            )
    return len(paths)


ABANDONED_PART_SECONDS = 24 * 3600


def remove_abandoned_parts() -> int:
    """Delete half-received uploads left by a web process that died while receiving them."""
    cutoff = time.time() - ABANDONED_PART_SECONDS  # no upload takes a day
    removed = 0
    for part in Path(current_app.config["UPLOAD_FOLDER"]).glob(".incoming-*.part"):
        with suppress(FileNotFoundError):  # finished meanwhile
            if part.stat().st_mtime < cutoff:
                part.unlink()
                removed += 1
    return removed


def _remove_file(path: str) -> None:
    with suppress(FileNotFoundError):
        os.remove(path)


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"
