"""Import pages: upload with live progress, and the import history."""

from datetime import datetime

from flask import Blueprint, current_app, render_template

from ..accounts.auth import requires
from ..accounts.roles import Role
from ..extensions import db
from . import service
from .models import ImportJob, superseded_note

bp = Blueprint("imports", __name__, template_folder="templates")

OUTCOMES = {
    "queued": ("Queued", "badge-muted"),
    "running": ("Running", "badge-info"),
    "completed": ("Completed", "badge-success"),
    "completed_with_errors": ("Completed with errors", "badge-warning"),
    "failed": ("Failed", "badge-danger"),
    "cancelled": ("Cancelled", "badge-muted"),
    "planned": ("Planned", "badge-info"),
    "discarded": ("Discarded", "badge-muted"),
}
# The upload page's states before a job exists; its script reads these with OUTCOMES.
UPLOAD_STATES = {
    "uploading": ("Uploading", "badge-info"),
    "upload_failed": ("Upload failed", "badge-danger"),
    "paused": ("Paused", "badge-muted"),
}


@bp.get("/")
@requires(Role.VIEWER)
def upload_page():
    """Upload a CSV and watch its import."""
    limit = current_app.config["MAX_UPLOAD_BYTES"]
    return render_template(
        "imports/upload.html",
        max_upload_bytes=limit,
        max_upload_label=size_label(limit),
        statuses=OUTCOMES | UPLOAD_STATES,
    )


@bp.get("/imports")
@requires(Role.VIEWER)
def history_page():
    """The history of imports, newest first."""
    jobs = [history_row(job) for job in service.list_recent(db.session)]
    return render_template(
        "imports/history.html", jobs=jobs, outcomes=OUTCOMES, superseded_note=superseded_note
    )


def history_row(job: ImportJob) -> dict:
    """The job's JSON plus what the history table shows: its duration."""
    return {**job.to_dict(), "duration": duration_label(job.started_at, job.finished_at)}


def duration_label(started: datetime | None, finished: datetime | None) -> str:
    """Say how long a finished job ran: "40 ms", "1.4 s", "12 s", "3 min 5 s", "1 h 2 min"."""
    if started is None or finished is None:
        return ""
    return seconds_label((finished - started).total_seconds())


def seconds_label(seconds: float) -> str:
    """Say a number of seconds as the pages do: "40 ms", "1.4 s", "3 min 5 s", "1 h 2 min"."""
    seconds = max(0.0, seconds)
    if seconds < 0.001:
        return "under 1 ms"
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"  # not "0.0 s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    return f"{minutes // 60} h {minutes % 60} min"


def size_label(size: float) -> str:
    """Say a byte count the way the page's script does (1024-based): "1 GB", "500 MB"."""
    units = ["B", "KB", "MB", "GB", "TB"]
    unit = 0
    while size >= 1024 and unit < len(units) - 1:
        size /= 1024
        unit += 1
    return f"{size:.3g} {units[unit]}"
