"""Run one import job: read the stored file, stage, merge, and report progress while doing so.

The job's own transaction (staging + merge + the final job row) commits once, so a failure,
a cancel or a crash before the commit leaves the catalog as it was. A heartbeat thread writes
progress at least once a second through another connection, and notices cancel requests.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, case, update

from ..timeutil import utcnow
from . import csv_rows
from .engine import MergeCounts, PostgresStage, SqliteStage
from .models import ImportJob, Phase, Status
from .rejections import RejectionWriter

log = logging.getLogger(__name__)

READING_SHARE = 85.0  # percent of the bar for reading; the merge fills the rest
MERGE_STEPS = {
    "deduplicating": 87.0,
    "merging": 90.0,
    "updating": 92.0,
    "inserting": 95.0,
    "finishing": 99.0,
}
HEARTBEAT_SECONDS = 0.5
jobs = ImportJob.__table__


class Cancelled(Exception):
    """Someone asked to cancel the running job."""


@dataclass(frozen=True)
class ClaimedJob:
    """The job a worker has claimed: which attempt this is, and which file to read."""

    id: int
    attempts: int
    file_path: str
    bytes_total: int


def application_name(job_id: int) -> str:
    """The PostgreSQL application_name of the session that runs `job_id`."""
    return f"product-importer import {job_id}"


@dataclass
class Progress:
    """What the heartbeat thread writes to the job row; updated by the reading thread."""

    bytes_total: int
    phase: str = Phase.READING
    message: str = "Parsing CSV"
    percent: float = 0.0
    bytes_processed: int = 0
    rows_processed: int = 0
    rows_invalid: int = 0
    started: float = field(default_factory=time.monotonic)
    step: str = "reading"  # for the step-time log
    step_started: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)
    # True while the merge's statements run: a cancel then interrupts them
    interruptible: bool = False

    def read(self, bytes_processed: int, rows: int, invalid: int) -> None:
        """Record reading progress; percent follows the bytes read."""
        self.bytes_processed = bytes_processed
        self.rows_processed, self.rows_invalid = rows, invalid
        share = bytes_processed / self.bytes_total if self.bytes_total else 1.0
        self.percent = max(self.percent, READING_SHARE * min(share, 1.0))

    def merging(self, step: str, what: str) -> None:
        """Record which merge step runs, and log how long the previous one took."""
        if self.cancel.is_set():
            raise Cancelled()
        now = time.monotonic()
        log.info("import step %s: %.2fs", self.step, now - self.step_started)
        self.step, self.step_started = step, now
        self.phase = Phase.APPLYING
        self.message = f"Applying {what} ({step})"
        self.percent = max(self.percent, MERGE_STEPS[step])

    def columns(self) -> dict:
        """Return the job columns to write now, with rate and ETA."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        eta = elapsed * (100.0 - self.percent) / self.percent if self.percent >= 1 else None
        return {
            "phase": self.phase,
            "message": self.message,
            "bytes_processed": self.bytes_processed,
            "rows_processed": self.rows_processed,
            "rows_invalid": self.rows_invalid,
            "rows_per_second": round(self.rows_processed / elapsed, 1),
            "eta_seconds": round(eta, 1) if eta is not None else None,
            # percent never goes down, even when a retried job starts again from the start
            "percent": case((jobs.c.percent > self.percent, jobs.c.percent), else_=self.percent),
            "heartbeat_at": utcnow(),
        }


class Heartbeat(threading.Thread):
    """Write progress every HEARTBEAT_SECONDS; on a cancel request, stop the job."""

    def __init__(self, engine: Engine, job: ClaimedJob, progress: Progress, interrupt):
        super().__init__(name=f"heartbeat-{job.id}", daemon=True)
        self.engine, self.job, self.progress = engine, job, progress
        self.interrupt = interrupt  # cancels the running SQL statement
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            try:
                self.beat()
            except Exception:  # a missed beat is retried; only a stale one matters
                log.warning("heartbeat of import %s failed", self.job.id, exc_info=True)

    def beat(self) -> None:
        """Write progress; return whether someone asked to cancel."""
        statement = (
            update(jobs)
            .where(
                jobs.c.id == self.job.id,
                jobs.c.status == Status.RUNNING,
                jobs.c.attempts == self.job.attempts,
            )
            .values(**self.progress.columns())
            .returning(jobs.c.cancel_requested)
        )
        with self.engine.begin() as conn:
            cancel = conn.execute(statement).scalar()
        if cancel:
            self.progress.cancel.set()
            # Again at every beat: an interrupt that lands between two statements is lost.
            if self.progress.interruptible:
                self.interrupt()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


@dataclass
class Outcome:
    """What one run of a job produced, for the final job row."""

    counts: MergeCounts
    rows: int
    invalid: int
    warnings: list[str]
    no_valid_reason: str | None = None


def run(
    conn: Connection,
    engine: Engine,
    job: ClaimedJob,
    *,
    max_decompressed: int,
    before_commit: Callable[[Connection, int], object],
    after_commit: Callable[[object], None],
) -> None:
    """Import `job`'s file on `conn` and commit; roll back and raise on failure or cancel.

    `before_commit(conn, job_id)` runs inside the import's transaction; its result goes to
    `after_commit` once the commit succeeded.
    """
    progress = Progress(bytes_total=job.bytes_total)
    heartbeat = Heartbeat(engine, job, progress, interrupt=lambda: _interrupt(conn))
    heartbeat.start()
    try:
        outcome = _import(conn, engine, job, progress, max_decompressed, heartbeat.beat)
        progress.message = "Finishing"
        # The job row is now locked until the commit: a cancel that came before is seen here
        # (the heartbeat may not have noticed it yet); a later one waits and finds it finished.
        finish = _finish_statement(job.id, outcome, progress).returning(jobs.c.cancel_requested)
        progress.interruptible = False
        if conn.execute(finish).scalar():
            raise Cancelled()
        result = before_commit(conn, job.id)
        progress.phase = "committing"  # too late to interrupt: the commit decides
        conn.commit()
    except BaseException as error:
        progress.interruptible = False
        conn.rollback()
        if progress.cancel.is_set() and not isinstance(error, Cancelled):
            raise Cancelled() from error  # the statement was interrupted by our cancel
        raise
    finally:
        heartbeat.stop()
    after_commit(result)


def _import(conn, engine, job, progress, max_decompressed, beat) -> Outcome:
    stage = (
        PostgresStage(conn) if conn.dialect.name == "postgresql" else SqliteStage(conn, utcnow())
    )
    rejections = RejectionWriter(engine, job.id)
    rejections.clear()
    with open(job.file_path, "rb") as raw:
        csv_file = csv_rows.open_csv(raw, max_decompressed_bytes=max_decompressed)
        if csv_file.header is None:
            raise csv_rows.FileRejected(
                "The file holds no header row. Add the line "
                "'sku,name,description' at the top and upload again."
            )
        stage.start()
        try:
            rows, invalid = _read(csv_file, stage, rejections, progress)
        except csv_rows.NotUtf8:
            stage.reset()
            rejections.clear()
            csv_file = csv_rows.reopen_as_fallback(raw, max_decompressed_bytes=max_decompressed)
            rows, invalid = _read_or_abort(csv_file, stage, rejections, progress)
        except BaseException as error:
            stage.abort(error)
            raise
    warnings = _warnings(csv_file)
    if rows and rows == invalid:
        stage.finish()
        return Outcome(
            MergeCounts(0, 0, 0),
            rows,
            invalid,
            warnings,
            no_valid_reason=_most_common(csv_file, invalid),
        )
    valid = f"{rows - invalid:,} rows"
    # From here a cancel interrupts the merge, also while it waits for locks on the catalog.
    progress.phase, progress.message = Phase.APPLYING, f"Applying {valid}"
    progress.interruptible = True
    # Written now, not at the next beat: on SQLite the merge holds the write lock, so the job
    # must say `applying` (delete-all answers 409 by it) before the merge starts.
    beat()
    counts = stage.merge(lambda step: progress.merging(step, valid))
    progress.merging("finishing", f"{counts.distinct:,} products")
    return Outcome(counts, rows, invalid, warnings)


def _read_or_abort(csv_file, stage, rejections, progress) -> tuple[int, int]:
    try:
        return _read(csv_file, stage, rejections, progress)
    except BaseException as error:
        stage.abort(error)
        raise


def _read(csv_file, stage, rejections, progress) -> tuple[int, int]:
    """Stage every valid row and record every rejected one; return (rows, invalid)."""
    rows = invalid = 0
    for batch in csv_file.batches():
        if progress.cancel.is_set():
            raise Cancelled()
        stage.write(batch.valid)
        rejections.write(batch.rejected)
        rows += batch.rows_read
        invalid += len(batch.rejected)
        progress.read(csv_file.bytes_consumed(), rows, invalid)
    rejections.flush()
    if progress.cancel.is_set():
        raise Cancelled()
    return rows, invalid


def _warnings(csv_file) -> list[str]:
    warnings = list(csv_file.warnings)
    if csv_file.header.unknown:
        names = ", ".join(csv_file.header.unknown)
        warnings.append(f"Unknown columns were ignored: {names}.")
    return warnings


def _most_common(csv_file, invalid: int) -> str:
    reason, count = csv_file.reject_reasons.most_common(1)[0]
    return (
        f"No valid rows: all {invalid:,} rows were rejected. The most common reason: "
        f"{reason} ({count:,} rows). Download the rejected rows, fix them and upload again."
    )


def _finish_statement(job_id: int, outcome: Outcome, progress: Progress):
    """The final job row, written in the import's own transaction."""
    elapsed = max(time.monotonic() - progress.started, 1e-6)
    values = {
        "phase": None,
        "eta_seconds": 0.0,
        "heartbeat_at": utcnow(),
        "finished_at": utcnow(),
        "rows_processed": outcome.rows,
        "rows_invalid": outcome.invalid,
        "rows_per_second": round(outcome.rows / elapsed, 1),
        "bytes_processed": progress.bytes_total,
        "created": outcome.counts.created,
        "updated": outcome.counts.updated,
        "unchanged": outcome.counts.unchanged,
        "warnings": outcome.warnings,
    }
    if outcome.no_valid_reason:
        values.update(status=Status.FAILED, message="Import failed", error=outcome.no_valid_reason)
    else:
        status = Status.COMPLETED_WITH_ERRORS if outcome.invalid else Status.COMPLETED
        message = "Import complete" if outcome.rows else "Nothing to import: the file has no rows"
        values.update(status=status, message=message, percent=100.0)
    return update(jobs).where(jobs.c.id == job_id).values(**values)


def _interrupt(conn: Connection) -> None:
    """Cancel the statement running on `conn` (PostgreSQL); SQLite checks between batches."""
    driver = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        cancel = getattr(driver, "cancel_safe", None) or driver.cancel
        cancel()
    else:
        driver.interrupt()
