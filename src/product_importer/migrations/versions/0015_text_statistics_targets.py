"""A finer histogram of sku, name and description for the planner (statistics target 400).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

The planner estimates how many products a substring filter matches (`ILIKE '%word%'`) by
trying the pattern on the column's histogram. With the default target (100 entries), a word in
2% of 4.67M descriptions was estimated anywhere from 467 to 282,894 matches (93,320 in truth)
from one ANALYZE to the next; at the low end the list rechecked and sorted every match
(~425 ms) instead of walking the `updated_at` index to the first 50 (~5 ms). With 400 entries
six ANALYZEs in a row estimated 81,870-140,367 for the same word, and a 2% sku or name term
held as steady. ANALYZE then reads 120,000 sampled rows, not 30,000: 1.5 s instead of 0.35 s
at 5M products, 1.3-1.4 s instead of 0.3 s at 500K (bench/import_bench.py: +0.15 R_bare). A
bulk import gives its new table the same targets (`imports/bulk.py`).

A bulk import also left the parity's statistics object (migration 0006) under the name LIKE
gave its copy (`products_build_expr_stat`, then `..._stat1`); it now renames it back, and this
migration renames one left so.
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

COLUMNS = ("sku", "name", "description")
TARGET = 400


# The statistics object of the parity under the name a bulk import's copy had (one at most).
RENAME_PARITY_STATISTICS = """
DO $$
DECLARE copied name;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_statistic_ext WHERE stxname = 'products_id_parity') THEN
        SELECT stxname INTO copied FROM pg_statistic_ext
        WHERE stxrelid = 'products'::regclass
          AND pg_get_statisticsobjdef_columns(oid) = '(id % 2::bigint)'
        ORDER BY oid LIMIT 1;
        IF copied IS NOT NULL THEN
            EXECUTE format('ALTER STATISTICS %I RENAME TO products_id_parity', copied);
        END IF;
    END IF;
END $$
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(RENAME_PARITY_STATISTICS)
        _set_targets(TARGET)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        _set_targets(-1)  # back to default_statistics_target


def _set_targets(target: int) -> None:
    changes = ", ".join(f"ALTER COLUMN {column} SET STATISTICS {target}" for column in COLUMNS)
    op.execute(f"ALTER TABLE products {changes}")
    op.execute("ANALYZE products")
