"""The import queue, as workers run it: claim the oldest job, run it, record how it ended.

One worker at a time runs the queue (a lock the database holds for it), so imports apply one
at a time, in upload order. The path of a job goes one way: claim -> `runner.Run` (read, stage,
merge) -> `endings` (final row and webhook, in the import's transaction) -> commit -> send.
"""

import dataclasses
import logging
import os
import socket
import time

from flask import current_app
from sqlalchemy import Connection, Engine, create_engine, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from .. import database
from ..extensions import db
from ..timeutil import utcnow
from ..webhooks import events
from .endings import announce, final_values, record_end, stopped_values
from .engine import refresh_search
from .failures import Cancelled, ImportStopped, Unexpected
from .models import ImportJob
from .progress import ClaimedJob
from .runner import Run, application_name
from .states import Kind, Phase, Status

log = logging.getLogger(__name__)

DRAIN_TASK = "product_importer.imports.drain_imports"
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
jobs = ImportJob.__table__
CLAIMED = [field.name for field in dataclasses.fields(ClaimedJob)]


def import_engine() -> Engine:
    """An engine without a pool: each import gets a fresh connection, closed afterwards."""
    engine = current_app.extensions.get("import_engine")
    if engine is None:
        options = current_app.config["SQLALCHEMY_ENGINE_OPTIONS"]
        engine = create_engine(
            current_app.config["SQLALCHEMY_DATABASE_URI"],
            poolclass=NullPool,
            connect_args=options.get("connect_args", {}),
        )
        current_app.extensions["import_engine"] = engine
    return engine


def drain_queue() -> int:
    """Run queued jobs one at a time, oldest first, unless another worker is doing so."""
    ran = 0
    with import_engine().connect() as conn:
        seam = database.of(conn)
        with seam.import_lock(conn) as locked:
            if not locked:
                return 0
            seam.prepare_import(conn)
            refresh_search(conn, db.engine)  # left by a worker lost after an import committed
            while (job := claim_next(conn)) is not None:
                run_claimed(conn, job)
                ran += 1
                refresh_search(conn, db.engine)
    return ran


def claim_next(conn: Connection) -> ClaimedJob | None:
    """Mark the oldest queued job running, on this connection; return it."""
    oldest = (
        select(jobs.c.id)
        .where(jobs.c.status == Status.QUEUED)
        .order_by(jobs.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    seam, now = database.of(conn), utcnow()
    row = conn.execute(
        update(jobs)
        .where(jobs.c.id == oldest)
        .values(
            status=Status.RUNNING,
            phase=Phase.READING,
            message="Parsing CSV",
            attempts=jobs.c.attempts + 1,
            started_at=func.coalesce(jobs.c.started_at, now),
            heartbeat_at=now,
            # figures of an earlier attempt are not this one's: unknown until measured
            rows_per_second=None,
            eta_seconds=None,
            worker=WORKER_ID,
            db_pid=seam.session_id(conn),
        )
        .returning(*(jobs.c[name] for name in CLAIMED))
    ).first()
    if row:
        # lets recovery find and end this session if the worker is lost
        seam.name_session(conn, application_name(row.id))
    conn.commit()
    return ClaimedJob(**(row._asdict() | {"warnings": tuple(row.warnings or ())})) if row else None


def run_claimed(conn: Connection, job: ClaimedJob) -> None:
    """Run a claimed job to its end and record the outcome; never raise."""
    started = time.monotonic()
    try:
        deliveries = _apply(conn, job)
        log.info("import %s finished in %.1fs", job.id, time.monotonic() - started)
    except ImportStopped as stop:
        deliveries = _end_stopped(job, stop)
    except Exception as error:
        log.exception("import %s failed", job.id)
        deliveries = _end_stopped(job, Unexpected(_describe(error)))
    events.send(deliveries)


def _apply(conn: Connection, job: ClaimedJob) -> list[int]:
    """Run the job and end it in one transaction; return the webhook deliveries."""
    config = current_app.config
    limit = 10 * config["MAX_UPLOAD_BYTES"]
    record = config["IMPORT_CHANGE_RECORD"]
    with Run(conn, db.engine, job, max_decompressed=limit, record_changes=record) as run:
        values = run.undo() if job.kind == Kind.UNDO else _import(run)
        # The job row is now locked until the commit: a cancel that came before is seen here
        # (the heartbeat may not have noticed it yet); a later one waits and finds it ended.
        row = record_end(conn, job.id, job.attempts, values)
        if row is None:  # recovery gave the job to another attempt: that one ends it
            raise ImportStopped("This attempt lost the job to another worker.")
        if row.cancel_requested:
            raise Cancelled()
        if job.kind == Kind.UNDO:
            conn.execute(update(jobs).where(jobs.c.id == job.undo_of).values(undone_by=job.id))
        deliveries = announce(conn, row)
        conn.commit()
    return deliveries


def _import(run: Run) -> dict:
    """Import (or plan) the job's file; return the job's end values."""
    outcome = run.import_file()
    values = final_values(outcome.status(), error=outcome.no_valid_reason)
    if message := outcome.message():
        values["message"] = message
    return values | run.end_values(outcome)


def _end_stopped(job: ClaimedJob, stop: ImportStopped) -> list[int]:
    """Record a job that stopped without applying, unless another attempt has taken it over."""
    with db.engine.begin() as conn:
        return announce(conn, record_end(conn, job.id, job.attempts, stopped_values(stop)))


def _describe(error: Exception) -> str:
    if isinstance(error, DBAPIError) and error.orig is not None:
        return f"{type(error.orig).__name__}: {str(error.orig).strip().splitlines()[0]}"
    return f"{type(error).__name__}: {error}"
