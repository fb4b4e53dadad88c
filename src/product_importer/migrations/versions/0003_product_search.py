"""Indexes for the product list filters and sorts, and a catalog version for cached totals.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Every index here slows the import's INSERT of new products, so only those the list needs
(measured on 500K new products, 2 CPUs; bench/list_bench.py --import-rounds):
- trigram GIN indexes on sku and name (PostgreSQL), so that a term that matches few products
  (one SKU, say) is found in ~15 ms instead of a ~300 ms scan;
- (lower(name), id) for sort=name, and (updated_at, id) of inactive products for active=false.
With all of them an import of 466,693 new products took ~30 s instead of ~13 s, most of it
for the trigram indexes (sku ~10 s, name ~3 s). No trigram index on description: it added
~40 s more. Description and q filters walk the sort order instead: fast for common words,
~1 s for a rare phrase.
A statement-level trigger moves a catalog version on whenever products are added or removed
(PostgreSQL), so the service counts the whole catalog again only after it changed.
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
