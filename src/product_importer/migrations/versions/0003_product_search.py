"""Indexes for the product list filters and sorts, and a catalog version for cached totals.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Every index here slows the import's INSERT of new products, so only those the list needs:
- trigram GIN indexes on sku and name (PostgreSQL): case-insensitive substring filters that
  match few products are answered from the index instead of a scan of the whole table;
- (lower(name), id) for sort=name, and (updated_at, id) of inactive products for active=false;
- no trigram index on description: on 500K products it made an import about three times as
  slow (see bench/list_bench.py); description and q filters scan in the sort order instead.
A statement-level trigger counts changes to the set of products (PostgreSQL), so the service
can reuse the exact catalog total until it changes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

VERSION_FUNCTION = """
CREATE FUNCTION products_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE products_version SET version = version + 1;
    RETURN NULL;
END $$
"""


def upgrade():
    op.create_index("ix_products_lower_name_id", "products", [sa.text("lower(name)"), "id"])
    op.create_index(
        "ix_products_inactive_updated_at_id",
        "products",
        ["updated_at", "id"],
        postgresql_where=sa.text("NOT active"),
        sqlite_where=sa.text("NOT active"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()


def _upgrade_postgresql():
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in ("sku", "name"):
        op.create_index(
            f"ix_products_{column}_trgm",
            "products",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )
    # The version starts from the clock, so a table made again never repeats a version that
    # a running process may still have a total cached for.
    op.execute("CREATE TABLE products_version (version bigint NOT NULL)")
    op.execute(
        "INSERT INTO products_version "
        "VALUES ((extract(epoch FROM clock_timestamp()) * 1000000)::bigint)"
    )
    op.execute(VERSION_FUNCTION)
    # Statement-level: one UPDATE per statement, however many rows an import inserts.
    op.execute(
        "CREATE TRIGGER products_version_rows AFTER INSERT OR DELETE ON products "
        "FOR EACH STATEMENT EXECUTE FUNCTION products_bump_version()"
    )
    op.execute(
        "CREATE TRIGGER products_version_truncate AFTER TRUNCATE ON products "
        "FOR EACH STATEMENT EXECUTE FUNCTION products_bump_version()"
    )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER products_version_truncate ON products")
        op.execute("DROP TRIGGER products_version_rows ON products")
        op.execute("DROP FUNCTION products_bump_version()")
        op.execute("DROP TABLE products_version")
        op.drop_index("ix_products_name_trgm", "products")
        op.drop_index("ix_products_sku_trgm", "products")
    op.drop_index("ix_products_inactive_updated_at_id", "products")
    op.drop_index("ix_products_lower_name_id", "products")
