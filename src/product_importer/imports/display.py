"""What `product-importer import` shows in a terminal, here or on a server (--url): the progress
bar's phase and figures, and the summary table at the end. Both read the ImportJob JSON, which
the local command has from its row and the remote one from `GET /api/imports/<id>`.
"""

import json
import re
import shlex
from datetime import datetime

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

from ..timeutil import aware, utcnow
from .csv_rows import MISSING_COLUMNS
from .failures import TOO_MANY_INVALID
from .models import superseded_note
from .progress import WAITING
from .states import FINISHED, SUCCEEDED, Phase, Status
from .turns import WAITING_FOR_SEARCH
from .views import OUTCOMES, seconds_label

BAR_WIDTH = 20
WAITS = {  # an import's wait for its turn, as the bar says it
    WAITING: "waiting for the imports before it",
    WAITING_FOR_SEARCH: "waiting for the last import's search indexes",
}
# The phase (9), the bar, the percent (4) and the spaces between: the figures get the rest of
# the line, those that do not fit left out (`fit`); else rich would cut the phase ("Rea…") and drop
# the bar and the percent first.
BESIDE_FIGURES = 9 + BAR_WIDTH + 4 + 3
PHASES = {"reading": "Reading", "applying": "Applying"}
SEPARATOR = " · "  # between the bar's figures
STEP = re.compile(r"Applying .+ \((?P<step>[^()]+)\)")  # progress.Progress.merging's message


def progress_bar(console: Console, *, transient: bool = False) -> Progress:
    """A bar of the phase, its percent and the figures beside it, on `console`; a `transient`
    one is removed when it stops."""
    columns = (
        TextColumn("[bold]{task.fields[phase]:<9}"),
        BarColumn(bar_width=BAR_WIDTH),
        TaskProgressColumn(),
        TextColumn("{task.fields[figures]}", markup=False),  # a server's words, not markup
    )
    # a transient bar leaves nothing in a file, but rich's "\n" where it stood
    hidden = transient and not console.is_terminal
    return Progress(
        *columns, console=console, refresh_per_second=8, transient=transient, disable=hidden
    )


def show(bar: Progress, task, phase: str, figures: list[str], percent: float) -> None:
    """Draw the bar: the `figures` that fit the console's width, whole."""
    kept = fit(SEPARATOR.join(figure for figure in figures if figure), bar.console.width)
    bar.update(task, completed=percent, phase=phase, figures=kept)


def show_job(bar: Progress, task, job: dict) -> None:
    """Draw the bar with the job's phase and the figures the page shows."""
    show(bar, task, phase_of(job), figures_of(job), job["percent"])


def phase_of(job: dict) -> str:
    """The word before the bar; a job that ended says how, in the page's words."""
    finished = job["status"] in FINISHED
    if job["status"] == Status.PLANNED:
        return "Planned"  # its bar stops short: applying it does the rest
    if finished and job.get("search_index") == "refreshing":
        return "Indexing"
    if job["status"] in SUCCEEDED:
        return "Finished"
    if finished:  # "Finished" beside a bar stopped short read as a success
        return OUTCOMES[job["status"]][0]
    return PHASES.get(job["phase"], OUTCOMES[job["status"]][0])


def figures_of(job: dict) -> list[str]:
    """The page's figures, in one line; what is not known says so."""
    rows = job["rows_processed"]
    rate = f"{job['rows_per_second']:,.0f} rows/s" if job["rows_per_second"] else "– rows/s"
    left = "" if job["status"] in FINISHED else _left(job["eta_seconds"])
    return [
        doing(job),
        rate,
        f"elapsed {seconds_label(elapsed(job))}",
        left,
        f"{rows:,} row{'' if rows == 1 else 's'} read",
        f"{job['rows_invalid']:,} rejected",
    ]


def doing(job: dict) -> str:
    """What the import does now that its phase does not say, as the page's message says it:
    the merge's step ("comparing"), its wait for its turn, the search indexes built after it.
    First of the figures: the bar sat at "Applying 30%" for the whole merge without it."""
    message = job["message"] or ""
    if job["status"] in FINISHED:
        return "building search indexes" if job.get("search_index") == "refreshing" else ""
    if job["phase"] == Phase.APPLYING and (step := STEP.fullmatch(message)):
        return step["step"]
    return WAITS.get(message, "")


def fit(figures: str, width: int) -> str:
    """The first of the `figures` that fit whole beside the bar on a line of `width`, then "…"
    for the rest: a figure cut in its middle ("elapse…") reads as a mistake. One that alone does
    not fit is cut, rather than show nothing."""
    room = width - BESIDE_FIGURES
    if len(figures) <= room:
        return figures
    kept = ""
    for figure in figures.split(SEPARATOR):
        longer = f"{kept}{SEPARATOR}{figure}" if kept else figure
        if len(longer) + len(" …") > room:
            break
        kept = longer
    return f"{kept} …" if kept else figures[: max(0, room - 1)] + "…"


def _left(eta: float | None) -> str:
    return "time left not known yet" if eta is None else f"about {seconds_label(eta)} left"


def elapsed(job: dict) -> float:
    """Seconds from the job's start to its end, or to now while it runs."""
    if job["started_at"] is None:
        return 0.0
    end = _time(job["finished_at"]) if job["finished_at"] else utcnow()
    return max(0.0, (end - _time(job["started_at"])).total_seconds())


def _time(iso: str) -> datetime:
    return aware(datetime.fromisoformat(iso))


def report(
    console: Console, job: dict, rows: list[tuple[str, str]], apply: str, after: tuple = ()
) -> int:
    """Print the outcome as a table, with the summary's rows and then `rows`, and the lines
    `after` it (an address, whole on its line: cut in a cell, it could not be copied); a plan
    is followed by how to `apply` it, then the warnings and the error (on stderr). Return the
    exit code: 0 for a completed import or a plan. A file's name, its columns in a warning or a
    webhook's error are escaped: rich took a "[/b]" in them for its markup, and failed; and
    shown plain: rich's highlighter coloured the numbers of "import #12 of 2026-12-05"."""
    title = escape(f"Import #{job['id']}: {job['filename']}")
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in summary_rows(job) + rows:
        table.add_row(name, escape(value))
    console.print(table)
    for line in after:
        console.print(escape(line), soft_wrap=True, highlight=False)
    if job["status"] == Status.PLANNED:
        console.print(escape(f"Nothing has changed yet. {apply}"), soft_wrap=True, highlight=False)
    for warning in job["warnings"]:
        console.print(
            escape(f"Warning: {warning}"), style="yellow", soft_wrap=True, highlight=False
        )
    if job["error"]:
        click.echo(f"Error: {job['error']}", err=True)
    return 0 if job["status"] in SUCCEEDED | {Status.PLANNED} else 1


def summary_rows(job: dict) -> list[tuple[str, str]]:
    """Outcome, counts, duration and speed: the rows every summary has."""
    would = "Would be " if job["status"] == Status.PLANNED else ""
    rows = [
        ("Outcome", OUTCOMES[job["status"]][0]),
        ("Rows read", f"{job['rows_processed']:,}"),
        (f"{would}created".capitalize(), f"{job['created']:,}"),
        (f"{would}updated".capitalize(), f"{job['updated']:,}"),
        ("Unchanged", f"{job['unchanged']:,}"),
        ("Rejected", f"{job['rows_invalid']:,}"),
        ("Duration", seconds_label(elapsed(job))),
    ]
    if job["rows_per_second"]:
        rows.append(("Speed", f"{job['rows_per_second']:,.0f} rows/s"))
    if job["rows_superseded"]:
        rows.append(("Repeated SKUs", superseded_note(job["rows_superseded"])))
    return rows


def say_next_step(
    job: dict, again: str, page: str | None = None, given: dict | None = None
) -> None:
    """After a failure the options mend, the command that mends it (`again`, with the option and
    the other options `given`), and on a server the `page` whose button does it without sending
    the file again: the error names them in the API's words."""
    if job["error_code"] == TOO_MANY_INVALID:
        again = _with_options(again, given, leave_out="max_invalid")
        step = f"To import its valid rows anyway: {again} --max-invalid 100%"
    elif job["status"] == Status.FAILED and (job["error"] or "").startswith(MISSING_COLUMNS):
        again = _with_options(again, given, leave_out="columns")
        mapping = '\'{"sku": "<column>", "name": "<column>"}\''
        step = (
            "To import it, name the columns of its header that hold each field: "
            f"{again} --columns {mapping}"
        )
    else:
        return
    if page:
        step += f" (or on its page, without sending the file again: {page})"
    click.echo(step, err=True)


def _with_options(command: str, given: dict | None, leave_out: str) -> str:
    """`command` with the options given to the run that failed, but the one the step replaces:
    a mapping given with --columns is kept when --max-invalid is suggested, and so on."""
    for name, value in (given or {}).items():
        if name == leave_out or value is None:
            continue
        flag = f"--{name.replace('_', '-')}"
        if value is True:
            command += f" {flag}"
            continue
        typed = json.dumps(value) if isinstance(value, dict) else str(value)  # a mapping's JSON
        command += f" {flag} {shlex.quote(typed)}"
    return command
