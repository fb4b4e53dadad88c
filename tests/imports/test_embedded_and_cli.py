"""The two other ways in: `product-importer serve` with nothing configured (SQLite and the
in-process worker), and `product-importer import FILE` from a terminal.

The API's behaviour in the embedded default is tested with everything else, in both modes
(`tests/modes.py`); here, that it starts and works with no setting at all.
"""

import os
import sqlite3
import subprocess

import pytest

from tests.conftest import BIN, ROOT, Process, free_port, http_client, wait_until_up
from tests.helpers import import_csv

from .conftest import errors_csv

# Every setting the app reads (.env.example): none may reach the embedded server.
SETTINGS = {
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "SECRET_KEY",
    "UPLOAD_FOLDER",
    "MAX_UPLOAD_BYTES",
    "UPLOAD_RETENTION_HOURS",
    "IMPORT_HEARTBEAT_TIMEOUT_SECONDS",
    "WEBHOOK_TIMEOUT_SECONDS",
    "WEBHOOK_ALLOW_PRIVATE",
    "WEBHOOK_RETRY_BASE_SECONDS",
    "LOG_LEVEL",
    "INSTANCE_PATH",
    "WEB_CONCURRENCY",
}


@pytest.fixture
def embedded_server(tmp_path, test_env):
    """`product-importer serve` with no setting but INSTANCE_PATH; yields (url, instance, log)."""
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS | set(test_env)}
    instance = tmp_path / "instance"
    env["INSTANCE_PATH"] = str(instance)
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


def run_import_command(path, *options: str) -> subprocess.CompletedProcess:
    """`product-importer import FILE` with the test session's settings (PostgreSQL, Redis)."""
    return subprocess.run(
        [str(BIN / "product-importer"), "import", *([str(path)] if path else []), *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_command_prints_the_outcome_and_exits_0(tmp_path, catalog):
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name,colour\nA-1,Apple,red\nB-2,Banana,yellow\na-1,Apple 2,green\n,x,\n")

    result = run_import_command(path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "completed_with_errors: 4 rows read, 2 created, 0 updated, 0 unchanged, 1 rejected"
        in result.stdout
    )
    assert "Warning: Unknown columns were ignored: colour." in result.stdout
    assert sorted(row[1:3] for row in catalog()) == [("B-2", "Banana"), ("a-1", "Apple 2")]
    assert path.exists()  # the command imports a copy; the user's file stays


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


def test_the_import_command_plans_then_applies(tmp_path, catalog):
    path = tmp_path / "items.csv"
    path.write_text("Item Code,Title\nA-1,Apple\nB-2,Banana\nC-3,\n")
    columns = '{"sku": "Item Code", "name": "Title"}'

    planned = run_import_command(path, "--plan", "--columns", columns, "--max-invalid", "1")

    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert (
        "planned: 3 rows read, 2 would be created, 0 would be updated, 0 unchanged, 1 rejected"
        in planned.stdout
    )
    assert catalog() == []
    job_id = planned.stdout.split("import --apply ")[1].split()[0]

    applied = run_import_command(None, "--apply", job_id)

    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "2 created, 0 updated" in applied.stdout
    assert sorted(row[1:3] for row in catalog()) == [("A-1", "Apple"), ("B-2", "Banana")]
    assert run_import_command(None, "--apply", job_id).returncode == 2


def test_the_import_command_stops_past_max_invalid(tmp_path, catalog):
    path = tmp_path / "bad.csv"
    path.write_text("sku,name\nA-1,\nB-2,\nC-3,Cherry\n")

    result = run_import_command(path, "--max-invalid", "50%")

    assert result.returncode == 1
    assert "2 of 3 rows read were invalid, more than the limit of 50%" in result.stderr
    assert catalog() == []
