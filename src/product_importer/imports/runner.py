"""Run one attempt at an import job: read the stored file, stage it, merge it, report progress.

Nothing here commits the catalog: the queue writes the job's end in the same transaction and
commits once, so a failure, a cancel or a crash before the commit leaves the catalog as it was.
A heartbeat thread writes progress at least once a second through another connection, and
notices cancel requests and its worker stopping.

Imports read in parallel (each stages into a table of its own); between reading and merging,
`Turn.wait()` waits until the imports uploaded before this one have ended and none applies.
"""

import gzip
import logging
import threading
import time
import zlib
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from .. import database
from ..timeutil import utcnow
from . import csv_rows
from .endings import final_values
from .engine import MergeCounts, open_stage
from .failures import Cancelled, DamagedFile, FileGone, ImportStopped, NoHeader, TooManyInvalid
from .growing import open_stored
from .models import ImportJob
from .options import invalid_limit
from .progress import PLAN_SHARE, ClaimedJob, Heartbeat, Progress
from .rejections import RejectionWriter
from .states import Status
from .undo import undo_import

log = logging.getLogger(__name__)
jobs = ImportJob.__table__
SEARCH_REFRESHING = "Import complete; the search index is being refreshed"
# For whoever reads it, whatever their role: the pages add what that role can do about it.
PLAN_READY = "Plan ready: nothing has changed yet"
# The runs of this process, by job id. On SQLite (one writer) the web requests of the same
# process reach them here: a cancel cannot write its request while the merge holds the writer,
# and the heartbeat cannot write the bar's progress meanwhile.
_running: dict[int, "Run"] = {}
# A cancel in this process interrupts its run this often until the run stops its statements,
# for at most this long (the run is stuck otherwise; the cancel then writes its request).
INTERRUPT_EVERY = 0.02
INTERRUPTING_SECONDS = 30.0


def cancel_here(job_id: int) -> bool:
    """Stop the run of `job_id` in this process for a cancel; False if none runs here or it is
    already writing its end (too late to stop)."""
    run = _running.get(job_id)
    if run is None:
        return False
    run.cancel_here()
    return run.cancelled_here


def may_hold_writer() -> bool:
    """Whether an import run of this process holds, or may take at any moment, the database's
    writer: its merge, its plan's record, or its undo runs (until it writes its end)."""
    return any(run.progress.interruptible for run in list(_running.values()))


def progress_here(job_id: int, attempts: int) -> dict | None:
    """What attempt `attempts` of `job_id` has done so far, if it runs in this process and
    has not begun to write its end (its row says more then); None otherwise."""
    run = _running.get(job_id)
    if run is None or run.job.attempts != attempts or run.progress.ending:
        return None
    return run.progress.figures()


def application_name(job_id: int) -> str:
    """The database session name of the connection that runs `job_id`."""
    return f"product-importer import {job_id}"


@dataclass
class Outcome:
    """What one run of a job produced, for the final job row."""

    counts: MergeCounts
    rows: int
    invalid: int
    warnings: list[str]  # what reading the file found (the job's own are added at its end)
    no_valid_reason: str | None = None
    plan: bool = False

    def status(self) -> Status:
        if self.no_valid_reason:
            return Status.FAILED
        if self.plan:
            return Status.PLANNED
        return Status.COMPLETED_WITH_ERRORS if self.invalid else Status.COMPLETED

    def message(self) -> str | None:
        if self.plan and not self.no_valid_reason:
            return PLAN_READY
        if not self.rows:
            return "Nothing to import: the file has no rows"
        return SEARCH_REFRESHING if self.counts.search_deferred else None

    def columns(self, progress: Progress) -> dict:
        """The counts the final job row shows."""
        return {
            "heartbeat_at": utcnow(),
            "rows_processed": self.rows,
            "rows_invalid": self.invalid,
            "rows_per_second": round(self.rows / progress.elapsed(), 1),
            "bytes_processed": progress.bytes_total,
            "created": self.counts.created,
            "updated": self.counts.updated,
            "unchanged": self.counts.unchanged,
            "rows_superseded": self.counts.superseded,
            "search_index": "refreshing" if self.counts.search_deferred else None,
            "created_from": self.counts.created_ids and self.counts.created_ids[0],
            "created_to": self.counts.created_ids and self.counts.created_ids[1],
            "written_at": self.counts.written_at,
        }


class Run:
    """One attempt at `job` on `conn`, inside a `with` block that holds the heartbeat.

    Leaving the block with an error rolls back; an error caused by our own cancel becomes
    `Cancelled`.
    """

    def __init__(
        self,
        conn: Connection,
        engine: Engine,
        job: ClaimedJob,
        *,
        max_decompressed: int,
        stall_seconds: float,
        turn,
        record_changes: bool = True,
        search_index_after_switch: bool | None = None,
    ):
        self.conn, self.engine, self.job = conn, engine, job
        self.max_decompressed, self.stall_seconds = max_decompressed, stall_seconds
        self.turn = turn  # waits for the import's turn to apply; released on leaving
        # a plan always records what it would change: that is what it is for
        self.record_changes = record_changes or job.plan
        self.search_index_after_switch = search_index_after_switch
        goal = PLAN_SHARE if job.plan else 100.0
        self.progress = Progress(bytes_total=job.bytes_total, percent=job.percent, goal=goal)
        self.stage = None
        self.rejections = RejectionWriter(engine, job.id)
        self.heartbeat = Heartbeat(engine, job, self.progress, interrupt=self._interrupt)
        # set by a cancel asked in this process; held while interrupting, so that no
        # interrupt lands on the statements that end the run (its final row, its rollback)
        self.cancelled_here = False
        self._stopping = threading.Lock()
        self._left = threading.Event()  # set once it runs no more statements to interrupt

    def _interrupt(self) -> None:
        """Cancel what the import runs on the database: its statements and its helpers'."""
        if self.stage is not None:
            self.stage.interrupt()
        else:
            database.of(self.conn).interrupt(self.conn)
        self.rejections.interrupt()

    def cancel_here(self) -> None:
        """Stop for a cancel asked in this process: at once, whatever the database's writer
        is doing; the merge's statement is interrupted and its transaction rolled back.

        A run whose final row is being written ends as it would have (too late to stop).
        """
        with self._stopping:
            if self.progress.ending:
                return
            self.cancelled_here = True
            self.progress.stop(Cancelled())
        self._keep_interrupting()

    def _keep_interrupting(self) -> None:
        """Interrupt the run's statements until it stops running them (it rolls back, or
        writes its end): an interrupt that lands between two statements is lost (SQLite has
        none to stop then), and the next one, the merge's whole UPDATE say, would run to its
        end holding the writer that the cancel's request waits for.

        A run reading or waiting its turn sees `cancel` at its next batch or poll.
        """
        deadline = time.monotonic() + INTERRUPTING_SECONDS
        while True:
            with self._stopping:
                if not self.progress.interruptible:
                    return
                try:
                    self._interrupt()
                except Exception:  # the merge sees `cancel` at its next step all the same
                    log.warning("import %s: merge not interrupted", self.job.id, exc_info=True)
                    return
            if self._left.wait(INTERRUPT_EVERY) or time.monotonic() > deadline:
                return

    def __enter__(self) -> "Run":
        _running[self.job.id] = self
        self.heartbeat.start()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        with self._stopping:
            self.progress.interruptible = False
        self._left.set()
        try:
            if error is not None:
                self._roll_back()
            self._clean_up()
        finally:
            _running.pop(self.job.id, None)
            self.heartbeat.stop()
            if self.cancelled_here:
                self._last_beat()
            self.turn.release()
        interrupted = error is not None and not isinstance(error, ImportStopped)
        if interrupted and self.progress.cancel.is_set():
            raise self.progress.stopped() from error  # interrupted by our cancel or stop

    def _last_beat(self) -> None:
        """Write how far the run got: a cancel in this process may stop it before its first
        beat, or during a merge whose progress no beat could write."""
        try:
            self.heartbeat.beat()
        except Exception:  # the job then shows its last beat's figures
            log.warning("import %s: last progress not written", self.job.id, exc_info=True)

    def _roll_back(self) -> None:
        """Undo the attempt; if its session was cut, the server undid it with the session.

        The rollback then raises: that is logged, not raised over the error the import ended
        with (which says how its job ends), and the clean-up goes on on a session made anew.
        """
        try:
            self.conn.rollback()
        except Exception:
            log.warning("import %s: not rolled back, session lost", self.job.id, exc_info=True)
            if not self.conn.invalidated:  # whatever broke it: the next statement connects anew
                self.conn.invalidate()

    def _clean_up(self) -> None:
        """Drop the import's staging tables (the next import drops them if this cannot), unless
        a later attempt has the job: they are named after the job, so they may be its now."""
        if self.stage is None:
            return
        try:
            if self._still_the_jobs_attempt():
                self.stage.cleanup()  # commits, and so lets the job's row go
            else:
                self.conn.rollback()
                log.warning(
                    "import %s: attempt %s was followed by another, its tables left to it",
                    self.job.id,
                    self.job.attempts,
                )
        except Exception:
            log.warning("import %s: staging tables not dropped", self.job.id, exc_info=True)

    def _still_the_jobs_attempt(self) -> bool:
        """Whether no later attempt has begun, the job's row held until the clean-up commits.

        One has if this attempt stalled past the heartbeat's timeout (a worker paused, a
        session cut and connected anew): the job was queued again and claimed by a worker.
        """
        if self.conn.dialect.name != "postgresql":
            return True  # SQLite stages in temp tables: the connection's own, no one else's
        attempts = select(ImportJob.attempts).where(ImportJob.id == self.job.id)
        return self.conn.execute(attempts.with_for_update()).scalar() == self.job.attempts

    def import_file(self) -> Outcome:
        """Stage the file and merge it; the transaction stays open for the caller."""
        try:
            return self._import()
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise DamagedFile(error) from error
        except FileNotFoundError as error:
            raise FileGone() from error

    def undo(self) -> dict:
        """Undo the import `undo_of` in this transaction; return the job's end values."""
        self.progress.waiting()
        self.turn.wait(self.progress)  # an undo changes the catalog: in upload order too
        self.progress.applying(f"the undo of import #{self.job.undo_of}", 0)
        self.heartbeat.beat()
        open_stage(self.conn, self.job.id).lock_catalog()
        counts = undo_import(self.conn, self.job.undo_of)
        self._stop_interrupting()
        return final_values(Status.COMPLETED, message=counts.message()) | {
            "heartbeat_at": utcnow(),
            "deleted": counts.deleted,
            "updated": counts.restored,
            "conflicts": counts.conflicts,
        }

    def end_values(self, outcome: Outcome) -> dict:
        """Stop interrupting statements: the final row is about to be written."""
        self._stop_interrupting(ending=True)
        return outcome.columns(self.progress) | {"warnings": self._warnings_at_end(outcome)}

    def _stop_interrupting(self, *, ending: bool = False) -> None:
        """Let no cancel interrupt a statement from now on; raise `Cancelled` if one asked in
        this process came before (on SQLite it could not write its request yet)."""
        with self._stopping:
            self.progress.interruptible = False
            self.progress.ending = self.progress.ending or ending
        if self.cancelled_here:
            raise Cancelled()

    def _warnings_at_end(self, outcome: Outcome) -> list[str]:
        """The job's warnings as they are now, then the file's.

        A resumable upload that ended while this import ran may have added one (the same file
        again). Read under the row's lock, held by this transaction until the job's end is
        committed: a note added meanwhile waits for it and then adds to what it wrote.
        """
        known = self.conn.execute(
            select(jobs.c.warnings).where(jobs.c.id == self.job.id).with_for_update()
        ).scalar()
        return list(dict.fromkeys([*(known or []), *outcome.warnings]))

    def _import(self) -> Outcome:
        job, progress = self.job, self.progress
        stage = self.stage = open_stage(
            self.conn,
            job.id,
            record_changes=self.record_changes,
            search_index_after_switch=self.search_index_after_switch,
        )
        planned = sum(count or 0 for count in (job.created, job.updated, job.unchanged))
        if not job.plan and stage.adopt_plan(planned, job.rows_superseded or 0):
            return self._apply_kept()
        rejections = self.rejections
        rejections.clear()
        following = {
            "job_id": job.id,
            "engine": self.engine,
            "stall_seconds": self.stall_seconds,
            "stopping": progress.cancel.is_set,
        }
        with open_stored(job.file_path, job.upload_id, job.bytes_total, **following) as raw:
            csv_rows.refuse_binary(raw)
            csv_file = csv_rows.open_csv(
                raw, max_decompressed_bytes=self.max_decompressed, columns=job.columns
            )
            if csv_file.header is None:
                raise NoHeader()
            rejections.clear(csv_file.header.names)
            reading = (raw, csv_file, stage, rejections, progress)
            csv_file, rows, invalid = _stage_file(*reading, max_invalid=job.max_invalid)
        warnings = _warnings(csv_file)
        if rows and rows == invalid:
            stage.finish()
            reason = _most_common(csv_file, invalid)
            return Outcome(MergeCounts(0, 0, 0), rows, invalid, warnings, no_valid_reason=reason)
        if invalid > invalid_limit(job.max_invalid, rows):
            stage.finish()
            raise TooManyInvalid(invalid, rows, job.max_invalid)
        stage.prepare()
        progress.waiting()
        self.turn.wait(progress)
        counts = self._plan(rows, invalid) if job.plan else self._merge(rows, invalid)
        return Outcome(counts, rows, invalid, warnings, plan=job.plan)

    def _apply_kept(self) -> Outcome:
        """Apply the rows a plan of this job read, checked and kept: the file is not read
        again, and the plan's rejected rows and warnings stand."""
        job, progress = self.job, self.progress
        progress.nothing_to_read()
        progress.read(job.bytes_total, job.rows_processed, job.rows_invalid)
        progress.waiting()
        self.turn.wait(progress)
        counts = self._merge(job.rows_processed, job.rows_invalid)
        # the plan's warnings are the job's already
        return Outcome(counts, job.rows_processed, job.rows_invalid, [])

    def _plan(self, rows: int, invalid: int) -> MergeCounts:
        """Compare with the catalog and record what would change; the catalog is untouched."""
        self.progress.applying(f"{rows - invalid:,} rows", self.stage.staged, writes=False)
        self.progress.message = f"Comparing {rows - invalid:,} rows with the catalog"
        counts = self.stage.plan(self.progress)
        self.progress.merging("finishing", f"{counts.distinct:,} products")
        return counts

    def _merge(self, rows: int, invalid: int) -> MergeCounts:
        """Merge the staged rows into the catalog, recording the changes."""
        progress = self.progress
        # From here a cancel interrupts the merge, also while it waits for locks on the catalog.
        progress.applying(f"{rows - invalid:,} rows", self.stage.staged)
        # Written now, not at the next beat: on SQLite the merge holds the write lock, so the
        # job must say `applying` before the merge starts.
        self.heartbeat.beat()
        counts = self.stage.merge(progress)
        progress.merging("finishing", f"{counts.distinct:,} products")
        return counts


def _stage_file(raw, csv_file, stage, rejections, progress, *, max_invalid: str | None):
    """Stage every valid row, reading again as Windows-1252 if the file is not UTF-8."""
    stage.start()
    limit = invalid_limit(max_invalid, None)  # a count stops the reading at once
    try:
        try:
            rows, invalid = _read(csv_file, stage, rejections, progress, limit)
        except csv_rows.NotUtf8:
            stage.reset()
            csv_file = csv_rows.reopen_as_fallback(
                raw,
                max_decompressed_bytes=csv_file.max_decompressed_bytes,
                columns=csv_file.columns,
            )
            rejections.clear(csv_file.header.names)
            rows, invalid = _read(csv_file, stage, rejections, progress, limit)
        if invalid > limit:
            raise TooManyInvalid(invalid, rows, max_invalid)
    except BaseException as error:
        stage.abort(error)
        raise
    return csv_file, rows, invalid


def _read(csv_file, stage, rejections, progress, limit: float) -> tuple[int, int]:
    """Stage every valid row and record every rejected one; return (rows, invalid).

    Stops once more than `limit` rows were invalid.
    """
    rows = invalid = 0
    started, writing = time.perf_counter(), 0.0
    for batch in csv_file.batches():
        if progress.cancel.is_set():
            raise progress.stopped()
        before = time.perf_counter()
        stage.write(batch.valid)
        writing += time.perf_counter() - before
        rejections.write(batch.rejected)
        rows += batch.rows_read
        invalid += len(batch.rejected)
        progress.read(csv_file.bytes_consumed(), rows, invalid)
        if invalid > limit:
            break
    rejections.flush()
    parsing = time.perf_counter() - started - writing
    # where reading's time goes: Python parsing, or sending rows to the database
    progress.detail = f" (parsing {parsing:.2f}s, writing to the staging table {writing:.2f}s)"
    if progress.cancel.is_set():
        raise progress.stopped()
    return rows, invalid


def _warnings(csv_file) -> list[str]:
    warnings = list(csv_file.warnings)
    if csv_file.header.unknown:
        names = csv_rows.named_in_short(csv_file.header.unknown)
        warnings.append(f"Unknown columns were ignored: {names}.")
    return warnings


def _most_common(csv_file, invalid: int) -> str:
    reason, count = csv_file.reject_reasons.most_common(1)[0]
    # a file of one row is common (a quick try): not "all 1 rows ... (1 rows)"
    if invalid == 1:
        return (
            f"No valid rows: the file's only row was rejected: {reason}. Download the "
            "rejected row, fix it and upload again."
        )
    return (
        f"No valid rows: all {invalid:,} rows were rejected. The most common reason: "
        f"{reason} ({count:,} {'row' if count == 1 else 'rows'}). Download the rejected rows, "
        "fix them and upload again."
    )
