"""The app in both of its modes, for tests that must hold in each (a pytest plugin).

Production mode is PostgreSQL with Celery workers; the embedded default is SQLite with the
background work on threads of the web process: two code paths wherever SQL or background work
differ. A test that asks for `api` (the Flask test client) or `served` / `any_http` (a running
server) runs once in each mode, so a bug of one mode cannot hide behind the other.

- `api`: the app in this process: on the test PostgreSQL database, or configured as the
  embedded default (SQLite in its own instance folder, no broker). No background work runs
  for it, so it serves tests of the API itself and of what it writes (products, deliveries).
- `served`: a running server: the session's gunicorn and Celery worker, or
  `product-importer serve` started with no database or broker named, in its own folder, so its
  imports and deliveries run on its own threads as a laptop's would.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.conftest import (
    BIN,
    Process,
    client_with_token,
    free_port,
    http_client,
    restore_accounts,
    wait_until_up,
)

MODES = ["production", "embedded"]
# The settings that choose production mode, or place its files: the embedded server has its own.
PRODUCTION_ONLY = {"DATABASE_URL", "CELERY_BROKER_URL", "INSTANCE_PATH", "UPLOAD_FOLDER"}


def empty_tables(engine: Engine, account_rows) -> None:
    """Delete every row of the app's tables on a SQLite database, but the standard accounts."""
    from product_importer.extensions import db

    with engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())
        restore_accounts(conn, account_rows)


PRODUCTS = text(
    "SELECT id, sku, name, description, active, created_at, updated_at FROM products ORDER BY id"
)


def snapshot(engine: Engine) -> list[tuple]:
    """Every product, in id order, with all its columns (as the database driver returns them)."""
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(PRODUCTS)]


# --- the app in this process ----------------------------------------------------------------


def make_embedded_app(app, folder):
    """An app configured as the embedded default (SQLite, no broker) in `folder`, migrated;
    `app`'s Celery stays the current one."""
    from product_importer import create_app, schema

    production_instance = os.environ["INSTANCE_PATH"]
    os.environ["INSTANCE_PATH"] = str(folder)  # create_app reads its instance folder here
    try:
        embedded = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'product_importer.db'}",
                "SQLALCHEMY_ENGINE_OPTIONS": {
                    "connect_args": {"timeout": 30, "check_same_thread": False}
                },
                "CELERY_BROKER_URL": "",
                "EMBEDDED_WORKER": True,
                "UPLOAD_FOLDER": str(folder / "uploads"),
            }
        )
    finally:
        os.environ["INSTANCE_PATH"] = production_instance
    app.extensions["celery"].set_default()  # create_app made the embedded app's Celery current
    with embedded.app_context():
        schema.upgrade()
    return embedded


@pytest.fixture(scope="session")
def embedded_app(app, tmp_path_factory):
    """The app configured as the embedded default (SQLite, no broker), migrated; no worker."""
    return make_embedded_app(app, tmp_path_factory.mktemp("embedded-app"))


@pytest.fixture(params=MODES)
def any_app(request, app, account_rows):
    """The app in this process, in each mode in turn, with empty tables but the accounts."""
    if request.param == "production":
        return app  # emptied by _empty_tables
    embedded = request.getfixturevalue("embedded_app")
    with embedded.app_context():
        from product_importer.extensions import db

        empty_tables(db.engine, account_rows)
    return embedded


@pytest.fixture
def api(any_app, accounts):
    """Flask's test client of the app in each mode in turn, as the admin's token."""
    return client_with_token(any_app, accounts["admin"].token)


@pytest.fixture
def any_engine(any_app) -> Engine:
    """The database engine of `any_app`, for checking what the app wrote."""
    from product_importer.extensions import db

    with any_app.app_context():
        return db.engine


# --- a running server -----------------------------------------------------------------------


@dataclass
class Served:
    """A running server of the app, and its database for checking what it wrote."""

    mode: str
    url: str
    engine: Engine
    uploads: Path  # where it keeps uploaded files


@pytest.fixture(scope="session")
def embedded_served(test_env, tmp_path_factory):
    """`product-importer serve` with no database or broker named: SQLite, threads for workers.

    It gets the tests' other settings (private webhook targets allowed, short retries).
    """
    folder = tmp_path_factory.mktemp("embedded-server")
    env = {key: value for key, value in os.environ.items() if key not in PRODUCTION_ONLY}
    env["INSTANCE_PATH"] = str(folder / "instance")
    port = free_port()
    args = [str(BIN / "product-importer"), "serve", "--port", str(port)]
    server = Process(args, env, folder / "serve.log", cwd=folder, inherit=False)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server)
        assert "embedded (SQLite + in-process worker) mode" in server.output()
        database = folder / "instance" / "product_importer.db"
        engine = create_engine(f"sqlite:///{database}", connect_args={"timeout": 30})
        yield Served("embedded", url, engine, folder / "instance" / "uploads")
        engine.dispose()
    finally:
        server.kill()


def _no_import_running(engine: Engine, timeout: float = 90) -> None:
    """Wait for the embedded server's imports to end, cancelling any still going after 30 s."""
    unfinished = "FROM import_jobs WHERE status IN ('queued', 'running')"
    started = time.monotonic()
    while True:
        with engine.begin() as conn:
            if not conn.execute(text(f"SELECT count(*) {unfinished}")).scalar():
                return
            waited = time.monotonic() - started
            if waited > timeout:
                pytest.fail("imports of an earlier test still running on the embedded server")
            if waited > 30:
                conn.execute(text(f"UPDATE import_jobs SET cancel_requested = 1 {unfinished}"))
        time.sleep(0.1)


@pytest.fixture(params=MODES)
def served(request, test_env, app, live_server, live_worker, account_rows) -> Served:
    """A running server in each mode in turn, with empty tables."""
    if request.param == "production":
        from product_importer.extensions import db

        with app.app_context():
            uploads = Path(test_env["UPLOAD_FOLDER"])
            return Served("production", live_server, db.engine, uploads)
    embedded = request.getfixturevalue("embedded_served")
    _no_import_running(embedded.engine)
    empty_tables(embedded.engine, account_rows)
    return embedded


@pytest.fixture
def any_http(served, accounts):
    """An HTTP client for the running server, in each mode in turn, as the admin's token."""
    with http_client(served.url, accounts["admin"].token) as client:
        yield client


@pytest.fixture
def any_catalog(served):
    """Return a function that reads every product of the served app's database (`snapshot`)."""
    return lambda: snapshot(served.engine)
