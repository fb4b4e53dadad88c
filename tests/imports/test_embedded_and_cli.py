"""The two other ways in: `product-importer serve` with nothing configured (SQLite and the
in-process worker), and `product-importer import FILE` from a terminal.

The API's behaviour in the embedded default is tested with everything else, in both modes
(`tests/modes.py`); here, that it starts and works with no setting at all.
"""

import io
import os
import pty
import re
import signal
import sqlite3
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest

from tests.conftest import (
    BIN,
    ROOT,
    Process,
    client_with_token,
    free_port,
    http_client,
    paused,
    wait_until_up,
)
from tests.helpers import import_csv, wait_until
from tests.test_config import documented_settings
from tests.webhooks.conftest import create_endpoint
from tests.webhooks.receiver import Receiver

from .conftest import errors_csv

# Every setting the app reads (.env.example): none may reach the embedded server.
SETTINGS = documented_settings()


@pytest.fixture
def embedded_server(tmp_path, test_env):
    """The embedded server with nothing configured (`serve_embedded`)."""
    with serve_embedded(tmp_path, test_env) as served:
        yield served


@contextmanager
def serve_embedded(tmp_path, test_env, **settings: str):
    """`product-importer serve` with no setting but INSTANCE_PATH and `settings`; yields (url,
    instance, server, an admin's token)."""
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS | set(test_env)}
    instance = tmp_path / "instance"
    env |= {"INSTANCE_PATH": str(instance), **settings}
    port = free_port()
    args = [str(BIN / "product-importer"), "serve", "--port", str(port)]
    server = Process(args, env, tmp_path / "serve.log", cwd=tmp_path, inherit=False)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server)
        assert (
            f"Create the first admin here: http://127.0.0.1:{port}/setup?token=" in server.output()
        )
        yield url, instance, server, provision_admin(env, tmp_path)
    finally:
        server.kill()


def provision_admin(env: dict, cwd) -> str:
    """Make an admin and a token with the command line, as an operator would; return the token."""

    def run(*args: str, stdin: str = "") -> str:
        done = subprocess.run(
            [str(BIN / "product-importer"), *args],
            env=env,
            cwd=cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run(
        "users",
        "create",
        "ops@example.test",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long operator password\n",
    )
    token = run("tokens", "create", "ops@example.test", "--name", "smoke test")
    assert token.startswith("pit_") and token.count("\n") == 1  # the token alone on stdout
    return token.strip()


def test_serve_with_nothing_configured_imports_into_sqlite(embedded_server):
    url, instance, server, token = embedded_server
    assert "embedded (SQLite + in-process worker) mode" in server.output()
    with http_client(url, token) as http:
        first = import_csv(
            http, "sku,name,description,active\nA-1,Apple,Red,no\nb-2,Banana,,\nB-2,Banana 2,Y,\n"
        )
        second = import_csv(http, "sku,name\nA-1,Apple\nB-2,Banana 3\nc-3,Cherry\n,Nameless\n")
        report = errors_csv(http, second["id"])

    assert first["status"] == "completed"
    assert (first["rows_processed"], first["created"], first["updated"]) == (3, 2, 0)
    assert second["status"] == "completed_with_errors"
    assert (second["created"], second["updated"], second["unchanged"]) == (1, 1, 1)
    assert second["rows_invalid"] == 1 and second["percent"] == 100
    assert report[1:] == [["5", "", "sku is empty"]]
    with sqlite3.connect(instance / "product_importer.db") as database:
        rows = database.execute(
            "SELECT sku, name, description, active FROM products ORDER BY sku"
        ).fetchall()
    assert rows == [
        ("A-1", "Apple", "Red", 0),  # no active column: kept
        ("B-2", "Banana 3", "Y", 1),
        ("c-3", "Cherry", "", 1),
    ]
    assert (instance / "secret_key").exists()


def test_settings_come_from_the_env_file_of_the_folder_it_runs_in(tmp_path, test_env):
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS | set(test_env)}
    instance = tmp_path / "from-dotenv"
    (tmp_path / ".env").write_text(f"INSTANCE_PATH={instance}\n")

    done = subprocess.run(
        [str(BIN / "product-importer"), "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert (instance / "product_importer.db").exists()
    assert "Running upgrade 0020 -> 0021" in done.stderr  # what it did, without the preamble
    for preamble in ("Context impl", "Will assume", "setup plugin"):
        assert preamble not in done.stderr


def test_a_worker_without_a_broker_says_what_it_needs_and_exits(tmp_path, test_env):
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS | set(test_env)}
    env |= {"INSTANCE_PATH": str(tmp_path / "instance")}

    done = subprocess.run(
        [str(BIN / "product-importer"), "worker"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,  # it used to start on an in-memory broker no web process can reach
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Error: A worker needs CELERY_BROKER_URL" in done.stderr
    assert "`product-importer serve` runs the worker itself" in done.stderr


def run_import_command(
    path, *options: str, env: dict | None = None, cwd=ROOT
) -> subprocess.CompletedProcess:
    """`product-importer import FILE` with the test session's settings (PostgreSQL, Redis),
    and `env` besides; on a line wide enough for the summary's paths. A plan applied writes
    its rejected rows into `cwd`."""
    return subprocess.run(
        [str(BIN / "product-importer"), "import", *([str(path)] if path else []), *options],
        cwd=cwd,
        env=os.environ | {"COLUMNS": "300"} | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_command_prints_the_outcome_and_exits_0(tmp_path, catalog, client):
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name,colour\nA-1,Apple,red\nB-2,Banana,yellow\na-1,Apple 2,green\n,x,\n")

    result = run_import_command(path)

    assert result.returncode == 0, result.stdout + result.stderr
    summary = dict(
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in result.stdout.splitlines()
        if line.count("│") == 3
    )
    assert summary["Outcome"] == "Completed with errors"
    assert (summary["Rows read"], summary["Created"], summary["Updated"]) == ("4", "2", "0")
    assert (summary["Unchanged"], summary["Rejected"]) == ("0", "1")
    assert summary["Repeated SKUs"] == "1 row repeated an earlier SKU; the last one was kept."
    assert re.fullmatch(r"\d+ ms|\d\.\d s", summary["Duration"])
    assert summary["Rejected rows"].startswith(str(tmp_path / "fruit-rejected.csv"))
    assert "Warning: Unknown columns were ignored: colour." in result.stdout
    assert sorted(row[1:3] for row in catalog()) == [("B-2", "Banana"), ("a-1", "Apple 2")]
    assert path.exists()  # the command imports a copy; the user's file stays
    entries = client.get("/api/audit", query_string={"action": "import.created"}).get_json()
    (entry,) = entries["items"]  # an import action of the command line: by no account
    assert (entry["actor"], entry["details"]["via"], entry["details"]["file"]) == (
        None,
        "cli",
        "fruit.csv",
    )


def test_a_file_whose_name_and_columns_hold_brackets_is_summed_up_as_they_are(tmp_path, catalog):
    # rich read "[/note]" as its markup: the summary ended in a MarkupError, after the import;
    # and the title said "prices.csv", "[red]" taken for a colour.
    path = tmp_path / "[red]prices.csv"
    path.write_text("sku,name,[/note]\nA-1,Apple,x\n")

    result = run_import_command(path)

    assert result.returncode == 0, result.stdout + result.stderr
    words = " ".join(result.stdout.split())  # the title wraps at the table's width
    assert re.search(r"Import #\d+: \[red\]prices\.csv", words), result.stdout
    assert "Warning: Unknown columns were ignored: [/note]." in result.stdout


def test_the_import_command_sends_its_webhook_before_it_returns(tmp_path, client, live_worker):
    receiver = Receiver()
    create_endpoint(client, receiver.url, events=("import.completed",))
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n")

    with paused(live_worker):  # no worker takes the job or its webhook: only the command can
        result = run_import_command(path)
        received = list(receiver.requests)  # no waiting: it must be there already

    assert result.returncode == 0, result.stdout + result.stderr
    assert [request.json()["type"] for request in received] == ["import.completed"]
    assert re.search(r"│ Webhooks\s+│ 1 webhook: delivered \(HTTP 200\)", result.stdout)
    receiver.close()


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """`product-importer import FILE` in a pseudo-terminal, as a person runs it; output kept."""

    def __init__(self, path, columns: int = 160, *options: str, unset: tuple[str, ...] = ()):
        leader, follower = pty.openpty()
        env = os.environ | {"COLUMNS": str(columns), "LINES": "40", "TERM": "xterm-256color"}
        env = {name: value for name, value in env.items() if name not in unset}
        self.process = subprocess.Popen(
            [str(BIN / "product-importer"), "import", str(path), *options],
            cwd=ROOT,
            env=env,
            stdin=follower,
            stdout=follower,
            stderr=follower,
        )
        os.close(follower)
        self.leader, self.output = leader, b""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.leader, 65536)
            except OSError:  # the command exited and closed the terminal
                return
            if not data:
                return
            self.output += data

    def text(self) -> str:
        return ANSI.sub("", self.output.decode(errors="replace"))

    def last_bar(self) -> str:
        """The bar as last drawn: the last piece of output that holds one."""
        pieces = re.split(r"[\r\n]", self.text())
        return next((piece for piece in reversed(pieces) if "━" in piece), "")

    def wait_for(self, seen, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while not seen(self.last_bar()):
            assert self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.05)
        return self.last_bar()


def test_the_import_command_shows_the_pages_figures_with_logs_above_the_bar(
    tmp_path, live_worker, held_file, holding_rejections
):
    path = tmp_path / "held.csv"
    path.write_bytes(held_file.data)

    with paused(live_worker), holding_rejections() as reading:  # stops half-way through reading
        terminal = Terminal(path)
        reading.wait_until_blocking()
        bar = terminal.wait_for(lambda bar: re.search(r"[1-9][\d,]* rows read", bar))
    terminal.process.wait(timeout=120)

    assert re.search(r"Reading\s+━*.*\s(\d+)%\s+[\d,]+ rows/s · elapsed [\d.]+ m?s", bar), bar
    assert "time left not known yet" in bar or re.search(r"about [\d.]+ m?s left", bar), bar
    assert re.search(r"· [\d,]+ rows read · [\d,]+ rejected", bar), bar
    assert terminal.process.returncode == 0, terminal.text()
    pieces = re.split(r"[\r\n]", terminal.text())
    logs = [piece for piece in pieces if "import step" in piece]
    assert logs and not [piece for piece in logs if "━" in piece]  # a log line never on the bar
    assert "Finished" in terminal.last_bar() and "100%" in terminal.last_bar()
    assert re.search(rf"│ Rejected\s+│ {held_file.rejected:,}\s+│", terminal.text())


def test_in_a_terminal_of_80_columns_the_bar_keeps_its_phase_and_percent(
    tmp_path, live_worker, held_file, holding_rejections
):
    """The figures are cut to fit the line, not the phase ("Rea…") or the bar and percent."""
    path = tmp_path / "held.csv"
    path.write_bytes(held_file.data)

    with paused(live_worker), holding_rejections() as reading:  # stops half-way through reading
        terminal = Terminal(path, columns=80)
        reading.wait_until_blocking()
        bar = terminal.wait_for(lambda bar: "rows/s" in bar and "Queued" not in bar)
    terminal.process.wait(timeout=120)

    assert re.search(r"Reading\s+[━╸╺]+\s+\d+% .*rows/s · elapsed", bar), bar
    assert len(bar) <= 80, bar
    assert terminal.process.returncode == 0, terminal.text()


def test_in_a_terminal_of_60_columns_the_figures_that_do_not_fit_are_left_out_whole(
    tmp_path, live_worker, held_file, holding_rejections
):
    """They were cut in the middle of a word: "290,326 rows/s · elapse…"."""
    path = tmp_path / "held.csv"
    path.write_bytes(held_file.data)

    with paused(live_worker), holding_rejections() as reading:  # stops half-way through reading
        terminal = Terminal(path, columns=60)
        reading.wait_until_blocking()
        bar = terminal.wait_for(lambda bar: "rows/s" in bar and "Queued" not in bar)
    terminal.process.wait(timeout=120)

    assert re.fullmatch(
        r"Reading\s+[━╸╺]+\s+\d+% (–|[\d,]+) rows/s( · elapsed [\d.]+ m?s)? …\s*", bar
    ), bar
    assert len(bar) <= 60, bar
    assert terminal.process.returncode == 0, terminal.text()


def test_ctrl_c_cancels_the_import_and_says_so_rather_than_leaving_it_running(
    tmp_path, catalog, client, live_worker, held_file, holding_rejections
):
    """It used to print "Aborted!" alone, the job left running for a worker to finish later."""
    path = tmp_path / "held.csv"
    path.write_bytes(held_file.data)

    with paused(live_worker), holding_rejections() as reading:  # stops half-way through reading
        terminal = Terminal(path)
        reading.wait_until_blocking()
        terminal.wait_for(lambda bar: re.search(r"[1-9][\d,]* rows read", bar))
        terminal.process.send_signal(signal.SIGINT)
        wait_until(lambda: "(Ctrl-C): nothing" in terminal.text(), "told it cancels")
    terminal.process.wait(timeout=120)

    assert terminal.process.returncode == 130, terminal.text()
    assert re.search(r"Cancelling import #\d+ \(Ctrl-C\)", terminal.text())
    assert re.search(r"│ Outcome\s+│ Cancelled\s+│", terminal.text()), terminal.text()
    assert "Aborted!" not in terminal.text()
    (job,) = client.get("/api/imports").get_json()["items"]
    assert job["status"] == "cancelled"
    assert catalog() == []


def test_the_bar_of_a_failed_import_says_failed_not_finished(tmp_path, catalog, live_worker):
    path = tmp_path / "bad.csv"
    path.write_text("name,description\nApple,Red\n")

    with paused(live_worker):
        terminal = Terminal(path)
        terminal.process.wait(timeout=120)

    phases = re.findall(r"(\w+) +━", terminal.text())  # each drawing of the bar, in order
    assert terminal.process.returncode == 1, terminal.text()
    assert phases[-1] == "Failed", terminal.text()
    assert "Finished" not in phases


def test_the_bar_of_a_one_row_file_says_one_row(tmp_path, catalog):
    path = tmp_path / "one.csv"
    path.write_text("sku,name\nONE-1,Alone\n")

    terminal = Terminal(path)
    terminal.process.wait(timeout=120)

    assert terminal.process.returncode == 0, terminal.text()
    assert "1 row read" in terminal.text(), terminal.text()
    assert "1 rows read" not in terminal.text()


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        ("name,description\nApple,Red\n", 1, "Error: Missing required column: sku."),
        ("  \n\n", 2, "Error: The file is empty."),
    ],
)
def test_the_import_command_fails_with_the_reason_and_a_non_zero_exit(
    tmp_path, catalog, content, code, message
):
    path = tmp_path / "bad.csv"
    path.write_text(content)

    result = run_import_command(path)

    assert result.returncode == code, result.stdout + result.stderr
    assert message in result.stderr
    assert catalog() == []


@pytest.mark.parametrize(
    ("content", "options", "next_step"),
    [
        (
            "Item Code,Title\nA-1,Apple\n",
            (),
            "To import it, name the columns of its header that hold each field: "
            "product-importer import {path} --columns "
            '\'{{"sku": "<column>", "name": "<column>"}}\'',
        ),
        (
            "sku,name\nA-1,Apple\n,Nameless\n,Nameless too\n",
            ("--max-invalid", "1"),
            "To import its valid rows anyway: product-importer import {path} --max-invalid 100%",
        ),
        (  # the mapping given is kept: without it, that command failed on the columns
            "Item Code,Title\nA-1,Apple\n,Nameless\n,Nameless too\n",
            ("--columns", '{"sku": "Item Code", "name": "Title"}', "--max-invalid", "1"),
            "To import its valid rows anyway: product-importer import {path} "
            '--columns \'{{"sku": "Item Code", "name": "Title"}}\' --max-invalid 100%',
        ),
    ],
)
def test_a_failure_an_option_mends_is_followed_by_the_command_that_mends_it(
    tmp_path, catalog, content, options, next_step
):
    # The error said what the pages offer ("map the file's columns to them and retry", "retry
    # with a higher max_invalid"), not how from a terminal.
    path = tmp_path / "items.csv"
    path.write_text(content)

    failed = run_import_command(path, *options)

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert next_step.format(path=path) in failed.stderr
    assert catalog() == []


def test_the_import_command_plans_then_applies(tmp_path, catalog, client):
    path = tmp_path / "items.csv"
    path.write_text("Item Code,Title\nA-1,Apple\nB-2,Banana\nC-3,\n")
    columns = '{"sku": "Item Code", "name": "Title"}'

    planned = run_import_command(path, "--plan", "--columns", columns, "--max-invalid", "1")

    assert planned.returncode == 0, planned.stdout + planned.stderr
    said = planned.stdout
    for field, value in [("Outcome", "Planned"), ("Rows read", "3"), ("Would be created", "2")]:
        assert re.search(rf"{field}\s*│\s*{value}\s*│", said), said
    for field, value in [("Would be updated", "0"), ("Unchanged", "0"), ("Rejected", "1")]:
        assert re.search(rf"{field}\s*│\s*{value}\s*│", said), said
    assert catalog() == []
    job_id = planned.stdout.split("import --apply ")[1].split()[0]
    (created,) = client.get("/api/audit", query_string={"action": "import.created"}).json["items"]
    assert created["details"] | {"bytes": None} == {  # the options, as the API records them
        "file": "items.csv",
        "bytes": None,
        "via": "cli",
        "plan": True,
        "max_invalid": "1",
        "columns": {"sku": "Item Code", "name": "Title"},
    }

    applied = run_import_command(None, "--apply", job_id, cwd=tmp_path)

    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert re.search(r"Created\s*│\s*2\s*│", applied.stdout), applied.stdout
    assert re.search(r"Updated\s*│\s*0\s*│", applied.stdout), applied.stdout
    assert sorted(row[1:3] for row in catalog()) == [("A-1", "Apple"), ("B-2", "Banana")]
    assert run_import_command(None, "--apply", job_id, cwd=tmp_path).returncode == 2


@pytest.mark.parametrize(
    "options, named",
    [
        (["--max-invalid", "5"], "--max-invalid"),
        (["--columns", '{"sku": "Item Code"}'], "--columns"),
        (["--plan"], "--plan"),
        (["--max-invalid", "5", "--plan"], "--plan, --max-invalid"),
    ],
)
def test_applying_a_plan_refuses_the_options_it_would_ignore(tmp_path, catalog, options, named):
    """A plan is applied with the options it was made with: others are refused, not ignored."""
    path = tmp_path / "items.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    planned = run_import_command(path, "--plan")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    job_id = planned.stdout.split("import --apply ")[1].split()[0]

    refused = run_import_command(None, "--apply", job_id, *options)

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"--apply ID takes no other options (given: {named})" in refused.stderr
    assert catalog() == []  # the plan is still there to apply
    assert run_import_command(None, "--apply", job_id, cwd=tmp_path).returncode == 0


def test_a_plan_applied_from_the_command_line_is_the_command_lines_not_the_uploaders(
    app, client, accounts, live_worker, tmp_path
):
    """The command line acts as no account (as `import FILE` does): a plan it applies names no
    one in its webhook, says where it was applied, and counts against nobody's queue."""
    receiver = Receiver()
    create_endpoint(client, receiver.url, events=("import.completed",))
    editor = client_with_token(app, accounts["editor"].token)
    plan = editor.post(
        "/api/imports", data={"file": (io.BytesIO(b"sku,name\nA,B\n"), "a.csv"), "plan": "true"}
    )
    job_id = plan.get_json()["id"]
    wait_until(
        lambda: editor.get(f"/api/imports/{job_id}").get_json()["status"] == "planned", "planned"
    )

    with paused(live_worker):  # only the command runs the import and sends its webhook
        applied = run_import_command(None, "--apply", str(job_id), cwd=tmp_path)
        received = [request.json() for request in receiver.requests]
    receiver.close()

    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert [(event["type"], event["actor"]) for event in received] == [("import.completed", None)]
    job = editor.get(f"/api/imports/{job_id}").get_json()
    assert (job["created_by"], job["applied_by"]) == (accounts["editor"].email, None)
    assert job["applied_at"] is not None
    page = editor.get(f"/imports/{job_id}", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "applied from the command line" in re.sub(r"<[^>]+>", "", page)
    entries = client.get("/api/audit", query_string={"action": "import.applied"}).get_json()
    assert [(e["target"], e["actor"], e["details"]) for e in entries["items"]] == [
        (f"import #{job_id}", None, {"via": "cli"})
    ]


def test_a_token_without_a_url_is_refused_not_ignored(tmp_path, catalog, accounts):
    """A token is for a remote server: given without --url, the file went into this
    machine's database, and the person believed it was on the server."""
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n")

    refused = run_import_command(path, "--token", accounts["editor"].token)

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Error: --token is for a remote server: add --url https://..." in refused.stderr
    assert "or leave --token out to import into this machine's database." in refused.stderr
    assert catalog() == []  # nothing was imported here


def import_from_a_pipe(
    content: str, *options: str, path: str = "/dev/stdin"
) -> subprocess.CompletedProcess:
    """`product-importer import /dev/stdin` with `content` piped in (`<(zcat file.gz)` alike)."""
    return subprocess.run(
        [str(BIN / "product-importer"), "import", path, *options],
        cwd=ROOT,
        input=content,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_file_given_as_a_pipe_imports(catalog):
    # copyfile refused it: "shutil.SpecialFileError: `/dev/stdin` is a named pipe", a traceback.
    done = import_from_a_pipe("sku,name\nP-1,Piped\n")

    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"│ Created\s+│ 1\s+│", done.stdout), done.stdout
    assert [row[1:3] for row in catalog()] == [("P-1", "Piped")]


def test_an_import_from_a_pipe_is_listed_as_piped_input_not_by_its_descriptor(catalog, http):
    # `<(zcat file.gz)` is /dev/fd/63: the import was listed as "63".
    done = import_from_a_pipe("sku,name\nP-1,Piped\n", path="/dev/fd/0")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "piped input (/dev/fd/0)" in " ".join(done.stdout.split()), done.stdout
    listed = http.get("/api/imports").json()["items"]
    assert [job["filename"] for job in listed] == ["piped input (/dev/fd/0)"]


def test_a_pipe_to_send_to_a_server_is_refused_with_what_to_do(catalog):
    # tuspy raised "ValueError: invalid file /dev/stdin", a traceback: a pipe has no size to send.
    done = import_from_a_pipe(
        "sku,name\nP-1,Piped\n", "--url", "http://127.0.0.1:9", "--token", "t"
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert (
        "/dev/stdin is not a regular file (a pipe?): --url sends a file whose size is known."
        in (done.stderr)
    )
    assert catalog() == []


def test_a_url_without_http_is_refused_with_the_form_it_takes(tmp_path, catalog):
    # It said requests' "No connection adapters were found for '127.0.0.1:8000/api/uploads'".
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n")

    refused = run_import_command(path, "--url", "127.0.0.1:8000", "--token", "pit_unused")

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--url '127.0.0.1:8000' is not a server's address: give it with http://" in (
        refused.stderr
    )
    assert "No connection adapters" not in refused.stderr
    assert catalog() == []


def test_a_url_of_a_page_is_said_to_be_the_servers_address_alone(
    tmp_path, catalog, live_server, accounts
):
    # It said the app's 404: "The requested URL was not found on the server. If you entered
    # the URL manually please check your spelling and try again."
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    page = f"{live_server}/imports"

    refused = run_import_command(path, "--url", page, "--token", accounts["editor"].token)

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"nothing at {page}/api/uploads answered it (404)" in refused.stderr
    assert "Give --url as the server's address alone, without a page's path" in refused.stderr
    assert catalog() == []


def test_ctrl_c_during_a_remote_import_cancels_it_on_the_server(
    tmp_path, catalog, client, live_server, accounts, held_file, holding_rejections
):
    # It printed "Aborted!" alone, and the server's import went on to change the catalog.
    path = tmp_path / "held.csv"
    path.write_bytes(held_file.data)
    token = accounts["editor"].token
    args = [str(BIN / "product-importer"), "import", str(path), "--url", live_server]

    with holding_rejections() as reading:  # the server's import stops half-way through reading
        command = Process([*args, "--token", token], {}, tmp_path / "import.log")
        reading.wait_until_blocking()
        command.popen.send_signal(signal.SIGINT)
        command.wait_for_output("(Ctrl-C)")
    command.popen.wait(timeout=120)
    command.kill()

    assert command.popen.returncode == 130, command.output()
    assert re.search(r"Cancelling import \d+ on the server \(Ctrl-C\)", command.output())
    assert re.search(r"│ Outcome\s+│ Cancelled\s+│", command.output()), command.output()
    assert "Aborted!" not in command.output()
    (job,) = client.get("/api/imports").get_json()["items"]
    assert job["status"] == "cancelled"
    assert catalog() == []


def test_a_token_given_to_apply_a_plan_is_refused(tmp_path, catalog, accounts):
    path = tmp_path / "items.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    planned = run_import_command(path, "--plan")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    job_id = planned.stdout.split("import --apply ")[1].split()[0]

    refused = run_import_command(None, "--apply", job_id, "--token", accounts["editor"].token)

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--apply ID applies a plan of this machine's database: leave --token out" in (
        refused.stderr
    )
    assert catalog() == []


def test_a_token_from_the_environment_without_a_url_imports_here_and_says_so(
    tmp_path, catalog, accounts
):
    """A token left in the environment is no request for a remote call: the import runs
    here, as before, but the person is told, not left to believe it went to a server."""
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n")

    result = run_import_command(path, env={"PRODUCT_IMPORTER_TOKEN": accounts["editor"].token})

    assert result.returncode == 0, result.stdout + result.stderr
    assert "PRODUCT_IMPORTER_TOKEN is set, but without --url the file is imported into this" in (
        result.stderr
    )
    assert [row[1:3] for row in catalog()] == [("A-1", "Apple")]


@pytest.mark.parametrize(
    "remote", [(), ("--url", "http://127.0.0.1:9", "--token", "pit_unused")], ids=["here", "url"]
)
def test_the_import_command_says_which_option_is_wrong(tmp_path, catalog, remote):
    # By its flag: it said `max_invalid`, the API's name; with --url, the server said it after
    # the upload was made, or the command said it could not reach a server that was down.
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n")

    result = run_import_command(path, "--max-invalid", "lots", *remote)

    assert result.returncode == 2
    assert "Error: Some import options are not valid. --max-invalid: A count of rows" in (
        result.stderr
    )
    assert "{'" not in result.stderr


def test_the_import_command_stops_past_max_invalid(tmp_path, catalog):
    path = tmp_path / "bad.csv"
    path.write_text("sku,name\nA-1,\nB-2,\nC-3,Cherry\n")

    result = run_import_command(path, "--max-invalid", "50%")

    assert result.returncode == 1
    assert "2 of 3 rows read were invalid, more than the limit of 50%" in result.stderr
    assert catalog() == []
