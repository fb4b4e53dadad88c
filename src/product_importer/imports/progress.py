"""What a running import has done so far, and the heartbeat thread that writes it to its row."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, case, update

from ..timeutil import utcnow
from .failures import Cancelled, HandedBack, ImportStopped
from .models import ImportJob
from .states import Phase, Status

log = logging.getLogger(__name__)

# The bar's share of each part of an import, from the step log of bench/import_bench.py
# (500K rows, 2 cores): reading takes about a third of a fresh import and half of an
# unchanged one; the rest is the merge, whose steps share what is left by their expected cost.
READING_SHARE = 30.0
BELOW_THE_END = 1.0  # the last step ends this far below where the run ends: 100 only once ended
# A plan ends here: read and compared, nothing written. Its apply (the same job) goes on from
# here to 100, so the bar never goes back; 100 stays for a job that has ended for good.
PLAN_SHARE = 40.0
# Expected seconds per 100,000 rows of each merge step (measured as above; the rows a step is
# expected for are the staged rows, the rows to write, or the catalog's, as the stage says).
STEP_SECONDS = {
    "deduplicating": 0.15,
    "comparing": 0.25,
    "updating": 5.0,
    "inserting": 2.0,
    "copying": 0.4,
    "indexing": 0.5,
    "indexing for search": 2.5,  # the trigram indexes too (the bulk path's choice)
    "analyzing": 0.05,
    "switching": 0.02,
    "finishing": 0.01,
}
# Within a step the bar moves with the time spent, up to this share of the step: a step that
# takes longer than expected waits near its end rather than overtaking the next one.
WITHIN_STEP = 0.9
HEARTBEAT_SECONDS = 0.5
WAITING = "Read; waiting for the imports uploaded before it to be applied"
jobs = ImportJob.__table__
# Set when this worker process is asked to stop (SIGTERM): its imports hand their jobs back.
WORKER_STOPPING = threading.Event()


@dataclass(frozen=True)
class ClaimedJob:
    """The job a worker has claimed: which attempt this is, and which file to read."""

    id: int
    attempts: int
    file_path: str
    bytes_total: int
    upload_id: str | None = None  # a resumable upload, read while it arrives
    percent: float = 0.0  # what the job shows already (a plan's, for its apply): never less
    kind: str = "import"
    plan: bool = False
    max_invalid: str | None = None
    columns: dict | None = None
    undo_of: int | None = None
    warnings: tuple[str, ...] = ()  # known before the file is read (the same file again)
    # what a plan of this job found, for its apply to merge the rows the plan kept
    rows_processed: int = 0
    rows_invalid: int = 0
    rows_superseded: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0


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
    detail: str = ""  # what the step log adds about the step that runs
    # set when the import must stop: a cancel request, or its worker stopping (`stop_error`)
    cancel: threading.Event = field(default_factory=threading.Event)
    stop_error: ImportStopped | None = None
    # True while the merge's statements run: a cancel then interrupts them
    interruptible: bool = False
    ending: bool = False  # the final row is being written: too late to stop
    what: str = ""  # "466,693 rows": what the merge applies, for the message
    # the merge steps still to come, with the rows each is expected to handle
    steps_ahead: list[tuple[str, int]] = field(default_factory=list)
    step_span: tuple[float, float, float] = (0.0, 0.0, 0.0)  # from %, to %, expected seconds
    goal: float = 100.0  # where the job stands once this run has ended (PLAN_SHARE for a plan)

    def __post_init__(self):
        self.started_at_percent = self.percent  # the ETA counts what this run has done
        # Reading fills READING_SHARE of the bar, or as much of what is left when a run goes
        # on from a percent (an applied plan that reads its file again): the bar moves as the
        # file is read, and the merge starts where the reading ends.
        left = (100.0 - self.percent) * READING_SHARE / 100.0
        self.reading_end = min(self.percent + left, self.goal - BELOW_THE_END)

    def stop(self, error: ImportStopped) -> None:
        """Ask the import to stop with `error` (the first reason given stays)."""
        if self.stop_error is None:
            self.stop_error = error
        self.cancel.set()

    def stopped(self) -> ImportStopped:
        """The error to stop with, once `cancel` is set."""
        return self.stop_error or Cancelled()

    def waiting(self) -> None:
        """Record that the file is read and staged; the import waits for its turn to apply."""
        self.message = WAITING
        self.percent = max(self.percent, self.reading_end)

    def read(self, bytes_processed: int, rows: int, invalid: int) -> None:
        """Record reading progress; percent follows the bytes read."""
        self.bytes_processed = bytes_processed
        self.rows_processed, self.rows_invalid = rows, invalid
        share = bytes_processed / self.bytes_total if self.bytes_total else 1.0
        start = self.started_at_percent
        self.percent = max(self.percent, start + (self.reading_end - start) * min(share, 1.0))

    def nothing_to_read(self) -> None:
        """Leave the whole bar to the merge: this run reads no file (a plan's kept rows)."""
        self.reading_end = self.percent

    def applying(self, what: str, rows: int, *, writes: bool = True) -> None:
        """Record that reading is done and the merge of `rows` staged rows is about to start;
        `writes` False for a plan, which only deduplicates and compares."""
        self.phase, self.what = Phase.APPLYING, what
        self.message = f"Applying {what}"
        self.percent = max(self.percent, self.reading_end)
        # "inserting" stands for the writing to come until the merge says what it will be:
        # without it the first two steps took the whole bar, the writes squeezed in its end.
        # A plan writes nothing: kept for it, its share sat empty until the plan's end.
        steps = [("deduplicating", rows), ("comparing", rows)]
        self.expect([*steps, ("inserting", rows)] if writes else steps)
        self.interruptible = True

    def expect(self, steps: list[tuple[str, int]]) -> None:
        """Say which merge steps come next, each with the rows it will handle."""
        self.steps_ahead = list(steps) + [("finishing", 0)]

    def start(self, step: str) -> None:
        """Start a merge step (as the stage says)."""
        self.merging(step)

    def merging(self, step: str, what: str | None = None) -> None:
        """Start a merge step: log how long the previous one took, give this one its share."""
        if self.cancel.is_set():
            raise self.stopped()
        now = time.monotonic()
        log.info("import step %s: %.2fs%s", self.step, now - self.step_started, self.detail)
        self.detail = ""
        self.percent = max(self.percent, self.step_span[1]) if self.step_span[2] else self.percent
        self.step, self.step_started = step, now
        self.phase, self.what = Phase.APPLYING, what or self.what
        self.message = f"Applying {self.what} ({step})"
        expected = _seconds(step, self._rows_of(step))  # before it leaves the steps ahead
        self.steps_ahead = [ahead for ahead in self.steps_ahead if ahead[0] != step]
        left = expected + sum(_seconds(name, rows) for name, rows in self.steps_ahead)
        last = self.goal - BELOW_THE_END
        share = (last - self.percent) * (expected / left if left else 1.0)
        self.step_span = (self.percent, self.percent + share, expected)

    def _rows_of(self, step: str) -> int:
        for name, rows in self.steps_ahead:
            if name == step:
                return rows
        return 0

    def current_percent(self) -> float:
        """The percent now: within a merge step it moves with the time the step has taken."""
        start, end, expected = self.step_span
        if self.phase == Phase.APPLYING and expected > 0:
            done = min((time.monotonic() - self.step_started) / expected, WITHIN_STEP)
            self.percent = max(self.percent, start + (end - start) * done)
        return self.percent

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-6)

    def figures(self) -> dict:
        """What the job shows now, with rate and ETA from this run's pace."""
        elapsed, percent = self.elapsed(), self.current_percent()
        done = percent - self.started_at_percent
        eta = elapsed * (self.goal - percent) / done if done >= 1 else None
        rate = self.rows_processed / elapsed if self.rows_processed else None
        return {
            "phase": self.phase,
            "message": self.message,
            "percent": percent,
            "bytes_processed": self.bytes_processed,
            "rows_processed": self.rows_processed,
            "rows_invalid": self.rows_invalid,
            "rows_per_second": round(rate, 1) if rate is not None else None,
            "eta_seconds": round(eta, 1) if eta is not None else None,
        }

    def columns(self) -> dict:
        """Return the job columns to write now (`figures`)."""
        figures = self.figures()
        percent = figures["percent"]
        return figures | {
            # percent never goes down, even when a retried job starts again from the start
            "percent": case((jobs.c.percent > percent, jobs.c.percent), else_=percent),
            "heartbeat_at": utcnow(),
        }


def _seconds(step: str, rows: int) -> float:
    """Expected seconds of a merge step over `rows` rows (a floor, so every step shows)."""
    return max(STEP_SECONDS[step] * rows / 100_000, 0.01)


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
            self.progress.stop(Cancelled())
            # Again at every beat: an interrupt that lands between two statements is lost.
            if self.progress.interruptible:
                self.interrupt()
        elif WORKER_STOPPING.is_set() and not self.progress.ending:
            # reading or applying, whatever it waits for: roll back now and hand the job back
            self.progress.stop(HandedBack())
            self.interrupt()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)
