"""The change record's rows no longer check their job with a foreign key.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-03

A bulk import writes the record of 233,327 updates (half of a 500K catalog) in about 2 s, and
half of that was the foreign key's check of `import_jobs` for every row (measured with psql:
1.8-2.0 s with it, 0.8-0.9 s without). Only the import code writes these rows, with its own
job's id, and the app never deletes a job; the upkeep deletes the rows by their job
(`plans.remove_old_changes`), as the cascade did.

The helpers of a bulk import now write the record straight into `import_changes`, not through
the unlogged table `import_record`: one left by an import that died is dropped here.
"""

from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

FOREIGN_KEY = "fk_import_changes_job_id_import_jobs"


def upgrade():
    with op.batch_alter_table("import_changes") as batch:
        batch.drop_constraint(FOREIGN_KEY, type_="foreignkey")
    op.execute("DROP TABLE IF EXISTS import_record")


def downgrade():
    op.execute("DELETE FROM import_changes WHERE job_id NOT IN (SELECT id FROM import_jobs)")
    with op.batch_alter_table("import_changes") as batch:
        batch.create_foreign_key(FOREIGN_KEY, "import_jobs", ["job_id"], ["id"], ondelete="CASCADE")
