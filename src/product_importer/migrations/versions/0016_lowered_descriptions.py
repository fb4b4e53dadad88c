"""Descriptions kept lowered beside themselves, for the description filter's index and recheck.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04

`ILIKE` lowers the whole description of every row it tests (PostgreSQL's `lower()`, then
`LIKE`), and a trigram index hands its candidates to that test: counting 'church' (125,052 of
466,693 descriptions) spent half its time lowering them. `products.description_lower` is
`lower(description)`, a stored generated column (always in step with the description, written
by PostgreSQL in every INSERT and UPDATE), and the description filter asks it for
`LIKE lower('%term%')`: the same match as `description ILIKE '%term%'`, which is exactly that
on an encoding of several bytes a character. Measured with psql on the 500K catalog, one half
in one process: 'church' 83 to 41 ms, 'e. t' (whose candidates are 61% of the rows) 193 to
97 ms. It costs the table ~50% more (110 to 165 MB at 500K products).

The trigram index halves move from `description` to `description_lower` (the same trigrams:
pg_trgm lowers what it indexes), and so does the statistics target of 400 (migration 0015):
the planner estimates the filter from `description_lower` now; nothing filters on
`description` itself, so ANALYZE keeps only a small sample of it (target 10: its width, which
the planner needs to size sorts and hashes of whole rows). SQLite, where `ILIKE` is `lower()`
then `LIKE` as well, gets the column too (virtual), so that the filter is written once.

Upgrading rewrites the products table in one transaction: the catalog can be neither read
nor written meanwhile (how long: the README, "Upgrading"). The two index halves are built
after it, without holding the catalog.
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

HALVES = (0, 1)


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        op.execute(
            "ALTER TABLE products ADD COLUMN description_lower TEXT "
            "GENERATED ALWAYS AS (lower(description)) VIRTUAL"
        )
        return
    # The old halves go first: adding a stored column rewrites the table and rebuilds every
    # index on it (~2 min of the upgrade at 5M products with them there).
    for half in HALVES:
        op.execute(f"DROP INDEX IF EXISTS ix_products_description_trgm_{half}")
    op.execute("SET maintenance_work_mem = '1GB'")  # for the session: the builds below too
    op.execute(
        "ALTER TABLE products ADD COLUMN IF NOT EXISTS description_lower text "
        "GENERATED ALWAYS AS (lower(description)) STORED"
    )
    op.execute(
        "ALTER TABLE products ALTER COLUMN description_lower SET STATISTICS 400, "
        "ALTER COLUMN description SET STATISTICS 10"
    )
    # The new halves are built once the column is committed, without holding the catalog
    # (`CONCURRENTLY`): meanwhile a description filter reads the table. An earlier try that
    # failed here left the column (hence IF NOT EXISTS above) and may have left an invalid
    # index: dropped first.
    with op.get_context().autocommit_block():
        for half in HALVES:
            name = f"ix_products_description_lower_trgm_{half}"
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(
                f"CREATE INDEX CONCURRENTLY {name} ON products "
                f"USING gin (description_lower gin_trgm_ops) WHERE (id % 2) = {half}"
            )
    op.execute("ANALYZE products")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        op.execute("ALTER TABLE products DROP COLUMN description_lower")
        return
    op.execute("SET maintenance_work_mem = '1GB'")
    op.execute("ALTER TABLE products ALTER COLUMN description SET STATISTICS 400")
    op.execute("ALTER TABLE products DROP COLUMN description_lower")  # and its indexes
    for half in HALVES:
        op.execute(
            f"CREATE INDEX ix_products_description_trgm_{half} ON products "
            f"USING gin (description gin_trgm_ops) WHERE (id % 2) = {half}"
        )
    op.execute("ANALYZE products")
