"""Which database errors mean "not now, ask again" (`database.unavailable`), raised for real by
PostgreSQL and SQLite, and when the answer to one is a 503 rather than a 500."""

import sqlite3

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import InternalServerError

from product_importer import database
from product_importer.errors import handle_http_error
from product_importer.extensions import bookkeeping, db
from tests.conftest import PG_ADMIN_URL, free_port


def raised(engine, *statements: str) -> DBAPIError:
    """The error the last of `statements` raises, run in one transaction on `engine`."""
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        for statement in statements:
            conn.execute(text(statement))
    return caught.value


@pytest.fixture
def postgres(app):
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    yield engine
    engine.dispose()


def test_a_server_not_listening_is_away():
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    assert database.unavailable(raised(engine, "SELECT 1")) == "away"


def test_a_session_ended_by_the_server_is_away(postgres):
    with postgres.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(DBAPIError) as caught:
            conn.execute(text("SELECT 1"))
    assert database.unavailable(caught.value) == "away"


@pytest.mark.parametrize(
    "statements",
    [
        ("SET LOCAL statement_timeout = '1ms'", "SELECT pg_sleep(1)"),  # a timeout: 57014
        ("SELECT 1 / 0",),
        ("SELECT * FROM no_such_table",),
    ],
    ids=["statement timeout", "division by zero", "no such table"],
)
def test_an_error_of_the_request_itself_is_not(postgres, statements):
    assert database.unavailable(raised(postgres, *statements)) is None


def test_a_lock_not_granted_in_time_is_not(postgres):
    with postgres.connect() as holder:
        holder.execute(text("LOCK TABLE products IN ACCESS EXCLUSIVE MODE"))
        error = raised(postgres, "SET LOCAL lock_timeout = '10ms'", "SELECT 1 FROM products")
    assert getattr(error.orig, "sqlstate", None) == "55P03"
    assert database.unavailable(error) is None


def test_sqlite_with_its_writer_held_past_the_timeout_is_busy(tmp_path):
    path = tmp_path / "busy.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (x integer)")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        assert database.unavailable(raised(engine, "SELECT * FROM none")) is None
        holder.execute("BEGIN IMMEDIATE")
        assert database.unavailable(raised(engine, "INSERT INTO t VALUES (1)")) == "busy"
    finally:
        engine.dispose()
        holder.close()


def test_a_pool_whose_every_connection_is_taken_past_its_timeout_is_away(app):
    engine = create_engine(
        app.config["SQLALCHEMY_DATABASE_URI"], pool_size=1, max_overflow=0, pool_timeout=0.1
    )
    try:
        with engine.connect(), pytest.raises(PoolTimeout) as caught, engine.connect():
            pass
        assert database.unavailable(caught.value) == "away"
    finally:
        engine.dispose()


def test_an_error_not_of_the_database_is_not():
    assert database.unavailable(ValueError("no")) is None
    assert database.unavailable(None) is None


@pytest.fixture
def away() -> InternalServerError:
    """The 500 Flask makes of an error raised by a database not answering."""
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    return InternalServerError(original_exception=raised(engine, "SELECT 1"))


def answered(app, away, commit: str) -> tuple[int, dict]:
    """The status and headers a request gets for `away`, having committed as `commit` says."""
    with app.test_request_context("/api/products"):
        if commit != "none":
            db.session.execute(text("SELECT 1"))
            if commit == "bookkeeping":
                with bookkeeping():
                    db.session.commit()
            else:
                db.session.commit()
        body, status, headers = handle_http_error(away)
        db.session.remove()
    return status, dict(headers)


def test_a_request_that_committed_nothing_is_told_to_ask_again(app, away):
    assert answered(app, away, "none") == (503, {"Retry-After": "5"})
    assert answered(app, away, "bookkeeping") == (503, {"Retry-After": "5"})


def test_a_request_that_sent_a_commit_may_have_changed_something_so_its_500_stands(app, away):
    assert answered(app, away, "work")[0] == 500
