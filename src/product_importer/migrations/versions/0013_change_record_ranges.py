"""A leaner change record: created products as a range of ids, descriptions only where changed.

Revision ID: 0013
Revises: 0007
Create Date: 2026-12-02

Writing a row per created product (its values again, beside the catalog's) doubled the cost of
a fresh import. An import now takes the ids of its new products as one block
(`import_jobs.created_from` .. `created_to`) and stamps every product it writes with one time
(`written_at`); the products it created are those of that block with that `created_at`, and a
product still holds what the import wrote while its `updated_at` is that time. Rows of
`import_changes` remain for updated products (with the values before) and for a plan's
creations (nothing is written yet); `description` and `before_description` of an update are
null when the description did not change (the bulk of the bytes).

Existing records are converted: the block and the stamp of each import are read from its rows
and the products that still hold what it wrote, then its `created` rows are dropped.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0007"
branch_labels = None
depends_on = None

RANGES = """
UPDATE import_jobs SET
    created_from = (SELECT min(product_id) FROM import_changes AS c
                    WHERE c.job_id = import_jobs.id AND c.kind = 'created'),
    created_to = (SELECT max(product_id) FROM import_changes AS c
                  WHERE c.job_id = import_jobs.id AND c.kind = 'created')
WHERE id IN (SELECT job_id FROM import_changes WHERE kind = 'created')
"""
# The products an import wrote that still hold its values all carry its stamp.
STAMPS = """
UPDATE import_jobs SET written_at = (
    SELECT max(p.updated_at) FROM import_changes AS c JOIN products AS p ON p.id = c.product_id
    WHERE c.job_id = import_jobs.id AND c.kind IN ('created', 'updated')
      AND p.sku = c.sku AND p.name = c.name AND p.description = c.description
      AND p.active = c.active)
WHERE id IN (SELECT job_id FROM import_changes WHERE kind IN ('created', 'updated'))
"""
# Back to a row per created product (the products of the block that are still there).
CREATED_ROWS = """
INSERT INTO import_changes (job_id, rn, kind, product_id, sku, name, description, active)
SELECT j.id, p.id, 'created', p.id, p.sku, p.name, p.description, p.active
FROM import_jobs AS j JOIN products AS p
  ON p.id BETWEEN j.created_from AND j.created_to AND p.created_at = j.written_at
"""


def upgrade():
    add = op.add_column
    add("import_jobs", sa.Column("created_from", sa.BigInteger(), nullable=True))
    add("import_jobs", sa.Column("created_to", sa.BigInteger(), nullable=True))
    add("import_jobs", sa.Column("written_at", sa.DateTime(timezone=True), nullable=True))
    add("import_jobs", sa.Column("deleted", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("import_changes") as batch:
        batch.alter_column("description", existing_type=sa.Text(), nullable=True)
    op.execute(RANGES)
    op.execute(STAMPS)
    op.execute("DELETE FROM import_changes WHERE kind = 'created'")


def downgrade():
    op.execute(CREATED_ROWS)
    op.execute(
        "UPDATE import_changes SET description = (SELECT description FROM products "
        "WHERE products.id = import_changes.product_id) WHERE description IS NULL"
    )
    op.execute("DELETE FROM import_changes WHERE description IS NULL")
    with op.batch_alter_table("import_changes") as batch:
        batch.alter_column("description", existing_type=sa.Text(), nullable=False)
    for name in ("deleted", "written_at", "created_to", "created_from"):
        op.drop_column("import_jobs", name)
