"""Fixtures: a real PostgreSQL database, Redis, a Celery worker process and a gunicorn server.

The test database `product_importer_test` (`_gw0`, `_gw1`, ... under pytest-xdist) is created
afresh for each session (it is ours to drop). Every test starts from empty tables. Processes
are started the way users start them: `product-importer worker` and `product-importer serve`.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import OperationalError

pytest_plugins = ["tests.modes"]  # the `api`, `served` and `any_http` fixtures: both modes

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# `make test` runs the tests in several pytest processes (pytest-xdist: gw0, gw1, ...). Each has
# a database and a Redis database of its own (15 for gw0, 14 for gw1, ...), hence its own
# tables, queues and workers: no test sees another process's imports.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
TEST_DB = os.environ.get("TEST_DB_NAME", "product_importer_test") + (
    f"_{XDIST_WORKER}" if XDIST_WORKER else ""
)


def _redis_url_of_worker(url: str, worker: str) -> str:
    """`url` with its database number lowered by the xdist worker's number (gw1: 15 -> 14)."""
    if not worker:
        return url
    base, number = url.rsplit("/", 1)
    return f"{base}/{int(number) - int(worker.removeprefix('gw'))}"


REDIS_URL = _redis_url_of_worker(
    os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"), XDIST_WORKER
)
ARTIFACTS = ROOT / "artifacts"
# httpx makes every client a TLS context of its own, reading the CA bundle (~40 ms of a core);
# the tests make thousands of clients, of plain HTTP to this machine: theirs share this one.
TLS = httpx.create_ssl_context()
# An import writes the rows it rejects every 5,000 of them and at the end of its reading.
REJECTED_AT_ONCE = 5000
TRUNCATE_TRIES = 5
TURN_WAIT_SECONDS = 60
DEADLOCK_DETECTED = "40P01"

# A shell without job control (a script, `sh -c`) starts a background job (`cmd &`) with
# SIGINT ignored, and every process below inherits that: the commands the tests stop with
# Ctrl-C never saw it, and those tests waited in vain. Each test process takes Ctrl-C back, so
# that the processes it starts do too.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# The longest tests (a minute or more each on a busy 2-core machine, `--durations`), started
# first: pytest-xdist hands each process a run of tests in this order and lets the others take
# the later ones, so a long test started late would leave one process running it alone at the
# end while the others wait (the Redis outage alone is 80 s).
LONGEST_FIRST = (
    "tests/faults/test_redis_down.py",
    "tests/browser/test_accessibility.py::test_every_page_has_no_accessibility_violation",
    "tests/accounts/test_access_model.py::test_accounts_sessions_and_tokens_follow_the_model",
    "tests/imports/test_undo_hunt.py::test_a_bulk_imports_record_follows_the_model",
    "tests/imports/test_import_model.py::test_the_catalog_follows_the_model",
    "tests/api/test_fuzz.py",
    "tests/ops/test_run_prod.py",
    "tests/imports/test_undo_hunt.py::test_plans_undo_and_retry_follow_the_model",
    "tests/products/test_list_oracle.py",
    "tests/browser/test_page_sweep.py",
    "tests/imports/test_csv_hunt.py::test_messy_csv_files_import_as_the_docs_say",
    "tests/faults/test_postgres_restart.py",
)


def pytest_collection_modifyitems(items) -> None:
    """Run the LONGEST_FIRST tests first, longest first; the others keep their order."""

    def rank(item) -> int:
        found = (n for n, start in enumerate(LONGEST_FIRST) if item.nodeid.startswith(start))
        return next(found, len(LONGEST_FIRST))

    items.sort(key=rank)  # stable


def _database_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _recreate_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


@pytest.fixture(scope="session")
def test_env(tmp_path_factory) -> dict:
    """Environment shared by the in-process app and every process the tests start."""
    _recreate_database(TEST_DB)
    instance = tmp_path_factory.mktemp("instance")
    env = {
        "DATABASE_URL": _database_url(TEST_DB),
        "CELERY_BROKER_URL": REDIS_URL,
        "INSTANCE_PATH": str(instance),
        "UPLOAD_FOLDER": str(instance / "uploads"),
        "SECRET_KEY": "test-secret",
        "MAX_UPLOAD_BYTES": str(1024 * 1024 * 1024),
        "UPLOAD_RETENTION_HOURS": "24",
        "IMPORT_HEARTBEAT_TIMEOUT_SECONDS": "5",
        "WEBHOOK_TIMEOUT_SECONDS": "5",
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "WEBHOOK_RETRY_BASE_SECONDS": "0.2",  # retries after ~0.1-0.2 s, not seconds
        "LOG_LEVEL": "INFO",
    }
    os.environ.update(env)
    _flush_redis()
    return env


def _flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


@pytest.fixture(scope="session")
def app(test_env):
    """The Flask app on the test database, migrated."""
    from product_importer import create_app, schema

    app = create_app({"TESTING": True})
    with app.app_context():
        schema.upgrade()
    return app


@dataclass(frozen=True)
class Account:
    """One of the accounts every test starts with: sign in with email and PASSWORD, or token."""

    role: str
    email: str
    token: str


PASSWORD = "a test password, long enough"


@pytest.fixture(scope="session")
def accounts() -> dict[str, Account]:
    """An admin, an editor and a viewer, each with a personal access token of its role."""
    from product_importer.accounts import credentials

    return {
        role: Account(role, f"{role}@example.test", credentials.new_token())
        for role in ("admin", "editor", "viewer")
    }


@pytest.fixture(scope="session")
def account_rows(accounts) -> tuple[list[dict], list[dict]]:
    """The rows of the standard accounts and their tokens, for `restore_accounts`."""
    from product_importer.accounts import credentials

    password_hash = credentials.hash_password(PASSWORD)  # once: argon2 is slow on purpose
    users = [
        {"email": a.email, "password_hash": password_hash, "role": a.role}
        for a in accounts.values()
    ]
    tokens = [
        {
            "user_id": number,
            "name": "tests",
            "token_hash": credentials.token_hash(a.token),
            "prefix": a.token[:12],
            "role": a.role,
        }
        for number, a in enumerate(accounts.values(), start=1)
    ]
    return users, tokens


@pytest.fixture(autouse=True)
def _empty_tables(request, app, account_rows):
    """Start every test from empty tables but the three standard accounts, with the search
    indexes the migrations make.

    Workers use their own connections, so there is no rollback to lean on. The tables are
    emptied once no import of an earlier test applies, nor builds the search indexes it
    deferred (both hold the turn to apply): either would go on into this test's tables and
    locks. An earlier test's import that is still running is cancelled first, and its end
    waited for (`_end_imports_left_running`); so is a webhook attempt still being sent
    (`_end_webhook_attempts_left_in_flight`).
    """
    empty_tables(app, account_rows)
    yield


def empty_tables(app, account_rows) -> None:
    """Empty every table but the standard accounts (`_empty_tables` says when and why)."""
    from product_importer.extensions import db

    with app.app_context():
        _end_imports_left_running(db.engine, app.config["IMPORT_HEARTBEAT_TIMEOUT_SECONDS"])
        _end_webhook_attempts_left_in_flight(db.engine, app.config["WEBHOOK_TIMEOUT_SECONDS"])
        tables = [t.name for t in db.metadata.sorted_tables]
        deadline, deadlocks = time.monotonic() + TURN_WAIT_SECONDS, 0
        while True:
            try:
                with db.engine.begin() as conn:
                    if _take_the_turn(conn) or _turn_waited(deadline):
                        _truncate_used(conn, tables)
                        _drop_kept_plans(conn)
                        _restore_search_indexes(conn)
                        restore_accounts(conn, account_rows)
                        return  # committed, and the turn given back, as the block ends
            except OperationalError as error:
                # A worker left running by an earlier test (its upkeep, a webhook) may lock
                # these tables in another order: PostgreSQL then gives up one side, maybe ours.
                if getattr(error.orig, "sqlstate", None) != DEADLOCK_DETECTED:
                    raise
                deadlocks += 1
                if deadlocks == TRUNCATE_TRIES:
                    raise
            time.sleep(0.05)


# The runs of imports an earlier test left: running, with a live heartbeat (a run whose worker
# was killed writes no more).
LEFT_RUNNING = "status = 'running' AND heartbeat_at > now() - make_interval(secs => :timeout)"
END_IMPORTS = (
    # queued ones too: a worker could claim one between this look and the emptying
    "UPDATE import_jobs SET status = 'cancelled' WHERE status = 'queued'",
    f"UPDATE import_jobs SET cancel_requested = true WHERE {LEFT_RUNNING}",
)
# a run may give its job back to the queue after the first statement: looked at again, as
# queued, at the next turn
IMPORTS_LEFT = f"SELECT id FROM import_jobs WHERE status = 'queued' OR ({LEFT_RUNNING})"


def _end_imports_left_running(engine, timeout: float) -> None:
    """Cancel the imports an earlier test left, and wait until their runs have ended.

    Emptied, the tables number jobs from 1 again: the run of an earlier test's job 1 (one
    following an upload the test left, say) would take this test's job 1 for its own, write
    its progress there and end it ("the upload was cancelled or expired").
    """
    left = _until_none_left(
        engine, TURN_WAIT_SECONDS, END_IMPORTS, IMPORTS_LEFT, {"timeout": timeout}
    )
    if left:
        warnings.warn(f"imports {left} of an earlier test still run", stacklevel=2)


# The deliveries an earlier test left: pending, or being sent. A claim lasts the attempt's
# timeout and LEASE_MARGIN_SECONDS more; past its timeout (and a second to record it), an
# attempt has ended, or its worker is gone.
DELIVERIES_LEFT = (
    "SELECT id FROM webhook_deliveries "
    "WHERE status = 'pending' OR locked_until > now() + make_interval(secs => :margin)"
)
# SKIP LOCKED: a worker's statement locking several of them waits for none of this one's
FAIL_PENDING = (
    "UPDATE webhook_deliveries SET status = 'failed' WHERE id IN "
    "(SELECT id FROM webhook_deliveries WHERE status = 'pending' FOR UPDATE SKIP LOCKED)",
)


def _end_webhook_attempts_left_in_flight(engine, timeout: float) -> None:
    """Fail the webhook deliveries an earlier test left pending, and wait until the attempts
    being sent end (one to a receiver still sleeping on it, up to WEBHOOK_TIMEOUT_SECONDS).

    Emptied, the tables number deliveries from 1 again: a worker records an attempt by the
    delivery's id and attempt number, so an attempt of an earlier test's delivery 1 still
    being sent would record its answer into this test's delivery 1 if that one's first attempt
    is being sent too (a receiver that holds it), and this test's own answer then nowhere.
    Failed, a pending one is not claimed (nor sent next in line) between this look and the
    emptying.
    """
    from product_importer.webhooks.delivery import LEASE_MARGIN_SECONDS

    margin = {"margin": LEASE_MARGIN_SECONDS - 1}
    # a worker of a longer timeout than this app's: not waited out
    left = _until_none_left(engine, timeout + 1, FAIL_PENDING, DELIVERIES_LEFT, margin)
    if left:
        warnings.warn(f"webhook deliveries {left} of an earlier test are still sent", stacklevel=2)


def _until_none_left(engine, seconds: float, ending: tuple, left: str, params: dict) -> list:
    """Run the `ending` statements until `left` finds no ids, for at most `seconds`; return
    the ids still left then (none: all ended)."""
    deadline = time.monotonic() + seconds
    while True:
        with engine.begin() as conn:
            for statement in ending:
                conn.execute(text(statement), params)
            ids = conn.execute(text(left), params).scalars().all()
        if not ids or time.monotonic() > deadline:
            return ids
        time.sleep(0.05)


def _truncate_used(conn, tables: list[str]) -> None:
    """TRUNCATE .. RESTART IDENTITY the tables, as fast: only those holding rows (most tests
    use a few; each table truncated costs a few ms of the server), then every sequence used
    (a rolled-back insert uses one without leaving a row) starts again.

    Every table is locked first, as TRUNCATE of them all did: a row a worker left running by
    an earlier test is writing is then seen, not committed after the look."""
    conn.exec_driver_sql(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
    holding = " UNION ALL ".join(
        f"SELECT '{table}' WHERE EXISTS (SELECT FROM {table})" for table in tables
    )
    used = conn.exec_driver_sql(holding).scalars().all()
    if used:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(used)} CASCADE")
    conn.exec_driver_sql(
        "SELECT setval(format('%%I.%%I', schemaname, sequencename), start_value, false) "
        "FROM pg_sequences WHERE last_value IS NOT NULL AND schemaname = current_schema()"
    )


def _drop_kept_plans(conn) -> None:
    """Drop the rows an earlier test's plans kept (`import_planned_<job id>`): emptied, the
    tables number jobs from 1 again, and this test's job of the same id took them for its own
    (a cancelled plan's were found kept)."""
    from product_importer.imports.postgres_stage import UNUSED_KEPT

    kept = conn.execute(text(UNUSED_KEPT)).scalars().all()  # no job is left: every one of them
    if kept:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {', '.join(kept)}")


def _take_the_turn(conn) -> bool:
    """Take the turn to apply until this transaction ends; False if an import holds it."""
    from product_importer import database

    taken = text("SELECT pg_try_advisory_xact_lock(:key)")
    return bool(conn.execute(taken, {"key": database.IMPORT_LOCK_KEY}).scalar())


def _stop_where_the_turn_is_free(worker: "Process") -> None:
    """SIGSTOP `worker` at a moment the turn to apply is free or held by a running import (as
    a test may hold one on purpose); after TURN_WAIT_SECONDS, stop it anyway."""
    from product_importer import database

    deadline = time.monotonic() + TURN_WAIT_SECONDS
    with psycopg.connect(_database_url(TEST_DB)) as conn:

        def free() -> bool:
            found = conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s)"
                " OR EXISTS (SELECT 1 FROM import_jobs WHERE status = 'running')",
                (database.IMPORT_LOCK_KEY,),
            ).fetchone()[0]
            conn.rollback()  # gives the turn back at once
            return found

        while True:
            if free() or _turn_waited(deadline):
                os.killpg(worker.popen.pid, signal.SIGSTOP)
                _wait_until_stopped(worker.popen.pid)
                if free() or _turn_waited(deadline):  # it took no turn before it stopped
                    return
                os.killpg(worker.popen.pid, signal.SIGCONT)
            time.sleep(0.05)


def _wait_until_stopped(group: int) -> None:
    """Return once every process of the group is stopped: SIGSTOP is delivered, not awaited."""
    while True:
        running = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # the process ended meanwhile
            state, process_group = fields[0], int(fields[2])
            if process_group == group and state not in ("T", "t", "Z", "X"):
                running.append(stat)
        if not running:
            return
        time.sleep(0.01)


def _turn_waited(deadline: float) -> bool:
    """Whether the turn was waited for long enough (a worker a test left paused holds it)."""
    if time.monotonic() < deadline:
        return False
    warnings.warn(f"an import held the turn to apply for {TURN_WAIT_SECONDS}s", stacklevel=1)
    return True


def _restore_search_indexes(conn) -> None:
    """Create the search indexes a fresh import defers, if an earlier test's worker was
    stopped before it built them (as the migrations leave them; instant on empty tables)."""
    from product_importer.imports import bulk

    for statement in bulk.DEFERRED.values():
        conn.exec_driver_sql(statement)  # as `bulk` runs it


def restore_accounts(conn, account_rows) -> None:
    """Insert the standard accounts (ids 1, 2, 3: admin, editor, viewer) into emptied tables."""
    from product_importer.accounts.models import Token, User

    users, tokens = account_rows
    conn.execute(insert(User), users)
    conn.execute(insert(Token), tokens)


class Held:
    """A transaction a test keeps open: whatever waits for its locks waits until it ends."""

    def __init__(self, conn, engine):
        self.conn, self.engine = conn, engine
        self.pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()

    def wait_until_blocking(
        self, timeout: float = 60, *, job: int | None = None, sessions: int = 1
    ) -> None:
        """Wait until another session (the one running import `job`, if given), or this many
        `sessions`, wait for a lock this transaction holds."""
        blocked = (
            "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid)) "
            "AND (CAST(:job AS bigint) IS NULL "
            "     OR pid = (SELECT db_pid FROM import_jobs WHERE id = :job))"
        )
        deadline = time.monotonic() + timeout
        while True:
            with self.engine.connect() as conn:
                if conn.execute(text(blocked), {"pid": self.pid, "job": job}).scalar() >= sessions:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing waited on the held transaction within {timeout}s")
            time.sleep(0.05)

    def release(self) -> None:
        """End the transaction now, before the context exits."""
        self.conn.rollback()


@pytest.fixture
def holding(app):
    """Return a context manager that runs SQL in a transaction kept open until it exits.

    Holding a lock the import needs stops it at a known point however fast the machine is;
    `Held.wait_until_blocking()` tells when it waits there.
    """
    from product_importer.extensions import db

    @contextmanager
    def hold(statement: str):
        with app.app_context(), db.engine.connect() as conn:
            conn.execute(text(statement))
            try:
                yield Held(conn, db.engine)
            finally:
                conn.rollback()

    return hold


def hold_next_rejected_row(conn) -> None:
    """Insert, uncommitted, the rejected row an import would write next: its writes then wait."""
    from product_importer.imports.models import ImportJob, RejectedRow

    jobs, rejected = ImportJob.__table__, RejectedRow.__table__
    # the held row's job: the test's own, never committed, seen by no one else
    owner = conn.execute(
        insert(jobs)
        .values(filename="held", file_path="", status="failed", warnings=[])
        .returning(jobs.c.id)
    ).scalar()
    taken = conn.execute(text("SELECT nextval('import_rejected_rows_id_seq')")).scalar()
    conn.execute(insert(rejected).values(id=taken + 1, job_id=owner, line=0, reason="held"))


@pytest.fixture
def holding_rejections(app):
    """Return a context manager that stops the next write of rejected rows until it exits.

    Rejected rows are written through their own connection, each taking the next id of their
    table; a row with that id, inserted and not committed, makes the import's write wait for
    the test's transaction. The import is then still reading (`held_file` stops half-way).
    """
    from product_importer.extensions import db

    @contextmanager
    def hold():
        with app.app_context(), db.engine.connect() as conn:
            hold_next_rejected_row(conn)
            try:
                yield Held(conn, db.engine)
            finally:
                conn.rollback()

    return hold


@pytest.fixture
def sql(app):
    """Run one SQL statement on the test database in its own transaction; return all rows."""
    from product_importer.extensions import db

    def run(statement: str, **params) -> list:
        with app.app_context(), db.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []

    return run


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield app


@pytest.fixture
def db_session(app_ctx):
    """The app's SQLAlchemy session, for checking database state."""
    from product_importer.extensions import db

    yield db.session
    db.session.rollback()
    db.session.remove()


@pytest.fixture
def client(app, accounts):
    """Flask's test client, as the admin's token: requests go through the whole app, here."""
    return client_with_token(app, accounts["admin"].token)


@pytest.fixture
def client_as(app, accounts):
    """Return a test client acting with the token of the standard account of a role."""
    return lambda role: client_with_token(app, accounts[role].token)


def admin_token_for(app) -> str:
    """Make an admin with a token in `app`'s own database (an embedded app, say); return it."""
    from product_importer.accounts import service
    from product_importer.extensions import db

    with app.app_context():
        admin = service.find_user(db.session, "admin@example.test") or service.create_user(
            db.session, email="admin@example.test", role="admin", password=PASSWORD
        )
        _, token = service.create_token(db.session, admin, name="tests", role="admin")
        db.session.commit()
    return token


def client_with_token(app, token: str | None):
    """A test client that sends `Authorization: Bearer <token>` (none when token is None)."""
    test_client = app.test_client()
    if token:
        test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A command started by the tests, its output kept in a log file."""

    def __init__(self, args: list[str], env: dict, log_path: Path, *, cwd=ROOT, inherit=True):
        """Start `args` with the session's environment plus `env` (or only `env`)."""
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115  (closed in kill())
        self.popen = subprocess.Popen(
            args,
            env={**os.environ, **env} if inherit else env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.output():
            if self.popen.poll() is not None:
                raise RuntimeError(f"process exited:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {needle!r} within {timeout}s:\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def kill(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Send `sig` to the whole process group and wait for it to end."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        self.log.close()


@contextmanager
def database_refusing_connections():
    """Make the test database refuse new connections (as one restarting, or out of reach,
    does) until the block ends; the sessions already open keep working."""
    refuse = f'ALTER DATABASE "{TEST_DB}" WITH ALLOW_CONNECTIONS %s'
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(refuse % "false")
        try:
            yield
        finally:
            admin.execute(refuse % "true")


@contextmanager
def paused(worker: Process):
    """Stop a worker process (SIGSTOP) for a while: it takes no job and sends nothing.

    It is not stopped while it holds the turn to apply with no import running: a worker
    releases the turn just after it commits the job's end, which a test may already have
    seen; stopped in between, it would keep every other importer (the command line, another
    worker) waiting.
    """
    _stop_where_the_turn_is_free(worker)
    try:
        yield
    finally:
        os.killpg(worker.popen.pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def start_worker(test_env, app, tmp_path_factory):
    """Start `product-importer worker` processes; all are stopped at the end of the session."""
    started: list[Process] = []
    logs = tmp_path_factory.mktemp("workers")

    def start(**env) -> Process:
        args = [
            str(BIN / "product-importer"),
            "worker",
            "--concurrency",
            "4",
            "--hostname",
            f"test{len(started)}@%h",
        ]
        worker = Process(args, env, logs / f"worker-{len(started)}.log")
        started.append(worker)
        worker.wait_for_output(" ready.")
        return worker

    yield start
    for worker in started:
        worker.kill()


class SessionWorker:
    """The worker every test shares; a test may kill it (to show recovery), so it restarts."""

    def __init__(self, start):
        self.start = start
        self.process = start()

    def alive(self) -> Process:
        """Return the worker process, started again if it is no longer running."""
        if self.process.popen.poll() is not None:
            self.process = self.start()
        return self.process


@pytest.fixture(scope="session")
def worker(start_worker) -> SessionWorker:
    """One Celery worker for the whole session."""
    return SessionWorker(start_worker)


@pytest.fixture
def live_worker(worker) -> Process:
    """The session's worker, started again if a test killed it."""
    return worker.alive()


@pytest.fixture
def two_workers(worker, start_worker) -> list[Process]:
    """Two worker processes of the test's own; the session's worker is stopped meanwhile.

    Each reads one import at a time (IMPORT_SLOTS=1): a second import goes to the other one.
    """
    worker.process.kill()  # started again by the next test that needs it
    started = [start_worker(IMPORT_SLOTS="1"), start_worker(IMPORT_SLOTS="1")]
    yield started
    for process in started:
        process.kill()


@pytest.fixture(scope="session")
def live_server(test_env, app, worker, tmp_path_factory):
    """`product-importer serve` (gunicorn, production mode) on a free port; yields its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    server = Process([str(BIN / "product-importer"), "serve", "--port", str(port)], {}, log)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, server)
    yield url
    server.kill()


def wait_until_up(url: str, process: Process, timeout: float = 60, verify=TLS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"server exited:\n{process.output()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1, verify=verify).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"server not up:\n{process.output()[-3000:]}")


@pytest.fixture
def http(live_server, accounts):
    """An HTTP client for the live server, acting with the admin's token."""
    with http_client(live_server, accounts["admin"].token) as client:
        yield client


def http_client(url: str, token: str | None) -> httpx.Client:
    """An HTTP client for `url` that sends the bearer token (none when token is None)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, timeout=30, headers=headers, verify=TLS)


@pytest.fixture
def artifacts() -> Path:
    """A git-ignored folder for screenshots and other test output."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
