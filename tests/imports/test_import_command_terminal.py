"""What `product-importer import FILE` leaves in a person's terminal: the bar as the import
goes, the summary, plain warnings, and the rejected rows in a file of theirs."""

import csv
import gzip
import re

from tests.conftest import paused
from tests.ops.test_logs import json_lines

from .conftest import ROW_LOCK
from .test_embedded_and_cli import Terminal, run_import_command


def test_the_terminal_shows_the_bar_and_the_summary_not_the_step_log(
    tmp_path, catalog, monkeypatch
):
    """Without LOG_LEVEL it printed "INFO import step reading: 0.03s" and more around the bar."""
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\nB-2,Banana\n")
    # empty counts as not set, and a .env's LOG_LEVEL does not replace it
    monkeypatch.setenv("LOG_LEVEL", "")

    terminal = Terminal(path, 80)
    terminal.process.wait(timeout=120)

    assert terminal.process.returncode == 0, terminal.text()
    assert "Finished" in terminal.last_bar(), terminal.text()
    assert re.search(r"│ Created\s+│ 2\s+│", terminal.text()), terminal.text()
    assert "INFO" not in terminal.text() and "import step" not in terminal.text(), terminal.text()


def test_the_bar_says_which_step_of_the_apply_runs(tmp_path, catalog, holding, live_worker):
    """It said "Applying" alone for the whole apply, where the page names the step."""
    seed = tmp_path / "seed.csv"
    seed.write_text("sku,name\nA-1,Apple\nB-2,Banana\nC-3,Cherry\n")
    assert run_import_command(seed).returncode == 0
    path = tmp_path / "renamed.csv"
    path.write_text("sku,name\nA-1,Green apple\n")

    # the product it renames is held by an edit in progress: the apply waits in its update
    with paused(live_worker), holding(ROW_LOCK.format(key="a-1")) as edit:
        terminal = Terminal(path, 80)
        edit.wait_until_blocking()
        bar = terminal.wait_for(lambda bar: "updating" in bar)
    terminal.process.wait(timeout=120)

    assert re.match(r"Applying\s+[━╸╺]+\s+\d+% updating · ", bar), bar
    assert terminal.process.returncode == 0, terminal.text()


def test_a_warning_is_shown_in_its_colour_alone(tmp_path, catalog):
    """rich coloured its numbers: "import #12 of 2026-12-05" in three colours."""
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    assert run_import_command(path).returncode == 0

    terminal = Terminal(path, 80)  # the same file again: a warning names the first import
    terminal.process.wait(timeout=120)

    raw = terminal.output.decode()
    warning = re.search(r"Warning: [^\r\n]*", raw)
    assert warning and "identical to import #" in warning[0], raw
    assert "\x1b" not in warning[0].removesuffix("\x1b[0m"), repr(warning[0])


def test_the_rejected_rows_are_written_beside_the_file(tmp_path, catalog):
    """The summary named /api/imports/<id>/rejected.csv, of no use in a terminal."""
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n,Nameless\nB-2,\n")

    result = run_import_command(path)

    assert result.returncode == 0, result.stdout + result.stderr
    rejected = tmp_path / "fruit-rejected.csv"
    assert re.search(rf"│ Rejected rows\s+│ {re.escape(str(rejected))} \(fix them", result.stdout)
    with open(rejected, newline="") as written:
        rows = list(csv.reader(written))
    assert rows == [
        ["line", "reason", "sku", "name"],
        ["3", "sku is empty", "", "Nameless"],
        ["4", "name is empty", "B-2", ""],
    ]


def test_the_rejected_rows_go_where_rejected_says(tmp_path, catalog):
    path = tmp_path / "fruit.csv.gz"
    path.write_bytes(gzip.compress(b"sku,name\nA-1,Apple\n,Nameless\n"))
    elsewhere = tmp_path / "out" / "fix-these.csv"
    elsewhere.parent.mkdir()

    result = run_import_command(path, "--rejected", str(elsewhere))

    assert result.returncode == 0, result.stdout + result.stderr
    assert elsewhere.read_text().splitlines()[1:] == ["3,sku is empty,,Nameless"]
    assert not (tmp_path / "fruit-rejected.csv").exists()
    assert str(elsewhere) in result.stdout


def test_rejected_that_names_the_file_itself_is_refused_before_the_import(tmp_path, catalog):
    # The input was replaced by its own rejected rows (the import read a copy, the file lost).
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n,Nameless\n")

    result = run_import_command(path, "--rejected", str(path))

    assert result.returncode == 2, result.stdout + result.stderr
    assert "is FILE itself" in result.stderr
    assert path.read_text() == "sku,name\nA-1,Apple\n,Nameless\n"
    assert catalog() == []


def test_an_import_that_rejects_nothing_leaves_no_rejected_file_of_an_earlier_one(
    tmp_path, catalog
):
    # The earlier import's prices-rejected.csv stayed beside the file, taken for this one's.
    path = tmp_path / "prices.csv"
    path.write_text("sku,name\nA-1,Apple\n,Nameless\n")
    assert run_import_command(path).returncode == 0
    assert (tmp_path / "prices-rejected.csv").exists()
    path.write_text("sku,name\nA-1,Apple\nB-2,Banana\n")

    result = run_import_command(path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "prices-rejected.csv").exists()


# A step's line as the server writes it: the date, the level, the logger, the job's id.
STEP_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO product_importer[\w.]*: "
    r"import step [a-z ]+: [\d.]+s.* job_id=\d+"
)


def test_text_logs_kept_in_a_file_are_one_whole_line_each_with_the_date(
    tmp_path, catalog, live_worker
):
    """`LOG_LEVEL=INFO ... 2> import.log`: rich wrapped each line at 80 columns ("writing to
    the" / "staging table 0.00s)"), with the time of day alone."""
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\nB-2,Banana\n")

    with paused(live_worker):  # the command runs its import itself, logging its steps
        piped = run_import_command(path, env={"LOG_LEVEL": "INFO", "COLUMNS": "80"})

    assert piped.returncode == 0, piped.stdout + piped.stderr
    steps = [line for line in piped.stderr.splitlines() if "import step" in line]
    assert any("import step reading" in line for line in steps), piped.stderr
    assert all(STEP_LINE.fullmatch(line) for line in steps), steps


def test_json_logs_stay_one_object_a_line_beside_the_bar(
    tmp_path, catalog, monkeypatch, live_worker
):
    """LOG_FORMAT=json: rich's log columns ("12:00:00 INFO import step ...") took the place of
    the JSON lines, in a terminal and in a file alike."""
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\nB-2,Banana\n")
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("LOG_LEVEL", "INFO")  # the step log: lines while the bar shows

    # the command runs its import itself: the worker, taking it first, logged its steps (CI)
    with paused(live_worker):
        terminal = Terminal(path, 80)  # narrower than the lines: rich wrapped them at 80
        terminal.process.wait(timeout=120)
        piped = run_import_command(path, env={"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"})

    assert terminal.process.returncode == 0, terminal.text()
    assert "Finished" in terminal.last_bar(), terminal.text()
    raw = re.split(r"[\r\n]", terminal.output.decode())
    shown = [piece[piece.index('{"') :] for piece in raw if '{"' in piece]
    assert all("\x1b" not in line for line in shown), shown  # not coloured, nor the bar's
    assert any("import step" in record["message"] for record in json_lines("\n".join(shown)))
    assert piped.returncode == 0, piped.stdout + piped.stderr
    logged = [line for line in piped.stderr.splitlines() if not line.startswith("Finished")]
    assert any("import step" in record["message"] for record in json_lines("\n".join(logged)))
    assert "{" not in piped.stdout  # the summary alone
