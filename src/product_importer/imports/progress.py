"""What a running import has done so far, and the heartbeat thread that writes it to its row."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, case, update

from ..timeutil import utcnow
from .failures import Cancelled
from .models import ImportJob
from .states import Phase, Status

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


@dataclass(frozen=True)
class ClaimedJob:
    """The job a worker has claimed: which attempt this is, and which file to read."""

    id: int
    attempts: int
    file_path: str
    bytes_total: int


@dataclass
class Progress:
    """What the heartbeat thread writes to the job row; updated by the reading thread."""

    bytes_total: int
    phase: Phase = Phase.READING
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

    def applying(self, message: str) -> None:
        """Record that reading is done and the merge is about to start."""
        self.phase, self.message = Phase.APPLYING, message
        self.interruptible = True

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

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-6)

    def columns(self) -> dict:
        """Return the job columns to write now, with rate and ETA."""
        elapsed = self.elapsed()
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

    def __init__(
        self, engine: Engine, job: ClaimedJob, progress: Progress, interrupt: Callable[[], None]
    ):
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
        """Write progress; on a cancel request, flag it and interrupt the merge if it runs."""
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
