"""The commands as a new operator meets them when something is wrong: what to do, no traceback."""

import os
import subprocess

import psycopg
import pytest
from sqlalchemy import create_engine, make_url, text

from product_importer import schema
from tests.conftest import (
    BIN,
    PG_ADMIN_URL,
    ROOT,
    TEST_DB,
    _database_url,
    _recreate_database,
    free_port,
)


def run_command(*args: str, env: dict) -> subprocess.CompletedProcess:
    """`product-importer ARGS` with the session's settings and `env` besides."""
    return subprocess.run(
        [str(BIN / "product-importer"), *args],
        cwd=ROOT,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


COMMANDS = [
    ("migrate",),
    ("worker",),  # it ran, logging a traceback every second
    ("users", "create", "ana@example.com", "--role", "admin"),
    ("tokens", "create", "ana@example.com", "--name", "ci"),
    ("import", "README.md"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_a_database_not_created_yet_is_said_with_the_command_that_creates_it(command, test_env):
    missing = _database_url(f"{TEST_DB}_never_created")

    done = run_command(*command, env={"DATABASE_URL": missing})

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f'database "{TEST_DB}_never_created" does not exist' in done.stderr, done.stderr
    assert "Create it with `product-importer migrate --create-database`." in done.stderr


@pytest.fixture
def empty_database():
    """A database of its own with no tables, as `createdb` leaves one; its URL."""
    name = f"{TEST_DB}_not_migrated"
    _recreate_database(name)
    yield _database_url(name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_worker_on_a_database_not_migrated_says_to_migrate_first(empty_database):
    # It ran, logging two tracebacks a second ("relation import_jobs does not exist").
    done = run_command("worker", env={"DATABASE_URL": empty_database})

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert (
        f"Error: The database has no tables yet; this release needs migration {schema.head()}. "
        "Run `product-importer migrate` (or start `serve`, which migrates), then the workers."
    ) in done.stderr, done.stderr


def test_a_database_of_a_newer_release_is_said_so_by_migrate_and_the_worker(empty_database):
    # Rolled back to this release, `migrate` said only Alembic's "Can't locate revision".
    assert run_command("migrate", env={"DATABASE_URL": empty_database}).returncode == 0
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")

    for command in ("migrate", "worker"):
        done = run_command(command, env={"DATABASE_URL": empty_database})

        assert done.returncode == 1, done.stdout + done.stderr
        assert (
            "Error: The database was migrated by a newer release (migration 9999; this one "
            f"knows migrations up to {schema.head()}). Run that release, or a newer one."
        ) in done.stderr, done.stderr


def test_a_database_server_that_does_not_answer_is_said_with_what_to_check(test_env):
    nowhere = make_url(test_env["DATABASE_URL"]).set(port=free_port())

    done = run_command("migrate", env={"DATABASE_URL": nowhere.render_as_string(False)})

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "Error: The database could not be used: " in done.stderr, done.stderr
    assert "Connection refused" in done.stderr
    assert "Check DATABASE_URL (from the environment or .env) and that the server runs." in (
        done.stderr
    )


NO_CREATEDB = "pi_test_no_createdb"


@pytest.fixture
def role_without_createdb():
    """A role that may sign in but not create databases, dropped after the test."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP ROLE IF EXISTS {NO_CREATEDB}"))
        conn.execute(text(f"CREATE ROLE {NO_CREATEDB} LOGIN NOCREATEDB"))
    try:
        yield NO_CREATEDB
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP ROLE {NO_CREATEDB}"))
        admin.dispose()


def test_a_role_that_may_not_create_the_database_is_said_with_what_to_do(role_without_createdb):
    # The permission error ended in a traceback.
    url = make_url(_database_url(f"{TEST_DB}_never_created")).set(username=role_without_createdb)

    done = run_command(
        "migrate", "--create-database", env={"DATABASE_URL": url.render_as_string(False)}
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "Error: The database refused: permission denied to create database." in done.stderr
    assert "Give the role DATABASE_URL names that right (CREATEDB" in done.stderr


def test_a_plan_id_no_job_could_have_is_refused_as_out_of_range():
    # SQLite takes no integer past 64 bits: the embedded default ended in a traceback.
    done = run_command("import", "--apply", "99999999999999999999", env={})

    assert done.returncode == 2, done.stdout + done.stderr
    assert "Invalid value for '--apply': 99999999999999999999 is not in the range" in done.stderr
