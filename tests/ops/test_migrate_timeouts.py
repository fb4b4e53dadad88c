"""`product-importer migrate` on a server whose operator set timeouts for everyone."""

import psycopg
import pytest
from alembic.script import ScriptDirectory

from tests.conftest import PG_ADMIN_URL, ROOT, TEST_DB, _database_url

from .test_command_errors import run_command

# Short enough that the first migrations' statements (creating extensions, tables, indexes),
# or the pauses between them in their transactions, are cut.
FOR_EVERYONE = "1ms"
# the test's own sessions, where the timeouts are set: none of its reads is cut
UNTIMED = "-c statement_timeout=0 -c idle_in_transaction_session_timeout=0"
HEAD = ScriptDirectory(str(ROOT / "src/product_importer/migrations")).get_current_head()


@pytest.fixture
def empty_database():
    """A database of the test's own, empty (`migrate` creates the schema); dropped afterwards."""
    name = f"{TEST_DB}_timeouts"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("setting", ["statement_timeout", "idle_in_transaction_session_timeout"])
def test_migrate_outlasts_the_timeouts_a_server_sets_for_everyone(empty_database, setting):
    url = _database_url(empty_database)
    with psycopg.connect(url, autocommit=True) as conn:  # as an operator's ALTER DATABASE does
        conn.execute(f"ALTER DATABASE \"{empty_database}\" SET {setting} = '{FOR_EVERYONE}'")

    done = run_command("migrate", env={"DATABASE_URL": url, "PGOPTIONS": ""})  # none by hand

    # It stopped half-way: "canceling statement due to statement timeout", or its session was
    # ended idle in a migration's transaction. The README had operators set PGOPTIONS by hand.
    assert done.returncode == 0, done.stderr
    assert "Database schema is up to date." in done.stdout + done.stderr
    with psycopg.connect(url, options=UNTIMED) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert version == (HEAD,)
