"""Import pages: upload with live progress, the import history, and one import with its plan or
change record."""

from datetime import datetime, timedelta

from flask import Blueprint, current_app, render_template, request
from markupsafe import Markup, escape

from ..accounts.auth import requires
from ..accounts.roles import Role
from ..apiutil import page_count
from ..extensions import db
from ..timeutil import aware, local_times, utcnow
from . import plans, service
from .failures import TOO_MANY_INVALID
from .growing import UPLOAD_STALLED
from .models import ImportJob, products, superseded_note
from .states import Kind, Status

bp = Blueprint("imports", __name__, template_folder="templates")
# A moment the server wrote into a message (an audit detail) in the reader's time zone.
bp.add_app_template_filter(local_times, "local_times")


@bp.app_template_filter("warning_html")
def warning_html(warning: str) -> Markup:
    """A job's warning as HTML: the moment of the identical earlier import in the reader's time
    zone; any other as written (a header's name that looks like a time is the file's own)."""
    return local_times(warning) if warning.startswith(service.SAME_FILE_NOTE) else escape(warning)


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
    """The history of imports, newest first, a page at a time (?page=2 for older ones)."""
    per_page = service.HISTORY_PER_PAGE
    total = service.count_jobs(db.session)
    pages = page_count(total, per_page)
    # an old link past the last page (imports deleted since) shows the last one, not none
    page = min(page_wanted(request.args.get("page", "")), pages)
    found = service.list_recent(db.session, limit=per_page, page=page)
    return render_template(
        "imports/history.html",
        jobs=[history_row(job) for job in found],
        paging={
            "page": page,
            "pages": pages,
            "total": total,
            "first": (page - 1) * per_page + 1,
            "last": (page - 1) * per_page + len(found),
        },
        outcomes=OUTCOMES,
        superseded_note=superseded_note,
    )


def page_wanted(asked: str) -> int:
    """The page of the history a person typed or kept in a link, never an error: the first
    for none, 0 or words."""
    asked = asked.strip()
    if not (asked.isascii() and asked.isdigit()):
        return 1
    return max(1, int(asked.lstrip("0")[:9] or 0))


@bp.get("/imports/<int:job_id>")
@requires(Role.VIEWER)
def import_page(job_id: int):
    """One import: its outcome, its plan or change record, and what can be done with it."""
    found = service.get(db.session, job_id)
    days = current_app.config["IMPORT_UNDO_DAYS"]
    # an undo queued or running: not offered again (detail.js asks after it until it ends)
    undoing = None if found.undone_by else plans.undo_under_way(db.session, job_id)
    return render_template(
        "imports/detail.html",
        job=history_row(found),
        undoing=undoing,
        outcomes=OUTCOMES,
        undo_question=undo_question(found.to_dict()),
        superseded_note=superseded_note,
        undo_days=days,
        # a plan's record is kept until it is applied or discarded, however old the plan
        record_kept=found.status == Status.PLANNED or record_kept(found.finished_at, days),
    )


def record_kept(finished: datetime | None, days: float) -> bool:
    """Whether a finished import's change record is still kept (and so it can be undone)."""
    return finished is None or aware(finished) >= utcnow() - timedelta(days=days)


def undo_question(job: dict) -> str:
    """What undoing the import does, asked: "Delete 1,204 products it created and restore ..."."""
    created, updated = job["created"] or 0, job["updated"] or 0
    deed = []
    if created:
        deed.append(f"delete {products(created)} it created")
    if updated:
        deed.append(
            f"restore {updated:,} it changed"
            if created
            else f"restore {products(updated)} it changed"
        )
    if not deed:
        return "Undo this import? It changed no products."
    return " and ".join(deed).capitalize() + "?"


def history_row(job: ImportJob) -> dict:
    """The job's JSON plus what the pages show: its duration, whether a Retry makes sense (or
    why the file cannot be imported again), whether a cancel of it is under way."""
    # a running job's bar as its run here has it (on SQLite its row lags during the merge)
    row = job.to_dict() | service.progress_here(db.session, job)
    # an undo reads no file: it is undone again from its import's page, never refused so
    again = job.kind == Kind.IMPORT and (retryable(row) or stopped_by_threshold(row))
    refusal = service.retry_refusal(db.session, job) if again else None
    return {
        **row,
        # a discarded plan "finished" when it was discarded, perhaps a day after its reading:
        # that wait is no duration of it
        "duration": ""
        if job.status == Status.DISCARDED
        else duration_label(job.started_at, job.finished_at),
        "retryable": retryable(row) and not refusal,
        "retry_refusal": refusal,
        "stopped_by_threshold": stopped_by_threshold(row) and not refusal,
        "upload_stalled": upload_stalled(row),
        # asked to stop and not yet stopped: the page says so rather than offer Cancel again.
        # Only while it runs: a job handed back to the queue (its upload stalled, its worker
        # stopped) keeps the flag, and is cancelled at once by a Cancel there.
        "cancelling": bool(job.cancel_requested) and job.status == Status.RUNNING,
    }


def upload_stalled(job: dict) -> bool:
    """Whether the job is back in the queue until its upload goes on (upload.js says the same):
    the page says how to go on."""
    return job["status"] == "queued" and (job["message"] or "").startswith(UPLOAD_STALLED)


def stopped_by_threshold(job: dict) -> bool:
    """Whether the job's invalid-row limit stopped it (its `error_code` says so, for upload.js
    too): it can go on without the limit."""
    return job["error_code"] == TOO_MANY_INVALID


def retryable(job: dict) -> bool:
    """Whether retrying the job as it was could end otherwise (upload.js says the same).

    A file that lacked a column (its header is listed: the columns are mapped instead), whose
    rows made it fail (too many invalid, none valid) or whose bytes did (no CSV, a line too
    long, a gzip damaged or too large, no header: its `error_code` says so) would only fail the
    same way again.
    """
    if job["status"] == "cancelled":
        return True
    return (
        job["status"] == "failed"
        and not job["header"]
        and not job["rows_invalid"]
        and not job["error_code"]
    )


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
