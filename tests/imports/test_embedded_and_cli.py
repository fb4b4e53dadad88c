"""The two other ways in: `product-importer serve` with nothing configured (SQLite and the
in-process worker), and `product-importer import FILE` from a terminal."""

import os
import sqlite3
import subprocess

import httpx
import pytest

from tests.conftest import BIN, ROOT, Process, free_port, wait_until_up
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


class BareProcess(Process):
    """A command started with exactly `env`: nothing inherited from the test session."""

    def __init__(self, args: list[str], env: dict, log_path, cwd):
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115  (closed in kill())
        self.popen = subprocess.Popen(
            args,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )


@pytest.fixture
def embedded_server(tmp_path, test_env):
    """`product-importer serve` with no setting but INSTANCE_PATH; yields (url, instance, log)."""
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS | set(test_env)}
    instance = tmp_path / "instance"
    env["INSTANCE_PATH"] = str(instance)
    port = free_port()
    args = [str(BIN / "product-importer"), "serve", "--port", str(port)]
    server = BareProcess(args, env, tmp_path / "serve.log", cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server)
        yield url, instance, server
    finally:
        server.kill()


def test_serve_with_nothing_configured_imports_into_sqlite(embedded_server):
    url, instance, server = embedded_server
    assert "embedded (SQLite + in-process worker) mode" in server.output()
    with httpx.Client(base_url=url, timeout=30) as http:
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


def test_embedded_sku_identity_ignores_case_beyond_ascii_too(embedded_server):
    url, instance, _server = embedded_server
    with httpx.Client(base_url=url, timeout=30) as http:
        job = import_csv(http, "sku,name\nÄPFEL-1,Apfel\näpfel-1,Apfel 2\nÉTÉ-2,Été\n")

    assert (job["created"], job["updated"]) == (2, 0)  # as PostgreSQL counts it
    assert job["rows_superseded"] == 1  # ÄPFEL-1, repeated as äpfel-1
    with sqlite3.connect(instance / "product_importer.db") as database:
        rows = database.execute("SELECT sku, name FROM products ORDER BY id").fetchall()
    assert sorted(rows) == [("ÉTÉ-2", "Été"), ("äpfel-1", "Apfel 2")]


def run_import_command(path) -> subprocess.CompletedProcess:
    """`product-importer import FILE` with the test session's settings (PostgreSQL, Redis)."""
    return subprocess.run(
        [str(BIN / "product-importer"), "import", str(path)],
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
