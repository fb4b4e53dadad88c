"""Migration 0016 on a catalog that has products: up, down and up again, nothing lost."""

import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL, TEST_DB, _database_url, _recreate_database

SCRATCH_DB = f"{TEST_DB}_migrations"
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
    yield create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": _database_url(SCRATCH_DB)})
    app.extensions["celery"].set_default()  # create_app made the scratch app's Celery current
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DB}" WITH (FORCE)')


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
