"""`product-importer import FILE`: the same import engine, from a terminal, with live progress.

The display is rich's: a progress bar with the page's figures (phase, percent, rows/s, elapsed,
time left, counts), log lines printed above it (RichHandler on the bar's console), and a
summary table at the end. Webhook deliveries of the import are made before the command
returns, since nothing in this process would send them once it has exited.
"""

import contextlib
import logging
import os
import re
import shlex
import threading
import time

import click
from flask import Flask, current_app
from rich.console import Console
from rich.highlighter import NullHighlighter
from rich.logging import RichHandler
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from .. import logs
from ..accounts import audit
from ..apiutil import csv_text
from ..errors import AppError, Conflict, InsufficientStorage, TooLarge, said
from ..extensions import db
from ..metrics import pushed
from ..webhooks import delivery, events
from ..webhooks.models import Delivery
from . import display, options, plans, queue, service, uploads
from .progress import WORKER_STOPPING
from .states import INTERRUPTED, Status

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
COPY_BYTES = 1024 * 1024  # a read of the file to import at a time


def run_import_from_terminal(
    path: str, given: dict | None = None, rejected_to: str | None = None
) -> int:
    """Queue `path` like an upload, run its import here, show progress; return an exit code.

    `given` holds the options as typed (plan, max_invalid, columns); `rejected_to`, the file
    to write the rejected rows to (--rejected), else one beside `path` (`rejected_path`).
    """
    try:
        parsed = options.parse(given or {})
    except AppError as error:
        click.echo(f"Error: {_said_with_flags(error)}", err=True)
        return 2
    try:
        job_id = _queue(path, parsed)
    except KeyboardInterrupt:
        click.echo("Stopped (Ctrl-C) before the import was queued: nothing was imported.", err=True)
        return INTERRUPTED
    except AppError as error:
        click.echo(f"Error: {said(error.message, error.details)}", err=True)
        return 1 if isinstance(error, InsufficientStorage) else 2  # else the file is refused
    return _run_and_watch(job_id, path, rejected_to, given)


def _queue(path: str, parsed: dict) -> int:
    """Copy the file into the upload folder, check it and queue its import; return the job's
    id. The copy is removed if anything stops this before the job is committed (a refusal,
    Ctrl-C): no job, hence no retention cleanup, would ever remove it."""
    if os.path.isfile(path):  # refused before a byte is copied (a pipe's, past the limit)
        uploads.check_size(os.path.getsize(path))
    stored = _store(path)
    try:
        size = os.path.getsize(stored)
        uploads.check(stored, size)
        job = service.create(
            db.session,
            filename=_job_name(path),
            file_path=stored,
            bytes_total=size,
            created_by=None,
            sha256=uploads.sha256(stored),
            options=options.Options(**parsed),
        )
        audit.record(  # the options given, as the API records them
            db.session,
            "import.created",
            f"import #{job.id}",
            file=job.filename,
            bytes=size,
            via="cli",
            **parsed,
        )
        db.session.commit()
    except BaseException:
        _remove(stored)
        raise
    return job.id


def options_problem(given: dict) -> str | None:
    """What is wrong with the options as typed, each named by its flag; None if nothing is."""
    try:
        options.parse(given)
    except AppError as error:
        return _said_with_flags(error)
    return None


def _said_with_flags(error: AppError) -> str:
    """An options error for the terminal: `--max-invalid`, where the API says `max_invalid`."""
    details = error.details
    if isinstance(details, dict):
        details = {f"--{name.replace('_', '-')}": what for name, what in details.items()}
    return said(error.message, details)


def apply_from_terminal(job_id: int, rejected_to: str | None = None) -> int:
    """Apply a plan, run the queue here, show progress; return an exit code.

    The command line acts as no account, as `import FILE` does: the plan's end is no one's
    (its webhook's actor is null), and its page says it was applied from the command line.
    """
    try:
        plans.apply(db.session, job_id, applied_by=None)
    except AppError as error:
        click.echo(f"Error: {said(error.message, error.details)}", err=True)
        return 2
    audit.record(db.session, "import.applied", f"import #{job_id}", via="cli")
    db.session.commit()
    return _run_and_watch(job_id, rejected_to=rejected_to)


def _run_and_watch(
    job_id: int,
    path: str | None = None,
    rejected_to: str | None = None,
    given: dict | None = None,
) -> int:
    """Run the job in this process (unless a worker takes it) while showing its progress;
    report its outcome."""
    app = current_app._get_current_object()
    tasks = SendsWebhooksHere(app)
    app.extensions["embedded_worker"] = tasks  # background.submit() hands tasks to it
    runner = OwnJobRunner(app, job_id)
    runner.start()
    console = Console(stderr=True)  # progress and logs; the outcome goes to stdout
    cancelled = ended_first = False
    with _logging_above(console, app.config["LOG_FORMAT"]):
        try:
            job = _watch(console, job_id)
        except KeyboardInterrupt:
            job, cancelled = _cancel_on_interrupt(console, job_id)
            if job is None:
                return INTERRUPTED
            ended_first = not cancelled  # Ctrl-C once it had ended: out, no more waiting
        waited = runner.finish(wait=not ended_first)
        if not waited:
            click.echo(NOT_WAITED, err=True)
        _push_counts()
    rejected = _write_rejected(job, rejected_to or rejected_path(path, job.id))
    code = _report(Console(), job, rejected + _webhook_rows(tasks.sent, waited))
    display.say_next_step(  # with the options `given` to this run, but the one it mends
        job.to_dict(),
        f"product-importer import {shlex.quote(path or job.filename)}",
        given={**(given or {}), "rejected": rejected_to},
    )
    return INTERRUPTED if cancelled and job.status == Status.CANCELLED else code


NOT_WAITED = (
    "Stopped without waiting for the import's webhooks (Ctrl-C): a worker or `serve` sends "
    "those not delivered yet."
)


def _push_counts() -> None:
    """Add the webhook attempts this command made to the totals /metrics reads (a worker
    pushes its own every second; this process ends now). Not counted if the database is away."""
    try:
        pushed.flush()
    except SQLAlchemyError as error:
        log.warning("This command's webhook attempts are not counted in /metrics: %s", error)


class OwnJobRunner(threading.Thread):
    """Runs this command's job in this process whenever it is queued, until it has ended; a
    worker (or `serve`, or a drain of another process) that takes it first runs it instead.
    It takes no job queued after its own (`queue.run_up_to`): another terminal's import is that
    terminal's to run, and to stop with its Ctrl-C."""

    def __init__(self, app: Flask, job_id: int):
        super().__init__(name="import-queue", daemon=True)
        self.app, self.job_id = app, job_id
        self.stopping = threading.Event()

    def run(self) -> None:
        with self.app.app_context():
            while not queue.run_up_to(self.job_id) and not self.stopping.wait(POLL_SECONDS):
                pass  # held by another drain, or run by a worker: looked at again

    def finish(self, wait: bool = True) -> bool:
        """Take no more jobs, and wait (if `wait`) until what it still does ends: the job's
        webhooks it sends; an earlier job it runs (this one cancelled before it began) goes
        back to the queue at once, as a stopping worker's does. Return whether it has ended:
        Ctrl-C stops the wait."""
        self.stopping.set()
        WORKER_STOPPING.set()
        if wait:
            with contextlib.suppress(KeyboardInterrupt):
                self.join()
        return not self.is_alive()


def _cancel_on_interrupt(console: Console, job_id: int):
    """Ctrl-C: cancel the import as the page's Cancel does, and show it stop. Return the job as
    it ended (None when a second Ctrl-C leaves before it has: the import is then left being
    cancelled), and whether this cancelled it (not if it had ended already)."""
    db.session.rollback()  # the interrupt may have come in the middle of a query
    try:
        service.cancel(db.session, job_id)
        audit.record(db.session, "import.cancelled", f"import #{job_id}", via="cli")
        db.session.commit()
        console.print(f"Cancelling import #{job_id} (Ctrl-C): nothing of it will be applied.")
        cancelled = True
    except Conflict:
        db.session.rollback()  # it ended meanwhile: its outcome is reported as it is
        cancelled = False
    try:
        return _watch(console, job_id), cancelled
    except KeyboardInterrupt:
        click.echo(
            f"Stopped without waiting: import #{job_id} is being cancelled, and a worker or "
            "`serve` ends it (nothing of it is applied).",
            err=True,
        )
        return None, cancelled


class SendsWebhooksHere:
    """Where this command's background tasks go: webhook deliveries are made at once, here.

    The command exits when the import ends, so a delivery left for later would wait for
    another process's sweep; anything else goes to the workers as it would from the web app.
    """

    def __init__(self, app: Flask):
        self.app = app
        self.sent: list[int] = []

    def submit(self, task_name: str, args: tuple) -> None:
        if task_name == events.DELIVER_TASK:
            # deliver() hands another webhook's batch back here: each delivery is counted once
            self.sent += [delivery_id for delivery_id in args[0] if delivery_id not in self.sent]
            with self.app.app_context():
                delivery.deliver(args[0])  # its other endpoints' batches come back here
        elif not self.app.config["EMBEDDED_WORKER"]:
            self.app.extensions["celery"].send_task(task_name, args=args)


def _job_name(path: str) -> str:
    """The name the import is listed under: the file's, or for a pipe the path given (the
    basename of `<(zcat file.gz)`, /dev/fd/63, would read "63")."""
    if os.path.isfile(path):
        return os.path.basename(path)
    return f"piped input ({path})"  # cut to its column's length as the job keeps it


def _store(path: str) -> str:
    """Copy the file into the upload folder: the retention cleanup may remove it later.

    Read as a stream, so that a pipe imports too (`<(zcat file.gz)`, /dev/stdin), where
    copyfile refuses one, and stopped past MAX_UPLOAD_BYTES (a pipe's size is known only
    then); a copy stopped half-way (Ctrl-C, a full disk) is removed, as no job will. A folder
    that cannot take it is said in a line (AppError for too little room, ClickException else).
    """
    size = os.path.getsize(path) if os.path.isfile(path) else 0
    stored = None
    try:
        _refuse_if_disk_would_fill(size)
        stored = uploads.new_path(path)
        # unbuffered: a read of a pipe returns what came, not 1 MiB or its end (the limit
        # is seen while the pipe is still open)
        with open(path, "rb", buffering=0) as source, uploads.open_new(stored) as copy:
            _copy(source, copy)
    except BaseException as error:
        if stored is not None:
            _remove(stored)
        if isinstance(error, OSError):  # the file's own reads are said by `_copy`
            raise _not_written(stored, error) from error
        raise
    return stored


def _copy(source, copy) -> None:
    """Copy `source` into `copy`, refusing it (TooLarge) once past MAX_UPLOAD_BYTES."""
    limit, copied = current_app.config["MAX_UPLOAD_BYTES"], 0
    while True:
        try:
            chunk = source.read(COPY_BYTES)
        except OSError as error:  # not the copy's fault: UPLOAD_FOLDER is not the cure
            why = f"Could not read {source.name} ({error.strerror or error})."
            raise click.ClickException(why) from None
        if not chunk:
            return
        copied += len(chunk)
        if copied > limit:
            raise TooLarge(
                f"The input is larger than the limit of {limit:,} bytes (MAX_UPLOAD_BYTES). "
                "Split it into smaller files or compress it with gzip."
            )
        copy.write(chunk)


def _refuse_if_disk_would_fill(size: int) -> None:
    """Refuse (InsufficientStorage) a copy of `size` bytes that would leave less than
    MIN_FREE_DISK_BYTES free in the upload folder, as the web upload does, said for a terminal."""
    short = uploads.disk_would_fill(size)
    if short:
        free, keep_free = short
        folder = current_app.config["UPLOAD_FOLDER"]
        raise InsufficientStorage(
            f"Too little disk space in UPLOAD_FOLDER ({folder}) for a copy of the file: "
            f"{free:,} bytes free, {size:,} to copy, {keep_free:,} kept free "
            "(MIN_FREE_DISK_BYTES). Free space there, or set UPLOAD_FOLDER to a folder with more."
        )


def _not_written(stored: str | None, error: OSError) -> click.ClickException:
    """The error of a copy (or its folder) that could not be written, with what to do."""
    target = stored or current_app.config["UPLOAD_FOLDER"]
    return click.ClickException(
        f"Could not write {target} ({error.strerror or error}): the file is copied into "
        "UPLOAD_FOLDER before it is imported. Set UPLOAD_FOLDER to a folder this user can "
        "write to, with free space for the file."
    )


def _remove(stored: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(stored)


class _logging_above:
    """Log through rich on the bar's console while it shows, so lines go above the bar: in
    rich's columns, or with LOG_FORMAT=json as JSON lines (`JsonAbove`). Into a file (`2>
    import.log`) text lines go as the server writes them: rich would wrap them at 80 columns,
    with the time of day alone."""

    def __init__(self, console: Console, log_format: str):
        if log_format == "json":
            self.handler: logging.Handler = JsonAbove(console)
        elif not console.is_terminal:
            self.handler = logs.handler(log_format)
        else:
            self.handler = RichHandler(
                console=console,
                show_path=False,
                log_time_format="%X",
                highlighter=NullHighlighter(),
            )
        self.root = logging.getLogger()
        self.saved: list[logging.Handler] = []

    def __enter__(self):
        self.saved = self.root.handlers[:]
        self.handler.setLevel(self.root.level)
        self.root.handlers = [self.handler]

    def __exit__(self, *exc):
        self.root.handlers = self.saved


class JsonAbove(logging.Handler):
    """LOG_FORMAT=json's lines, with their ids, above the bar: each whole on its line, as rich
    neither wraps, crops nor colours `out` (a JSON object cut at the terminal's width, or
    coloured, is no longer one); rich's columns would drop the JSON altogether."""

    def __init__(self, console: Console):
        super().__init__()
        self.console = console
        self.setFormatter(logs.formatter("json"))
        self.addFilter(logs.Context())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.out(self.format(record), highlight=False)
        except Exception:  # as logging's own handlers: a line lost, not the import
            self.handleError(record)


def _watch(console: Console, job_id: int):
    """Show the job's progress until it (and the search index it rebuilds) is done."""
    with display.progress_bar(console) as bar:
        task = bar.add_task(f"Import {job_id}", total=100, phase="Queued", figures="")
        shown: dict = {"percent": 0.0}
        while True:
            # what the worker committed since: no transaction kept (SQLite's snapshot would hide
            # it), nor the job as last read (a rollback right after a commit forgets nothing)
            db.session.rollback()
            db.session.expire_all()
            job = service.get(db.session, job_id)
            # its run is on a thread here: the row lags it by a heartbeat, and on SQLite by
            # the whole merge, which holds the one writer (the bar sat at "Applying 30%")
            now = job.to_dict() | service.run_progress(job)
            if job.finished or now["percent"] >= shown["percent"]:
                shown = now  # not the row's lag once the run writes its end: never back
            display.show_job(bar, task, shown)
            if job.finished and job.search_index != "refreshing":
                return job
            time.sleep(POLL_SECONDS)


def _report(console: Console, job, rows: list[tuple[str, str]]) -> int:
    """Print the outcome as a table (and an error on stderr); return the exit code."""
    apply = f"Apply it: product-importer import --apply {job.id}"
    return display.report(console, job.to_dict(), rows, apply)


def rejected_path(path: str | None, job_id: int) -> str:
    """Where the rejected rows go without --rejected: beside the file, after its name
    (prices.csv.gz: prices-rejected.csv); for a pipe or a plan applied, the current folder."""
    if path is None or not os.path.isfile(path):
        return f"import-{job_id}-rejected.csv"  # the name of the page's download
    folder, name = os.path.split(path)
    stem = re.sub(r"(\.csv)?(\.gz)?$", "", name, flags=re.IGNORECASE) or name
    return os.path.join(folder, f"{stem}-rejected.csv")


def _write_rejected(job, to: str) -> list[tuple[str, str]]:
    """Write the job's rejected rows, as the file had them after `line,reason`, to `to`; the
    summary's row that says where (the server's rejected.csv is no use in a terminal)."""
    if not job.rows_invalid:
        # one left by an earlier import of the file would be taken for this one's
        with contextlib.suppress(FileNotFoundError):
            os.remove(to)
        return []
    db.session.rollback()
    header, rows = service.rejected_file(db.session, job)
    try:
        with open(to, "w", encoding="utf-8", newline="") as out:
            out.writelines(csv_text(rows, header))
    except OSError as error:
        said = f"not written to {to} ({error.strerror or error})"
        return [("Rejected rows", f"{said}; the import's page has them (`serve`)")]
    return [("Rejected rows", f"{to} (fix them there and import that file)")]


def _webhook_rows(sent: list[int], waited: bool = True) -> list[tuple[str, str]]:
    """Say what became of the webhooks this command sent (none when a worker ran the job);
    not `waited` for (Ctrl-C), one not answered yet is being sent, or left to send."""
    if not sent:
        return []
    db.session.rollback()
    outcomes = db.session.execute(
        select(Delivery.status, Delivery.status_code, Delivery.error).where(Delivery.id.in_(sent))
    ).all()
    said = [_delivery_said(*outcome, waited=waited) for outcome in outcomes]
    hooks = "1 webhook" if len(sent) == 1 else f"{len(sent)} webhooks"
    return [("Webhooks", f"{hooks}: {'; '.join(said)}")]


def _delivery_said(status: str, code: int | None, error: str | None, *, waited: bool) -> str:
    if status == "pending" and not code and not error:  # not tried: its webhook's order holds it
        if not waited:
            return "not delivered yet (Ctrl-C); a worker or `serve` sends it"
        return "waiting for an earlier event to that webhook; a worker or `serve` sends it next"
    answer = f"HTTP {code}" if code else error
    if status == "succeeded":
        return f"delivered ({answer})"
    if status == "pending":
        return f"not delivered yet ({answer}); a worker or `serve` retries it"
    return f"failed ({answer})"
