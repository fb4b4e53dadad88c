"""Migrations on catalogs that have products (0016 on PostgreSQL, 0020 on SQLite, 0026 on
both): up, down and up again, nothing lost."""

import logging
import os
import re
import sqlite3
import subprocess
import unicodedata
from contextlib import closing
from functools import partial

import psycopg
import pytest

from product_importer import schema
from product_importer.database import lower_letters
from tests.conftest import BIN, PG_ADMIN_URL, TEST_DB, _database_url, _recreate_database

SCRATCH_DB = f"{TEST_DB}_migrations"
NFD = partial(unicodedata.normalize, "NFD")
DESCRIPTIONS = ["Forged STEEL head", "Ünïcode Ärger", "ΣΟΦΊΑΣ", "", "Pine wood\r\nwith lid"]
INDEXES = (
    "SELECT indexrelid::regclass::text, indisvalid FROM pg_index "
    "WHERE indrelid = 'products'::regclass AND indexrelid::regclass::text LIKE '%description%' "
    "ORDER BY 1"
)


@pytest.fixture
def migrated_app(app):
    """An app on a database of its own (dropped after), to migrate up and down at will."""
    from product_importer import create_app

    _recreate_database(SCRATCH_DB)
    yield migratable(
        create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": _database_url(SCRATCH_DB)})
    )
    app.extensions["celery"].set_default()  # create_app made the scratch app's Celery current
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DB}" WITH (FORCE)')


def migratable(app):
    """`app` with Flask-Migrate set up, for the tests' own upgrades and downgrades."""
    with app.app_context():
        schema.migrations()
    return app


def scratch_app(request, database: str):
    """An app on a scratch database of `database`'s kind, to migrate at will."""
    if database == "postgresql":
        return request.getfixturevalue("migrated_app")
    return request.getfixturevalue("sqlite_app")[0]


def sql(statement: str, **params) -> list[tuple]:
    with psycopg.connect(_database_url(SCRATCH_DB), autocommit=True) as conn:
        cursor = conn.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else []


def test_the_lowered_description_is_added_to_a_catalog_and_taken_away_again(migrated_app):
    import flask_migrate

    with migrated_app.app_context():
        flask_migrate.upgrade(revision="0015")
        for n, description in enumerate(DESCRIPTIONS):
            sql(
                "INSERT INTO products (sku, name, description) VALUES (%(s)s, 'P', %(d)s)",
                s=f"M-{n}",
                d=description,
            )
        before = sql("SELECT id, sku, name, description, row_hash FROM products ORDER BY id")

        flask_migrate.upgrade()
        lowered = sql("SELECT description_lower FROM products ORDER BY id")
        assert lowered == [(sql("SELECT lower(%(d)s)", d=d)[0][0],) for d in DESCRIPTIONS]
        assert lowered[0] == ("forged steel head",)
        assert sql(INDEXES) == [
            ("ix_products_description_lower_trgm_0", True),
            ("ix_products_description_lower_trgm_1", True),
        ]
        after = sql("SELECT id, sku, name, description, row_hash FROM products ORDER BY id")
        assert after == before

        flask_migrate.downgrade(revision="0015")
        assert sql(INDEXES) == [
            ("ix_products_description_trgm_0", True),
            ("ix_products_description_trgm_1", True),
        ]
        assert (
            sql("SELECT id, sku, name, description, row_hash FROM products ORDER BY id") == before
        )
        flask_migrate.upgrade()  # and up again
        assert [valid for _, valid in sql(INDEXES)] == [True, True]


# --- 0020: ids never given twice on SQLite --------------------------------------------------

SQLITE_ROWS = {
    "products": "SELECT id, sku, name, description, active, description_lower FROM products",
    "webhook_endpoints": "SELECT id, url, secret FROM webhook_endpoints",
    "webhook_deliveries": "SELECT id, endpoint_id, event_id, status FROM webhook_deliveries",
    "webhook_attempts": "SELECT id, delivery_id, number FROM webhook_attempts",
    "access_tokens": "SELECT id, user_id, token_hash FROM access_tokens",
}
# Every index but the one 0025 adds (a token's children), which the release before had not.
SQLITE_INDEXES = (
    "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
    " AND name != 'ix_access_tokens_made_by_token_id' ORDER BY name"
)
OLD_CATALOG = """
INSERT INTO products (sku, name, description) VALUES ('A-1', 'Apple', 'RED'), ('B-2', 'Pear', ''),
    ('C-3', 'Plum', 'Dark');
DELETE FROM products WHERE sku = 'B-2';
INSERT INTO webhook_endpoints (url, events, secret, created_at, updated_at)
    VALUES ('https://example.com/hook', '["product.created"]', 'whsec_x', '2026-12-01',
    '2026-12-01');
INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload, status, attempts,
    created_at) VALUES (1, 'evt_1', 'product.created', '{}', 'failed', 1, '2026-12-01');
INSERT INTO webhook_attempts (delivery_id, number, started_at) VALUES (1, 1, '2026-12-01');
INSERT INTO users (email, password_hash, role, created_at) VALUES ('a@example.test', 'x', 'admin',
    '2026-12-01');
INSERT INTO access_tokens (user_id, name, token_hash, prefix, role, created_at)
    VALUES (1, 'ci', 'hash', 'pit_x', 'admin', '2026-12-01');
"""


@pytest.fixture
def sqlite_app(app, tmp_path):
    """An app on a SQLite database of its own, to migrate at will; yields (app, its file)."""
    from product_importer import create_app

    path = tmp_path / "product_importer.db"
    settings = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
        "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"timeout": 30, "check_same_thread": False}},
    }
    yield migratable(create_app(settings)), path
    app.extensions["celery"].set_default()


def sqlite_state(path) -> dict:
    """Every row the test wrote, table by table, and every index with its SQL."""
    with sqlite3.connect(path) as database:
        state = {
            table: database.execute(f"{query} ORDER BY id").fetchall()
            for table, query in SQLITE_ROWS.items()
        }
        state["indexes"] = database.execute(SQLITE_INDEXES).fetchall()
    return state


def test_an_existing_sqlite_catalog_keeps_its_rows_and_ids_and_never_gives_one_twice(sqlite_app):
    import flask_migrate

    migrating, path = sqlite_app
    with migrating.app_context():
        flask_migrate.upgrade(revision="0019")
        with sqlite3.connect(path) as database:
            database.executescript(OLD_CATALOG)
        before = sqlite_state(path)

        flask_migrate.upgrade(revision="0026")  # the later ones add indexes of their own

        assert sqlite_state(path) == before  # a webhook's deliveries were not cascaded away
        with sqlite3.connect(path) as database:
            database.execute("DELETE FROM products WHERE sku = 'C-3'")  # the newest, id 3
            database.execute("INSERT INTO products (sku, name) VALUES ('D-4', 'Fig')")
            assert database.execute("SELECT id FROM products WHERE sku = 'D-4'").fetchone() == (4,)
            database.execute("DELETE FROM products WHERE sku = 'D-4'")
            database.execute(
                "INSERT INTO products (sku, name, description) VALUES ('C-3', 'Plum', 'Dark')"
            )

        flask_migrate.downgrade(revision="0019")  # and back: rows, ids and indexes kept
        after = sqlite_state(path)
        apple = before.pop("products")[0]
        assert after.pop("products") == [apple, (5, "C-3", "Plum", "Dark", 1, "dark")]
        assert after == before
        flask_migrate.upgrade()


# --- 0022 and 0023: the error_code of jobs failed before the release, by their error's words -

OLD_FAILURES = [  # (status, error as an older release wrote it, the error_code it gets)
    (
        "failed",
        "1,204 of 5,000 rows read were invalid, more than the limit of 1%; the import stopped "
        "before changing the catalog. Download the rejected rows, fix them and upload again, "
        "or retry with a higher max_invalid.",
        "too_many_invalid",
    ),
    (
        "failed",
        "The file is binary, not a CSV (it holds NUL bytes). Export the products as CSV (for "
        "example 'CSV UTF-8' in Excel) and upload that file. The catalog was not changed.",
        "binary_file",
    ),
    (
        "failed",
        "A line is longer than 4,194,304 bytes: this does not look like a CSV file. Export "
        "the products as CSV and upload that file.",
        "line_too_long",
    ),
    (
        "failed",
        "The compressed file expands to more than 10,737,418,240 bytes. Split it into smaller "
        "files and import them one after the other.",
        "decompressed_too_large",
    ),
    (
        "failed",
        "The compressed file is damaged or incomplete (Compressed file ended before the "
        "end-of-stream marker was reached); the catalog was not changed. Compress the CSV "
        "again, or upload it uncompressed.",
        "damaged_gzip",
    ),
    (
        "failed",
        "The file holds no header row. Add the line 'sku,name,description' at the top and "
        "upload again.",
        "no_header",
    ),
    # not the file's bytes: a retry may work, they keep no code
    (
        "failed",
        "The worker running this import stopped responding for 300 seconds, 3 times. The "
        "catalog was not changed. Check that workers are running and have enough memory, then "
        "retry the import.",
        None,
    ),
    (
        "failed",
        "The import failed unexpectedly (OperationalError: server closed the connection); the "
        "catalog was not changed. Retry the import; if it fails again, ask the operator to "
        "check the worker log.",
        None,
    ),
    (
        "failed",
        "Missing required column: sku. The header found was: name. The first line must name "
        "the columns sku and name (description and active are optional), or map the file's "
        "columns to them and retry.",
        None,
    ),
    ("cancelled", "The import was cancelled; the catalog was not changed. Retry it.", None),
    ("completed", None, None),
]
NEW_IN_0023 = {"line_too_long", "decompressed_too_large", "damaged_gzip", "no_header"}


def run(statement: str, **params) -> list[tuple]:
    """Run one statement on the app's database (either kind), committed; return its rows."""
    from sqlalchemy import text

    from product_importer.extensions import db

    with db.engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return [tuple(row) for row in result] if result.returns_rows else []


def codes() -> list[str | None]:
    return [code for (code,) in run("SELECT error_code FROM import_jobs ORDER BY id")]


def add_old_job(status: str, error: str | None) -> None:
    run(
        "INSERT INTO import_jobs (filename, file_path, status, message, percent, bytes_total, "
        "bytes_processed, rows_processed, rows_invalid, created, updated, unchanged, error, "
        "warnings, created_at, attempts) VALUES ('old.csv', '/nowhere/old.csv', :status, "
        "'Import failed', 0, 10, 0, 0, 0, 0, 0, 0, :error, '[]', CURRENT_TIMESTAMP, 1)",
        status=status,
        error=error,
    )


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_jobs_failed_before_the_release_get_the_error_code_their_words_say(request, database):
    import flask_migrate
    import sqlalchemy as sa

    from product_importer.extensions import db

    migrating = scratch_app(request, database)
    marked = [code for _, _, code in OLD_FAILURES]
    with migrating.app_context():
        flask_migrate.upgrade(revision="0021")
        for status, error, _ in OLD_FAILURES:
            add_old_job(status, error)

        flask_migrate.upgrade()
        assert codes() == marked

        flask_migrate.downgrade(revision="0022")  # 0023's codes go, 0022's stay
        assert codes() == [None if code in NEW_IN_0023 else code for code in marked]

        flask_migrate.downgrade(revision="0021")
        columns = {column["name"] for column in sa.inspect(db.engine).get_columns("import_jobs")}
        assert "error_code" not in columns
        assert len(run("SELECT id FROM import_jobs")) == len(OLD_FAILURES)

        flask_migrate.upgrade()  # and up again: marked again
        assert codes() == marked


# --- 0024: SQLite lowers letter by letter as PostgreSQL does; its lower() indexes rebuilt -----

# Written as the release before 0024 lowered (Python's str.lower): ΟΔΟΣ-1 to οδος-1.
BEFORE_0024 = """
INSERT INTO users (email, password_hash, role, created_at) VALUES
    ('ΟΔΥΣΣΕΥΣ@example.test', 'x', 'admin', '2026-12-01'),
    ('İLKER@example.test', 'x', 'viewer', '2026-12-01');
INSERT INTO products (sku, name) VALUES ('ΟΔΟΣ-1', 'ΟΔΟΣ'), ('İ-2', 'İ'), ('A-3', 'Apple');
"""
BECOMES_ONE = "INSERT INTO products (sku, name) VALUES ('οδοσ-1', 'Road')"


def old_sqlite(path) -> sqlite3.Connection:
    """A connection to `path` whose lower() is the one of the release before 0024."""
    database = sqlite3.connect(path)
    database.create_function("lower", 1, str.lower, deterministic=True)
    return database


def index_problems(database: sqlite3.Connection) -> list[str]:
    """What SQLite's integrity check finds (an index entry its lower() would not make, say)."""
    return [problem for (problem,) in database.execute("PRAGMA integrity_check")]


def test_sqlite_indexes_on_lower_are_built_again_as_postgresql_lowers(sqlite_app, caplog):
    import flask_migrate

    from product_importer.accounts import service
    from product_importer.extensions import db

    migrating, path = sqlite_app
    with migrating.app_context():
        flask_migrate.upgrade(revision="0023")
        with closing(old_sqlite(path)) as database:
            database.executescript(BEFORE_0024)

        flask_migrate.upgrade()

        with closing(sqlite3.connect(path)) as database:
            database.create_function("lower", 1, lower_letters, deterministic=True)
            assert index_problems(database) == ["ok"]
        assert service.find_user(db.session, "οδυσσευσ@example.test").id == 1
        assert service.find_user(db.session, "ilker@example.test").id == 2
        found = run("SELECT id FROM products WHERE lower(sku) = lower('οδοσ-1')")
        assert found == [(1,)]

        flask_migrate.downgrade(revision="0023")  # built again as the release before lowers
        with closing(old_sqlite(path)) as database:
            assert index_problems(database) == ["ok"]
            database.execute(BECOMES_ONE)  # one product there, two here
            database.commit()

        with pytest.raises(SystemExit):  # Flask-Migrate logs the error, and exits
            flask_migrate.upgrade()
        (said,) = [r.message for r in caplog.records if r.message.startswith("Error: ")]
        assert said.startswith(
            "Error: These products are one now that SQLite ignores case as PostgreSQL does"
        )
        assert "1 'ΟΔΟΣ-1' and 4 'οδοσ-1'" in said
        assert said.endswith("then run `product-importer migrate` again.")

        run("DELETE FROM products WHERE id = 4")  # as the message says
        flask_migrate.upgrade()
        assert run("SELECT id FROM products WHERE lower(sku) = lower('ΟΔΟΣ-1')") == [(1,)]


def refusal(caplog) -> str:
    """The error the refused upgrade logged (Flask-Migrate logs it, and exits)."""
    (said,) = [r.message for r in caplog.records if r.message.startswith("Error: ")]
    return said


def test_a_refused_upgrade_leaves_every_index_as_the_release_before_built_it(sqlite_app, caplog):
    import flask_migrate

    migrating, path = sqlite_app
    with migrating.app_context():
        flask_migrate.upgrade(revision="0023")
        with closing(old_sqlite(path)) as database:
            database.executescript(BEFORE_0024)  # the accounts' index would be built anew
            database.execute(BECOMES_ONE)  # but two products become one
            database.commit()

        with pytest.raises(SystemExit):
            flask_migrate.upgrade()

        said = refusal(caplog)
        assert "These products are one now" in said and "1 'ΟΔΟΣ-1' and 4 'οδοσ-1'" in said
        assert "accounts" not in said
        with closing(old_sqlite(path)) as database:  # the release before can go on with it
            assert index_problems(database) == ["ok"]
        assert run("SELECT version_num FROM alembic_version") == [("0023",)]


# Python lowers the last Σ to ς, the first to σ: two accounts before 0024, one after.
TWO_ODYSSEUS = """
INSERT INTO users (email, password_hash, role, created_at) VALUES
    ('ΟΔΥΣΣΕΥΣ@example.test', 'x', 'admin', '2026-12-01'),
    ('JÖRG@example.test', 'x', 'viewer', '2026-12-01'),
    ('οδυσσευσ@example.test', 'x', 'viewer', '2026-12-02');
"""


def test_accounts_that_become_one_are_told_a_command_that_changes_an_email_safely(
    sqlite_app, caplog
):
    import flask_migrate

    from product_importer.accounts import service
    from product_importer.extensions import db

    migrating, path = sqlite_app
    with migrating.app_context():
        flask_migrate.upgrade(revision="0023")
        with closing(old_sqlite(path)) as database:
            database.executescript(TWO_ODYSSEUS)
        with pytest.raises(SystemExit):
            flask_migrate.upgrade()
        said = refusal(caplog)
        assert "These accounts are one now" in said
        assert "1 'ΟΔΥΣΣΕΥΣ@example.test' and 3 'οδυσσευσ@example.test'" in said

        command = re.search(r"`(python3 -c .+?)`", said).group(1)  # as an operator would
        command = command.replace(", N)", ", 1)").replace("another@example.com", "ulysses@x.test")
        subprocess.run(["bash", "-c", command], check=True)
        with closing(old_sqlite(path)) as database:  # the sqlite3 shell's UPDATE would fail
            assert index_problems(database) == ["ok"]

        flask_migrate.upgrade()
        with closing(sqlite3.connect(path)) as database:
            database.create_function("lower", 1, lower_letters, deterministic=True)
            assert index_problems(database) == ["ok"]
        assert service.find_user(db.session, "ULYSSES@x.test").id == 1
        assert service.find_user(db.session, "ΟΔΥΣΣΕΥΣ@example.test").id == 3
        assert service.find_user(db.session, "jörg@example.test").id == 2


# --- 0025: a token made with a token goes when it goes ----------------------------------------

TOKENS_BEFORE_0025 = [
    "INSERT INTO users (email, password_hash, role, created_at) "
    "VALUES ('a@example.test', 'x', 'admin', '2026-12-01')",
    "INSERT INTO access_tokens (user_id, name, token_hash, prefix, role, created_at) VALUES "
    "(1, 'parent', 'h1', 'pit_1', 'admin', '2026-12-01'), "
    "(1, 'child', 'h2', 'pit_2', 'admin', '2026-12-01'), "
    "(1, 'grandchild', 'h3', 'pit_3', 'admin', '2026-12-01'), "
    "(1, 'sibling', 'h4', 'pit_4', 'admin', '2026-12-01')",
]


def token_names() -> list[str]:
    return [name for (name,) in run("SELECT name FROM access_tokens ORDER BY id")]


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_deleting_a_token_deletes_the_tokens_made_with_it_in_the_database(request, database):
    import flask_migrate
    import sqlalchemy as sa

    from product_importer.extensions import db

    migrating = scratch_app(request, database)
    with migrating.app_context():
        flask_migrate.upgrade(revision="0024")
        for statement in TOKENS_BEFORE_0025:
            run(statement)
        indexes_before = sa.inspect(db.engine).get_indexes("access_tokens")

        flask_migrate.upgrade()
        assert run("SELECT made_by_token_id FROM access_tokens") == [(None,)] * 4  # no parent
        made_with = "UPDATE access_tokens SET made_by_token_id = :parent WHERE name = :name"
        run(made_with, parent=1, name="child")
        run(made_with, parent=2, name="grandchild")
        run("DELETE FROM access_tokens WHERE name = 'parent'")  # as a revocation deletes it
        assert token_names() == ["sibling"]  # the child went with it, and the grandchild

        flask_migrate.downgrade(revision="0024")
        columns = {column["name"] for column in sa.inspect(db.engine).get_columns("access_tokens")}
        assert "made_by_token_id" not in columns
        assert sa.inspect(db.engine).get_indexes("access_tokens") == indexes_before
        assert token_names() == ["sibling"]

        flask_migrate.upgrade()  # and up again
        assert run("SELECT name, made_by_token_id FROM access_tokens") == [("sibling", None)]


# --- 0026: products' text in NFC --------------------------------------------------------------

# As the release before 0026 kept them: (sku, name, description); NFD writes é as e + U+0301.
BEFORE_0026 = [
    (NFD("Café-1"), NFD("Café crème"), NFD("Crème brûlée")),
    ("Plain-2", NFD("Noël"), ""),
    ("Thé-3", "Thé vert", "already NFC"),
    (NFD("THÉ-3"), NFD("Thé noir"), "the other form of a SKU there: kept as it is"),
    ("\u212b-5", "Ångström sign", ""),  # not NFC: Å as the Angstrom sign
    (NFD("Å-5"), "A and a ring above", ""),  # becomes the same SKU: kept as it is
]
AFTER_0026 = [
    ("Café-1", "Café crème", "Crème brûlée"),
    ("Plain-2", "Noël", ""),
    ("Thé-3", "Thé vert", "already NFC"),
    (NFD("THÉ-3"), "Thé noir", "the other form of a SKU there: kept as it is"),
    ("Å-5", "Ångström sign", ""),
    (NFD("Å-5"), "A and a ring above", ""),
]


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_products_text_goes_to_nfc_but_a_sku_another_product_has_in_nfc(request, database, caplog):
    import flask_migrate

    migrating = scratch_app(request, database)
    insert = "INSERT INTO products (sku, name, description) VALUES (:sku, :name, :description)"
    values = "SELECT sku, name, description FROM products ORDER BY id"
    with migrating.app_context():
        flask_migrate.upgrade(revision="0025")
        for sku, name, description in BEFORE_0026:
            run(insert, sku=sku, name=name, description=description)
        stamps = run("SELECT id, updated_at FROM products ORDER BY id")
        caplog.set_level(logging.INFO, logger="product_importer.migrations")

        flask_migrate.upgrade()
        assert run(values) == AFTER_0026
        assert run("SELECT id, updated_at FROM products ORDER BY id") == stamps
        said = [r.getMessage() for r in caplog.records if r.name == "product_importer.migrations"]
        assert said[0] == "Text in NFC: 4 products normalised."
        assert said[1].startswith("2 products keep their SKU as it was")
        assert f'id 4 "{NFD("THÉ-3")}"; id 6 "{NFD("Å-5")}"' in said[1]
        assert "Change the SKU of one of each pair, or delete it" in said[1]
        found = run("SELECT sku FROM products WHERE lower(sku) = lower(:sku)", sku="café-1")
        assert found == [("Café-1",)]

        flask_migrate.downgrade(revision="0025")  # changes nothing
        assert run(values) == AFTER_0026
        flask_migrate.upgrade()  # and up again: nothing more to do
        assert run(values) == AFTER_0026


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_the_change_records_text_goes_to_nfc_so_an_undo_puts_back_nfc(request, database):
    import flask_migrate

    migrating = scratch_app(request, database)
    record = (
        "INSERT INTO import_changes (job_id, rn, kind, product_id, sku, name, description, "
        "active, before_sku, before_name, before_description, before_active) VALUES "
        "(1, :rn, :kind, 1, :sku, :name, 'Plain', true, :before, :before_name, NULL, :active)"
    )
    recorded = (
        "SELECT sku, name, description, before_sku, before_name, before_description "
        "FROM import_changes ORDER BY rn"
    )
    with migrating.app_context():
        flask_migrate.upgrade(revision="0025")
        add_old_job("completed", None)
        updated = {"sku": "Café-1", "name": "New name", "before": NFD("Café-1")}
        run(record, rn=1, kind="updated", before_name=NFD("Noël"), active=True, **updated)
        created = {"sku": NFD("Thé-2"), "name": NFD("Thé"), "before": None}
        run(record, rn=2, kind="created", before_name=None, active=None, **created)

        flask_migrate.upgrade()
        assert run(recorded) == [
            ("Café-1", "New name", "Plain", "Café-1", "Noël", None),
            ("Thé-2", "Thé", "Plain", None, None, None),
        ]


def test_on_postgresql_the_derived_columns_follow_and_totals_are_counted_again(migrated_app):
    import flask_migrate

    with migrated_app.app_context():
        flask_migrate.upgrade(revision="0025")
        for sku, name, description in BEFORE_0026[:2]:
            sql(
                "INSERT INTO products (sku, name, description) VALUES (%(s)s, %(n)s, %(d)s)",
                s=sku,
                n=name,
                d=description,
            )
        logged = sql("SELECT count(*) FROM product_edit_log")

        flask_migrate.upgrade()
        assert sql("SELECT description_lower FROM products ORDER BY id") == [
            ("crème brûlée",),
            ("",),
        ]
        hashed = "SELECT row_hash = hashtextextended(%(v)s, 0) FROM products WHERE id = 1"
        assert sql(hashed, v="Café-1\x1fCafé crème\x1fCrème brûlée") == [(True,)]
        assert sql("SELECT count(*) FROM product_edit_log") == logged  # a bulk change
        version, recount_from = sql("SELECT version, recount_from FROM products_version")[0]
        assert recount_from == version


# --- 0028: accounts' emails in NFC ------------------------------------------------------------

# (email as the release before kept it, what it is after 0028)
EMAILS_0028 = [
    (NFD("jörg@example.test"), "jörg@example.test"),
    ("ana@example.test", "ana@example.test"),
    (NFD("Zoë@example.test"), NFD("Zoë@example.test")),  # in NFC, the next one's: left
    ("zoë@example.test", "zoë@example.test"),
    # U+0958 is two letters in NFC: 254 characters would become 255, past the column
    ("\u0958" * 241 + "@example.test", "\u0958" * 241 + "@example.test"),
]


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_emails_go_to_nfc_with_their_audit_entries_but_one_another_account_has(
    request, database, caplog
):
    import flask_migrate

    migrating = scratch_app(request, database)
    add_user = (
        "INSERT INTO users (email, password_hash, role, created_at) "
        "VALUES (:email, 'x', 'viewer', '2026-12-01')"
    )
    add_entry = (
        "INSERT INTO audit_log (at, actor_id, actor_email, action) "
        "VALUES ('2026-12-01', :id, :email, 'auth.signed_in')"
    )
    with migrating.app_context():
        flask_migrate.upgrade(revision="0027")
        for number, (email, _) in enumerate(EMAILS_0028, start=1):
            run(add_user, email=email)
            run(add_entry, id=number, email=email)
        caplog.set_level(logging.INFO, logger="product_importer.migrations")

        flask_migrate.upgrade()

        after = [email for _, email in EMAILS_0028]
        assert [email for (email,) in run("SELECT email FROM users ORDER BY id")] == after
        entries = run("SELECT actor_email FROM audit_log ORDER BY id")
        assert [email for (email,) in entries] == after
        said = [r.getMessage() for r in caplog.records if r.name == "product_importer.migrations"]
        assert "Emails in NFC: 1 accounts normalised." in said
        left = [line for line in said if "keep their email as it was" in line]
        assert len(left) == 1 and f"id 3 {NFD('Zoë@example.test')!r}" in left[0]
        assert "(in NFC, the email of id 4)" in left[0]
        assert "id 5 " in left[0] and "(in NFC, longer than 254 characters)" in left[0]


def test_each_migration_is_named_by_one_line_in_the_upgrade_log():
    # `make run` on a fresh machine logs every migration it runs: 0005's name went on to a
    # second line, which began with no time and no logger, as if another program had spoken.
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(schema.MIGRATIONS)
    names = {script.revision: script.doc for script in scripts.walk_revisions()}
    assert len(names) > 20
    assert [revision for revision, name in names.items() if "\n" in name] == []


def test_the_latest_migration_the_commands_look_for_is_alembics_head():
    # Commands compare the database's revision with schema.head(), read from the files' names,
    # and load Alembic only when they differ: a file named out of order would leave a database
    # behind, every command taking it for up to date.
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(schema.MIGRATIONS)
    assert scripts.get_heads() == [schema.head()]
    assert int(schema.head()) == len(list(scripts.walk_revisions()))


def test_a_command_on_an_up_to_date_database_loads_no_alembic_and_one_behind_is_migrated(
    migrated_app,
):
    check = (
        "import sys; from product_importer import create_app, schema; app = create_app(); "
        "app.app_context().push(); schema.upgrade(); "
        "print(schema.applied(), 'alembic' in sys.modules)"
    )
    env = {**os.environ, "DATABASE_URL": _database_url(SCRATCH_DB)}

    def start() -> str:
        done = subprocess.run(
            [str(BIN / "python"), "-c", check], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    behind = f"{int(schema.head()) - 1:04}"
    with migrated_app.app_context():
        schema.migrations().upgrade(revision=behind)
    assert start() == f"['{schema.head()}'] True"  # one behind: migrated, by Alembic
    assert start() == f"['{schema.head()}'] False"  # up to date: Alembic not even loaded


def test_processes_migrating_a_new_database_at_once_all_start(app):
    # Two web machines starting on a new database: each ran every migration, and the one that
    # came second failed ("relation already exists", or a duplicate alembic_version row).
    name = f"{TEST_DB}_migrating_at_once"
    _recreate_database(name)
    env = os.environ | {"DATABASE_URL": _database_url(name)}
    try:
        commands = [
            subprocess.Popen(
                [str(BIN / "product-importer"), "migrate"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            for _ in range(3)
        ]
        said = [command.communicate(timeout=300)[0] for command in commands]
        assert [command.returncode for command in commands] == [0, 0, 0], said
        with psycopg.connect(_database_url(name)) as conn:
            versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        assert versions == [(schema.head(),)]
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
