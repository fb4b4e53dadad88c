"""Who applied a plan, beside who uploaded it: the actor of the import's end and its webhook.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04

A plan is often uploaded by one person and applied by another (an admin reviewing an editor's
file): `import.completed` and `import.failed` name the one who applied it, as the audit log's
`import.applied` does. Null for a job that was not a plan, or a plan applied from the command
line.
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("import_jobs") as batch:
        batch.add_column(
            sa.Column("applied_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"))
        )
        batch.add_column(sa.Column("applied_by", sa.String(254), nullable=True))


def downgrade():
    with op.batch_alter_table("import_jobs") as batch:
        batch.drop_column("applied_by")
        batch.drop_column("applied_by_id")
