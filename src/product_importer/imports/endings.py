"""How an import job ends: one function owns the final values, one writes them, one announces.

Every way a job ends (completed, no valid rows, cancelled while queued or running, failed,
lost worker) goes through `final_values`; `record_end` writes them only while the attempt
still owns the job; `announce` queues the webhook in the same transaction.
"""

from flask import current_app
from sqlalchemy import Connection, Row, update

from ..timeutil import utcnow
from ..webhooks import events
from .failures import ImportStopped
from .models import ImportJob, job_json
from .progress import PLAN_SHARE
from .states import SUCCEEDED, Kind, Status

MESSAGES = {
    Status.COMPLETED: "Import complete",
    Status.COMPLETED_WITH_ERRORS: "Import complete",
    Status.FAILED: "Import failed",
    Status.CANCELLED: "Import cancelled",
    Status.PLANNED: "Plan ready",
    Status.DISCARDED: "Plan discarded",
}
EVENTS = {
    Status.COMPLETED: "import.completed",
    Status.COMPLETED_WITH_ERRORS: "import.completed",
    Status.FAILED: "import.failed",
}
jobs = ImportJob.__table__


def final_values(status: Status, *, error: str | None = None, message: str | None = None) -> dict:
    """The columns of a job that ended with `status`; a completed one shows 100 percent, a plan
    PLAN_SHARE (its apply goes on from there)."""
    values = {
        "status": status,
        "phase": None,
        "message": message or MESSAGES[status],
        "error": error,
        "error_code": None,
        "finished_at": utcnow(),
        "eta_seconds": None,
    }
    if status in SUCCEEDED:
        values.update(percent=100.0, eta_seconds=0.0)
    elif status == Status.PLANNED:
        values.update(percent=PLAN_SHARE)
    elif status in (Status.FAILED, Status.CANCELLED):
        # nothing was applied: not the counts of the plan an apply started from
        values.update(created=0, updated=0, unchanged=0)
    return values


def stopped_values(stop: ImportStopped) -> dict:
    """The columns of a job that stopped before applying (with the counts or header it names)."""
    return final_values(stop.status, error=str(stop)) | {"error_code": stop.code} | stop.columns


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
    """Queue `import.completed`, `import.undone` or `import.failed` in the caller's transaction.

    One event per import: a completed one carries its counts and where its change record is.
    Returns the delivery ids for `events.send` once the caller has committed.
    """
    event = EVENTS.get(row.status) if row is not None else None
    if event is None:
        return []
    data = job_json(row)
    if event == "import.completed" and row.kind == Kind.UNDO:
        event = "import.undone"
    elif event == "import.completed":
        data["changes_url"] = changes_url(row)
    return events.publish(conn, event, data, actor=actor_of(row), will_send=True)


def actor_of(row: Row) -> dict | None:
    """Who caused the job's end: who applied it if it was a plan (None for the command line),
    else who started it."""
    if row.applied_by:
        return {"id": row.applied_by_id, "email": row.applied_by}
    if row.applied_at is not None:  # applied from the command line: by no account
        return None
    return {"id": row.created_by_id, "email": row.created_by} if row.created_by else None


def changes_url(row: Row) -> str:
    """Where a receiver fetches the import's change record: under PUBLIC_URL, else the address
    the import was asked at; only the path for one from the command line with neither."""
    base = current_app.config["PUBLIC_URL"] or row.origin or ""
    return f"{base}/api/imports/{row.id}/changes"
