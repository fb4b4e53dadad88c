"""`make run-prod`: production mode on this machine, started and stopped as a person does."""

import os
import signal
import subprocess
import time

import httpx
import psycopg

from tests.conftest import BIN, PG_ADMIN_URL, REDIS_URL, TEST_DB, Process, free_port
from tests.helpers import import_csv

RUN_PROD_DB = f"{TEST_DB}_run_prod"


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_until_ready(url: str, process: Process) -> None:
    """Wait until /readyz answers 200 (the database made and migrated, the broker reached)."""
    while True:
        if process.popen.poll() is not None:
            raise RuntimeError(f"make run-prod exited:\n{process.output()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)


def cli(env: dict, *args: str, stdin: str = "") -> str:
    """Run `product-importer ARGS` on the run-prod database; return its standard output."""
    done = subprocess.run(
        [str(BIN / "product-importer"), *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_make_run_prod_serves_imports_and_stops_on_ctrl_c(test_env, tmp_path):
    drop_database(RUN_PROD_DB)  # ours alone, by its name: a run before may have left it
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + RUN_PROD_DB,
        "CELERY_BROKER_URL": REDIS_URL,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "UPLOAD_FOLDER": str(tmp_path / "uploads"),
    }
    run = Process(["make", "--no-print-directory", "run-prod"], env, tmp_path / "run-prod.log")
    try:
        wait_until_ready(url, run)  # its database did not exist: make run-prod created it
        cli(env, "users", "create", "ops@example.test", "--role", "admin", "--password-stdin",
            stdin="a long enough password here\n")  # fmt: skip
        token = cli(env, "tokens", "create", "ops@example.test", "--name", "test")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
            job = import_csv(http, "name,sku\nA,RP-1\nB,RP-2\n")
        assert job["status"] == "completed"
        assert job["created"] == 2

        os.killpg(run.popen.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        run.popen.wait()
        output = run.output()
    finally:
        run.kill()
        drop_database(RUN_PROD_DB)

    assert "SIGINT received" in output
    # honcho ends 130 after a Ctrl-C, and make said "make: *** [Makefile:28: run-prod] Error
    # 130" as the last line: a stop asked for, read as a failure. Only make's own line counts:
    # a process's shutdown may log an error's name (a ConnectionResetError) on a clean stop.
    assert "make: ***" not in output and "Error 130" not in output, output[-2000:]
    for name in ("web.1", "worker1.1", "worker2.1"):
        assert f"{name} stopped (rc=0)" in output
    assert "Shutting down: Master" in output  # gunicorn stopped its processes itself
    assert output.count("Warm shutdown") == 2  # each Celery worker finished its tasks first
