"""Extension objects, created unbound and attached to the app in create_app()."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery, Task
from flask import Flask, g, has_request_context, request
from flask_limiter import Limiter
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import BigInteger, Integer, MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

from .database import lower_letters

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Primary keys: 64-bit on PostgreSQL; SQLite only auto-increments a column declared exactly
# INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # What the database fills in at an INSERT or UPDATE (a server default, a generated column)
    # comes back with the statement (RETURNING), rather than being left to load on first read:
    # read after the commit, that load could find the row deleted meanwhile (see `db`).
    __mapper_args__ = {"eager_defaults": True}


# A commit leaves the objects the session holds as they are (expire_on_commit off), so an answer
# built after the commit is what the request made. Expired, each was loaded again on its next
# read, from a row that a delete waiting for the change (another admin, another tab) may have
# removed by then: a 500 for a change that was made. A session lives as long as its app context
# (a request, a command, a round of upkeep; workers write through connections of their own).
# Code that must see what others committed since says so: a poll forgets what it holds
# (`expire_all`, as `imports.cli._watch` and `imports.streams._job_state` do: a rollback right
# after a commit forgets nothing), an upload's piece reads its row again
# (`imports.resumable._still_there`), an edit reads under its lock (`populate_existing`).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
csrf = CSRFProtect()
# Limits are declared on the views that need them (failed sign-ins); none by default.
limiter = Limiter(key_func=lambda: request.remote_addr or "unknown")


def _unicode_lower(value):
    """lower() for SQLite that folds every letter, as PostgreSQL's does, not only ASCII."""
    return lower_letters(value) if isinstance(value, str) else value


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record):
    """Let readers work while an import writes, enforce foreign keys and fold case fully."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        # Replaces the built-in lower() that the unique indexes on lower(sku) and lower(email)
        # and the import's merge use, so ÄPFEL-1 and äpfel-1 are one product here too, and
        # JÖRG@example.com and jörg@example.com one account. Deterministic, so SQLite accepts
        # it in an index expression (migration 0024 rebuilt those indexes with this one).
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


@event.listens_for(Engine, "commit")
def _note_commit(_conn):
    """Note that the request sent a COMMIT (before it is sent: one cut may have landed): an
    error after it cannot say that nothing was changed (`errors.handle_http_error`)."""
    if has_request_context():
        g.committed = True


def request_committed() -> bool:
    """Whether this request sent a COMMIT of its work (bookkeeping aside)."""
    return g.get("committed", False)


@contextmanager
def bookkeeping() -> Iterator[None]:
    """Commits inside are the request's bookkeeping (when its token was last used, a list's
    total kept), not its work: a request that then fails on a database away has still changed
    nothing. Outside a request, nothing is noted anyway."""
    if not has_request_context():
        yield
        return
    before = g.get("committed", False)
    try:
        yield
    finally:
        g.committed = before


@contextmanager
def removed_unless_committed(path: str) -> Iterator[None]:
    """Remove the file at `path` if the block fails before the request sent a COMMIT: no row
    names it then. After one, its row may have been saved, and the file is that row's."""
    try:
        yield
    except BaseException:
        if not request_committed():
            os.remove(path)
        raise


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app, run every task inside a Flask app context."""

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
