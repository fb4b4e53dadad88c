"""The import queue, as workers run it: claim the oldest job, run it, record how it ended.

On PostgreSQL every worker runs the queue: each claims the oldest queued job (`SKIP LOCKED`)
and reads it, side by side with the others, up to IMPORT_SLOTS imports per worker process;
applying waits for the import's turn (`turns.Turn`), so imports apply one at a time, in upload
order. On SQLite one process runs the queue. The path of a job goes one way: claim ->
`runner.Run` (read, stage, wait for the turn, merge) -> `endings` (final row and webhook, in the
import's transaction) -> commit -> send. A worker asked to stop (SIGTERM) hands its imports
back to the queue at once, for another worker.
"""

import dataclasses
import logging
import os
import socket
import threading
import time

from flask import current_app
from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.exc import DBAPIError

from .. import background, database, logs
from ..extensions import db
from ..timeutil import utcnow
from ..webhooks import events
from .endings import announce, final_values, record_end, stopped_values
from .engine import drop_leftovers, refresh_search
from .failures import (
    MAX_ATTEMPTS,
    UPLOAD_CANCELLED_MESSAGE,
    Cancelled,
    HandedBack,
    HelperNotConnected,
    ImportStopped,
    Unexpected,
    cancelled,
)
from .growing import UploadStalled
from .models import ImportJob, Upload
from .progress import WORKER_STOPPING, ClaimedJob
from .runner import Run, application_name
from .states import FINISHED, Kind, Phase, Status
from .turns import GiveWay, Turn, ready_to_run

log = logging.getLogger(__name__)

DRAIN_TASK = "product_importer.imports.drain_imports"
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
jobs = ImportJob.__table__
CLAIMED = [field.name for field in dataclasses.fields(ClaimedJob)]


_slots: list[threading.BoundedSemaphore] = []  # this process's, once it drains
_slots_made = threading.Lock()


def _import_slots() -> threading.BoundedSemaphore:
    """The IMPORT_SLOTS of this process: made from the app's settings, which read `.env` (this
    module is imported before a command loads it)."""
    with _slots_made:
        if not _slots:
            _slots.append(threading.BoundedSemaphore(current_app.config["IMPORT_SLOTS"]))
        return _slots[0]


def import_engine() -> Engine:
    """An engine without a pool: each import gets a fresh connection, closed afterwards."""
    engine = current_app.extensions.get("import_engine")
    if engine is None:
        engine = database.unpooled_engine(current_app.config)
        current_app.extensions["import_engine"] = engine
    return engine


def drain_queue(up_to: int | None = None) -> int:
    """Run queued jobs, oldest first, while there are any; return how many ran. With `up_to`,
    the command line's own job: only those `claim_next` gives it, ending with that job."""
    slots = _import_slots()
    if not slots.acquire(blocking=False):
        return 0  # this worker reads as many as it may; a running drain takes the next job
    try:
        return _drain_in_slot(up_to)
    finally:
        slots.release()


def run_up_to(job_id: int) -> bool:
    """Run the command line's job `job_id` here if it is queued (after the earlier ones it
    applies after, on PostgreSQL), never a job queued after it; return whether it has ended.

    Another process's drain (a worker, `serve`, another terminal) may hold the queue, or have
    taken the job: it is asked again until the job ends. Each command runs its own import, so
    none waits for, or is stopped with, another's (a terminal's Ctrl-C left the other
    terminal's import running with no one to run it).
    """
    if _claimable(job_id):  # no drain's connection made while a worker runs the job
        drain_queue(up_to=job_id)
    with db.engine.connect() as conn:
        status = conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
    return status in FINISHED


def _claimable(job_id: int) -> bool:
    """Whether `claim_next(up_to=job_id)` would find a job now."""
    with db.engine.connect() as conn:
        return conn.execute(_queued(conn, job_id).limit(1)).first() is not None


def _drain_in_slot(up_to: int | None) -> int:
    """Drain the queue, on a new connection each time a drain's connection is lost."""
    ran, lost = _drain(up_to)
    # Not left to a wake-up: with every slot taken (IMPORT_SLOTS=1, this one not yet given
    # back) it finds none free, and the command line's wakes go to workers there may not be:
    # the job the cut attempt requeued would wait for a maintenance loop, or for ever.
    while lost and not WORKER_STOPPING.is_set():
        try:
            more, lost = _drain(up_to)
        except DBAPIError:  # still away, say: the maintenance loop starts a drain once back
            log.warning("import queue stopped on a database error", exc_info=True)
            break
        ran += more
    return ran


def _drain(up_to: int | None) -> tuple[int, bool]:
    """Run queued jobs on one prepared connection (up to job `up_to`, if given); return how
    many ran, and whether it ended because that connection was lost (the next drain, on a new
    one, goes on)."""
    ran = 0
    with import_engine().connect() as conn:
        seam = database.of(conn)
        with seam.import_lock(conn) as locked:
            if not locked:
                return 0, False
            seam.prepare_import(conn)
            prepared = conn.connection.driver_connection
            _finish_what_lost_imports_left(conn)
            while (
                not WORKER_STOPPING.is_set()
                and not _lost(conn, prepared)
                and (job := claim_next(conn, up_to)) is not None
            ):
                if seam.parallel_reading and _more_queued(conn):
                    _wake_queue()  # another slot, here or elsewhere, reads the next one
                with logs.job(job.id):  # its lines name the job
                    run_claimed(conn, job)
                ran += 1
                if job.id == up_to:  # ended, or back in the queue: the caller looks again
                    break
            return ran, _lost(conn, prepared)


def _lost(conn: Connection, prepared) -> bool:
    """Whether `conn` broke, or runs on another connection than the `prepared` one."""
    return _database_lost(conn) or _made_anew(conn, prepared)


def _made_anew(conn: Connection, prepared) -> bool:
    """Whether `conn` runs on another connection than the `prepared` one: SQLAlchemy connects
    again by itself after a cut once the transaction is rolled back (the attempt's clean-up
    does), and the new session has none of the import's settings (`prepare_import`)."""
    return conn.invalidated or conn.connection.driver_connection is not prepared


def _finish_what_lost_imports_left(conn: Connection) -> None:
    """If no import applies: drop the scratch tables of an import lost while applying, and
    build the search indexes of one whose worker was lost after it committed."""
    seam = database.of(conn)
    if seam.take_turn(conn):
        try:
            drop_leftovers(conn)
            refresh_search(conn, db.engine)
        finally:
            seam.end_turn(conn)


def _more_queued(conn: Connection) -> bool:
    more = conn.execute(_queued(conn).limit(1)).first() is not None
    conn.commit()
    return more


def _queued(conn: Connection, up_to: int | None = None):
    """The ids of the jobs that may run now. With `up_to` (the command line's own job): on
    PostgreSQL, that one and those queued before it, which apply before it (`turns`), so that
    it never waits for one no worker takes; on SQLite, which applies in no order, that alone."""
    queued = select(jobs.c.id).where(jobs.c.status == Status.QUEUED, ready_to_run())
    if up_to is None:
        return queued
    if database.of(conn).parallel_reading:
        return queued.where(jobs.c.id <= up_to)
    return queued.where(jobs.c.id == up_to)


def claim_next(conn: Connection, up_to: int | None = None) -> ClaimedJob | None:
    """Mark the oldest queued job running, on this connection; return it. With `up_to`, none
    queued after that job (`_queued`)."""
    oldest = _queued(conn, up_to).order_by(jobs.c.id).limit(1)
    oldest = oldest.with_for_update(skip_locked=True).scalar_subquery()
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
    # A session cut meanwhile is made anew for the attempt's clean-up: compared after it.
    session = conn.connection.driver_connection
    try:
        deliveries = _apply(conn, job)
        log.info("import %s finished in %.1fs", job.id, time.monotonic() - started)
    except UploadStalled as stalled:
        _wait_for_upload(job, stalled)
        return
    except (HandedBack, GiveWay) as stop:
        _hand_back(job, stop)
        return
    except ImportStopped as stop:
        deliveries = _end_stopped(job, stop)
    except Exception as error:
        log.exception("import %s failed", job.id)
        if (_lost(conn, session) or _cut_off(error)) and job.attempts < MAX_ATTEMPTS:
            _requeue_when_back(job, error)
            return
        deliveries = _end_stopped(job, Unexpected(_describe(error), job.undo_of))
    events.send(deliveries)


def _upload_given_up(conn: Connection, job: ClaimedJob) -> bool:
    """Whether the job followed an upload removed before its last byte (the upload page's
    Cancel removes it just after cancelling the import)."""
    if job.upload_id is None:
        return False
    uploads = Upload.__table__
    # key share: waits for a removal under way (`tus.terminate_upload` locks the row first),
    # and a removal waits for this record, then finds the job cancelled and says so
    found = select(uploads.c.id).where(uploads.c.id == job.upload_id)
    found = found.with_for_update(key_share=True)
    whole = select(jobs.c.sha256).where(jobs.c.id == job.id)
    return conn.execute(found).first() is None and conn.execute(whole).scalar() is None


def _database_lost(conn: Connection) -> bool:
    """Whether the import's connection broke (the database restarted, the network was cut)."""
    try:
        driver = conn.connection.driver_connection
    except Exception:  # invalidated: SQLAlchemy saw it break
        return True
    return bool(getattr(driver, "broken", False))


def _cut_off(error: BaseException) -> bool:
    """Whether a connection of the import (its own or a helper's) was cut in its midst: the
    server ended its session, or restarted and answers again (the connection is then made
    anew, and no longer looks broken); or a helper's could not be made. Nothing of the import
    was applied."""
    while error is not None:
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, HelperNotConnected):  # refused: made none, applied nothing
            return True
        error = error.__cause__ or error.__context__
    return False


def _requeue_when_back(job: ClaimedJob, error: Exception) -> None:
    """Queue the job for another attempt as soon as the database answers again.

    Nothing of it was applied: its transaction died with the connection. If the database
    stays away longer than the heartbeat timeout, recovery requeues it instead.
    """
    message = (
        f"The connection to the database was lost ({_describe(error)}); the catalog was not "
        f"changed. Starting again (attempt {job.attempts + 1} of {MAX_ATTEMPTS})."
    )
    deadline = time.monotonic() + current_app.config["IMPORT_HEARTBEAT_TIMEOUT_SECONDS"]
    while True:
        try:
            _requeue_running(job, message, counted=True)
            break
        except DBAPIError:
            if time.monotonic() > deadline:
                log.warning("import %s: database still away; recovery requeues it", job.id)
                return
            time.sleep(0.5)
    log.warning("import %s: database connection lost; requeued", job.id)
    _wake_queue()


def _apply(conn: Connection, job: ClaimedJob) -> list[int]:
    """Run the job and end it in one transaction; return the webhook deliveries."""
    config = current_app.config
    limit = 10 * config["MAX_UPLOAD_BYTES"]
    turn = Turn(conn, job, refresh=lambda conn: refresh_search(conn, db.engine))
    run = Run(
        conn,
        db.engine,
        job,
        max_decompressed=limit,
        stall_seconds=config["UPLOAD_STALL_SECONDS"],
        turn=turn,
        record_changes=config["IMPORT_CHANGE_RECORD"],
        search_index_after_switch=config["IMPORT_SEARCH_INDEX_AFTER_SWITCH"],
    )
    with run:
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


def _wait_for_upload(job: ClaimedJob, stalled: UploadStalled) -> None:
    """Give the job back to the queue until its upload moves again: the queue goes on.

    Waiting is not an attempt; `heartbeat_at` says since when it waits (`ready_to_run`).
    """
    _requeue_running(
        job, str(stalled), heartbeat_at=utcnow(), rows_per_second=None, eta_seconds=None
    )
    log.info("import %s: %s", job.id, stalled)


def _hand_back(job: ClaimedJob, stop: ImportStopped) -> None:
    """Put the job back in the queue, this attempt not counted, and wake another worker."""
    if _requeue_running(job, str(stop)):
        log.warning("import %s handed back to the queue: %s", job.id, stop)
        _wake_queue()


def _requeue_running(job: ClaimedJob, message: str, *, counted=False, **values) -> bool:
    """Queue this attempt's job again (the attempt not counted unless `counted`); False if it
    is not ours now."""
    with db.engine.begin() as conn:
        return bool(
            conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job.id,
                    jobs.c.status == Status.RUNNING,
                    jobs.c.attempts == job.attempts,
                )
                .values(
                    status=Status.QUEUED,
                    phase=None,
                    attempts=jobs.c.attempts if counted else jobs.c.attempts - 1,
                    worker=None,
                    db_pid=None,
                    message=message,
                    **values,
                )
            ).rowcount
        )


def _wake_queue() -> None:
    """Ask a worker to run the queue; if the broker is away, the maintenance loop will."""
    try:
        background.submit(DRAIN_TASK)
    except Exception:
        log.warning("could not wake the import queue; the maintenance loop will", exc_info=True)


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
        if isinstance(stop, Cancelled) and _upload_given_up(conn, job):
            stop = Cancelled(UPLOAD_CANCELLED_MESSAGE)
        elif isinstance(stop, Cancelled) and job.undo_of is not None:
            stop = cancelled(job.undo_of)
        return announce(conn, record_end(conn, job.id, job.attempts, stopped_values(stop)))


def _describe(error: Exception) -> str:
    if isinstance(error, DBAPIError) and error.orig is not None:
        return f"{type(error.orig).__name__}: {str(error.orig).strip().splitlines()[0]}"
    return f"{type(error).__name__}: {error}"
