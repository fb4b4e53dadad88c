"""How an import job ends: one function owns the final values, one writes them, one announces.

Every way a job ends (completed, no valid rows, cancelled while queued or running, failed,
lost worker) goes through `final_values`; `record_end` writes them only while the attempt
still owns the job; `announce` queues the webhook in the same transaction.
"""

import json

from sqlalchemy import Connection, Row, update

from ..timeutil import utcnow
from ..webhooks import events
from .failures import HeaderRejected, ImportStopped
from .models import ImportJob, job_json
from .states import SUCCEEDED, Status

MESSAGES = {
    Status.COMPLETED: "Import complete",
    Status.COMPLETED_WITH_ERRORS: "Import complete",
    Status.FAILED: "Import failed",
    Status.CANCELLED: "Import cancelled",
}
EVENTS = {
    Status.COMPLETED: "import.completed",
    Status.COMPLETED_WITH_ERRORS: "import.completed",
    Status.FAILED: "import.failed",
}
jobs = ImportJob.__table__


def final_values(status: Status, *, error: str | None = None, message: str | None = None) -> dict:
    """The columns of a job that ended with `status`; a completed one shows 100 percent."""
    values = {
        "status": status,
        "phase": None,
        "message": message or MESSAGES[status],
        "error": error,
        "finished_at": utcnow(),
        "eta_seconds": None,
    }
    if status in SUCCEEDED:
        values.update(percent=100.0, eta_seconds=0.0)
    return values


def stopped_values(stop: ImportStopped) -> dict:
    """The columns of a job that stopped before applying (with the header that stopped it)."""
    values = final_values(stop.status, error=str(stop))
    if isinstance(stop, HeaderRejected):
        values["header"] = json.dumps(stop.header)
    return values


def record_end(conn: Connection, job_id: int, attempts: int, values: dict, *also) -> Row | None:
    """End the job while this attempt still runs it (and `also` holds); return its row."""
    statement = (
        update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.status == Status.RUNNING,
            jobs.c.attempts == attempts,
            *also,
        )
        .values(**values)
        .returning(*jobs.c)
    )
    return conn.execute(statement).first()


def announce(conn: Connection, row: Row | None) -> list[int]:
    """Queue `import.completed` or `import.failed` in the caller's transaction.

    Returns the delivery ids for `events.send` once the caller has committed.
    """
    event = EVENTS.get(row.status) if row is not None else None
    if event is None:
        return []
    actor = {"id": row.created_by_id, "email": row.created_by} if row.created_by else None
    return events.publish(conn, event, job_json(row), actor=actor, will_send=True)
