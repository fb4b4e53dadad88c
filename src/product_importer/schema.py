"""The database schema's version: Alembic (through Flask-Migrate) brings it up to date, and is
loaded only when it is not. Every command and server start checks it; on a database already up
to date, loading Alembic (with Mako and Pygments) was a tenth of a command's start."""

import functools
import os
import re

from flask import current_app
from sqlalchemy import inspect, text

from . import database
from .extensions import db

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")
VERSIONS = os.path.join(MIGRATIONS, "versions")
# A migration's file is named after its revision, numbered in order: 0027_webhook_last_test.py.
REVISION_FILE = re.compile(r"(\d{4})_\w+\.py")


@functools.cache
def head() -> str:
    """The revision of the latest migration (a test holds it to Alembic's own head)."""
    names = (REVISION_FILE.fullmatch(name) for name in os.listdir(VERSIONS))
    return max(found.group(1) for found in names if found)


class NotThisRelease(Exception):
    """The database's schema is not this release's, and this command cannot make it so."""


def upgrade() -> None:
    """Bring the current app's database up to date, unless it is."""
    found = applied()
    if found != [head()]:
        refuse_newer(found)
        migrations().upgrade()


def check_current() -> None:
    """Raise NotThisRelease unless the database is at this release's migration (a worker's
    queries would fail every second, a traceback each, on tables not made yet)."""
    found = applied()
    refuse_newer(found)
    if found != [head()]:
        at = f"is at migration {found[0]}" if found else "has no tables yet"
        raise NotThisRelease(
            f"The database {at}; this release needs migration {head()}. Run "
            "`product-importer migrate` (or start `serve`, which migrates), then the workers."
        )


def refuse_newer(found: list[str]) -> None:
    """Raise NotThisRelease when a newer release migrated the database (rolled back since):
    Alembic said only that it could not locate the revision."""
    newer = [revision for revision in found if revision > head()]
    if newer:
        raise NotThisRelease(
            f"The database was migrated by a newer release (migration {newer[0]}; this one "
            f"knows migrations up to {head()}). Run that release, or a newer one."
        )


def applied() -> list[str]:
    """The revisions the current app's database says it has (none for a new database)."""
    with database.migration_connection(current_app.config, db.engine) as conn:
        if not inspect(conn).has_table("alembic_version"):
            return []
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()


def migrations():
    """Flask-Migrate, set up on the current app: its `upgrade` and `downgrade`."""
    import flask_migrate  # noqa: PLC0415  (here: loading it is what `upgrade` saves)

    if "migrate" not in current_app.extensions:
        flask_migrate.Migrate(current_app, db, directory=MIGRATIONS)
    return flask_migrate
