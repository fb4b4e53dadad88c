"""Faults with real processes: a PostgreSQL cluster and a Redis server of the test's own.

The machine's shared PostgreSQL (5432) and Redis (6379) are never stopped: each test that
stops a server starts a throwaway one (initdb in a temporary folder, on a free port) and runs
its own web server and worker against it.
"""

import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine

from tests.conftest import (
    BIN,
    TLS,
    Process,
    free_port,
    hold_next_rejected_row,
    restore_accounts,
    wait_until_up,
)

PG_BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
DATABASE = "product_importer"

pytestmark = pytest.mark.slow


def _as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its commands as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Cluster:
    """A PostgreSQL cluster in a temporary folder, on a free port, that a test may stop."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="pi-fault-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.data, self.port = self.root / "data", free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "--encoding=UTF8", "--no-sync")  # fmt: skip

    def _run(self, *args: str) -> None:
        subprocess.run(_as_postgres(list(args)), check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                  "-o", options, "-w", "start")  # fmt: skip

    def stop(self) -> None:
        """Stop it as an operator restarting it does: sessions are ended, transactions undone."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self) -> None:
        with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def remove(self) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A redis-server on a free port, without persistence, that a test may stop."""

    def __init__(self, logs: Path):
        self.port, self.logs = free_port(), logs
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Process | None = None

    def start(self) -> None:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no"]  # fmt: skip
        self.process = Process(args, {}, self.logs / f"redis-{time.monotonic_ns()}.log")
        self.process.wait_for_output("Ready to accept connections")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()


@pytest.fixture
def cluster():
    """A throwaway PostgreSQL cluster with the app's database, running."""
    server = Cluster()
    server.start()
    server.create_database()
    yield server
    server.remove()


@pytest.fixture
def redis_server(tmp_path):
    """A throwaway Redis server, running."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class Deployment:
    """The app on the throwaway servers: a web server, a worker, the standard accounts."""

    def __init__(self, env: dict, folder: Path):
        self.env, self.folder = env, folder
        self.processes: list[Process] = []
        self.url = ""

    def serve(self) -> str:
        port = free_port()
        server = self._start([str(BIN / "product-importer"), "serve", "--port", str(port)], "web")
        self.url = f"http://127.0.0.1:{port}"
        wait_until_up(self.url, server)
        return self.url

    def worker(self) -> Process:
        number = len(self.processes)
        args = [str(BIN / "product-importer"), "worker", "--concurrency", "4",
                "--hostname", f"fault{number}@%h"]  # fmt: skip
        worker = self._start(args, f"worker-{number}")
        worker.wait_for_output(" ready.")
        return worker

    def _start(self, args: list[str], name: str) -> Process:
        process = Process(args, self.env, self.folder / f"{name}.log")
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.kill()


@pytest.fixture
def deploy(tmp_path, account_rows):
    """Return a function that runs the app on a database and a broker URL (web, worker)."""
    started: list[Deployment] = []

    def start(database_url: str, broker_url: str) -> Deployment:
        env = {
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
        }
        deployment = Deployment(env, tmp_path)
        started.append(deployment)
        deployment.serve()  # migrates the database
        engine = create_engine(_sqlalchemy_url(database_url))
        with engine.begin() as conn:
            restore_accounts(conn, account_rows)
        engine.dispose()
        deployment.worker()
        return deployment

    yield start
    for deployment in started:
        deployment.stop()


@contextmanager
def held_rejections(database_url: str):
    """Stop the next write of rejected rows (as `holding_rejections`) on another database.

    Yields the holding session's process id.
    """
    engine = create_engine(_sqlalchemy_url(database_url))
    try:
        with engine.connect() as conn:
            hold_next_rejected_row(conn)
            yield conn.connection.driver_connection.info.backend_pid
            with suppress(Exception):  # a restart may have ended the session already
                conn.rollback()
    finally:
        engine.dispose()


@contextmanager
def held_catalog(database_url: str):
    """Hold a lock on the catalog, as a product edit in progress does: imports wait to merge.

    Yields the holding session's process id.
    """
    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE products IN ROW EXCLUSIVE MODE")
        yield conn.info.backend_pid
        with suppress(psycopg.Error):  # a restart may have ended the session already
            conn.rollback()


def _sqlalchemy_url(database_url: str) -> str:
    return database_url.replace("postgresql://", "postgresql+psycopg://")


def wait_until_blocking(database_url: str, pid: int, timeout: float = 60) -> None:
    """Wait until another session waits for a lock the session `pid` holds."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while not conn.execute(query, (pid,)).fetchone()[0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing waited on the held transaction within {timeout}s")
            time.sleep(0.05)


def wait_for_status(url: str, path: str, status: int, timeout: float = 120) -> httpx.Response:
    """Poll `url + path` until it answers `status` (connection errors count as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url + path, timeout=5, verify=TLS)
            if response.status_code == status:
                return response
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not answer {status} within {timeout}s")
        time.sleep(0.2)
