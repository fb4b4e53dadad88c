"""Trigram index on descriptions, row hashes of products; superseded rows, search-index state.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Description and q filters were a sequential scan with ILIKE over every description; a
trigram GIN index on description finds a word from the index instead (bench/list_bench.py,
description and q filters, p95 for rare, 2% and 30% words: 14-32 ms at 500K products on a
quiet machine, 20-76 ms at 5M; a scan took 0.5-1 s at 500K). Measured on 466,693 products
(2 CPUs): one index builds in ~10 s (~58 MB); at 5M products in ~165 s (549 MB). So it
comes in two halves by the parity of the id, which two connections build side by side, and a
statistics object on the parity tells the planner each half holds half the products. This
migration builds both on the existing catalog once. Kept row by row it would make a large
import several times slower, so an import that writes most of the catalog builds the catalog
anew without it and builds it after its commit (`imports/bulk.py`); the job's `search_index`
says "refreshing" meanwhile, then "ready". `rows_superseded` counts valid rows whose SKU
repeats later in the file.

`products.row_hash` (a stored generated column, a 64-bit hash of sku, name and description)
lets an import find the rows it changes by joining hashes instead of every value: the hash table
of that join is a quarter of the size. Adding it rewrites the products table once.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "import_jobs",
        sa.Column("rows_superseded", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.add_column("import_jobs", sa.Column("search_index", sa.String(16), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # the same expression as the import's staging table (imports/postgres_stage.py)
        op.execute(
            "ALTER TABLE products ADD COLUMN row_hash bigint GENERATED ALWAYS AS "
            "(hashtextextended(sku || E'\\x1f' || name || E'\\x1f' || description, 0)) STORED"
        )
        op.execute("SET maintenance_work_mem = '1GB'")
        # Two halves (by the parity of the id), so that two connections can build them side
        # by side; the products service asks for each half (`Filters.conditions`), and the
        # statistics of the parity tell the planner each half is half the catalog.
        for half in (0, 1):
            op.create_index(
                f"ix_products_description_trgm_{half}",
                "products",
                ["description"],
                postgresql_using="gin",
                postgresql_ops={"description": "gin_trgm_ops"},
                postgresql_where=sa.text(f"(id % 2) = {half}"),
            )
        op.execute("CREATE STATISTICS products_id_parity ON ((id % 2)) FROM products")
        op.execute("ANALYZE products")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS products_id_parity")
        for half in (0, 1):
            op.drop_index(f"ix_products_description_trgm_{half}", "products")
        op.drop_column("products", "row_hash")
    op.drop_column("import_jobs", "search_index")
    op.drop_column("import_jobs", "rows_superseded")
