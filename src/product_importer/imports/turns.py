"""An import's turn to apply: the imports uploaded before it have ended, and none applies.

Imports read side by side on any worker; only applying to the catalog is one at a time, in
upload order. An import that has read its file waits here. If an earlier import stays queued
(no worker free to read it, as when every free slot holds a later import waiting here), the
waiting one gives its job back to the queue, so the earlier one can be read and applied. An
earlier import that waits for the rest of its upload (`ready_to_run`) holds no one up.
"""

import logging
import time

from sqlalchemy import Connection, and_, exists, or_, select

from .. import database
from .failures import ImportStopped
from .models import ImportJob, Upload
from .progress import WAITING, WORKER_STOPPING, ClaimedJob, Progress
from .states import Status

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
# How long an earlier import may stay queued while this one waits, before this one gives way.
GIVE_WAY_SECONDS = 10.0
jobs = ImportJob.__table__
uploads = Upload.__table__
# An import that committed into an empty catalog builds its search indexes after its commit,
# holding the turn: the import waiting for it has no earlier import to wait for.
WAITING_FOR_SEARCH = "Read; waiting for the search indexes of the last import to be built"


class GiveWay(ImportStopped):
    """An earlier import waits for a worker that this one holds: back to the queue."""

    def __init__(self):
        super().__init__("An earlier import waits for a worker; this one goes back to the queue.")


class Turn:
    """Waits for `job`'s turn to apply on `conn`, and holds it until released.

    `refresh(conn)` (building deferred search indexes) runs on taking and on releasing it.
    """

    def __init__(self, conn: Connection, job: ClaimedJob, refresh=None):
        self.conn, self.job = conn, job
        self.seam = database.of(conn)
        self.refresh = refresh  # runs while the turn is still held (search refresh)
        self.held = False

    def wait(self, progress: Progress) -> None:
        """Return once the earlier imports have ended and this import holds the turn."""
        queued_since = None
        while True:
            if progress.cancel.is_set():
                raise progress.stopped()
            earlier = self._earlier_unfinished()
            if not earlier and self.seam.take_turn(self.conn):
                self.held = True
                if self.refresh is not None:
                    self.refresh(self.conn)  # what a lost import left to do, first
                return
            progress.message = WAITING_FOR_SEARCH if self._search_held(earlier) else WAITING
            if Status.QUEUED in earlier and not WORKER_STOPPING.is_set():
                queued_since = queued_since or time.monotonic()
                if time.monotonic() - queued_since > GIVE_WAY_SECONDS:
                    raise GiveWay()
            else:
                queued_since = None
            time.sleep(POLL_SECONDS)

    def _search_held(self, earlier: set[str]) -> bool:
        """Whether the turn is held by the building of an import's search indexes (after its
        commit: minutes at 5M products), not by an earlier import."""
        if earlier:
            return False
        found = self.conn.execute(
            select(jobs.c.id).where(jobs.c.search_index == "refreshing").limit(1)
        ).first()
        self.conn.commit()
        return found is not None

    def _earlier_unfinished(self) -> set[str]:
        """The statuses of the imports uploaded before this one that have not ended."""
        if not self.seam.parallel_reading:
            return set()
        found = self.conn.execute(
            select(jobs.c.status)
            .where(
                jobs.c.id < self.job.id,
                # one that waits for the rest of its upload is not in the way
                or_(
                    jobs.c.status == Status.RUNNING,
                    and_(jobs.c.status == Status.QUEUED, ready_to_run()),
                ),
            )
            .distinct()
        )
        statuses = set(found.scalars())
        self.conn.commit()
        return statuses

    def release(self) -> None:
        """Let the next import apply (after `refresh`); harmless if never taken."""
        if not self.held:
            return
        self.held = False
        try:
            if not self.seam.holds_turn(self.conn):
                # its session was cut (and made anew): the lock went with it, and another
                # import may hold the turn now, building the search indexes
                log.warning("import %s: the turn was lost with its session", self.job.id)
                return
            if self.refresh is not None:
                self.refresh(self.conn)
            self.seam.end_turn(self.conn)
        except Exception:  # the connection is gone, and the lock with it
            log.warning("import %s: turn not released cleanly", self.job.id, exc_info=True)


def ready_to_run():
    """Queued jobs that may run now: all but those that gave up waiting for their upload
    (stalled) while no byte has come since; a cancel request runs the job to its end."""
    still_waiting = exists().where(
        uploads.c.id == jobs.c.upload_id,
        uploads.c.completed_at.is_(None),
        uploads.c.error.is_(None),
        or_(uploads.c.received_at.is_(None), uploads.c.received_at <= jobs.c.heartbeat_at),
    )
    return or_(
        jobs.c.upload_id.is_(None),
        jobs.c.heartbeat_at.is_(None),
        jobs.c.cancel_requested,
        ~still_waiting,
    )
