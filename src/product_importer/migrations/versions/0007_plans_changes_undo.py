"""Plans, change records, undo and guards: the job's new fields and the change record table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

`import_changes` holds, per import (or plan), one row per product it creates or updates: the
values it writes and, for an update, the values before (what an undo puts back). It is
written set-based by the merge (INSERT .. SELECT from the staging tables) and removed by the
maintenance loop once older than IMPORT_UNDO_DAYS. Rows are keyed by the line number of the
file (`rn`), unique within one import, which gives the change list a stable order.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    add = op.add_column
    add("import_jobs", sa.Column("kind", sa.String(8), nullable=False, server_default="import"))
    add("import_jobs", sa.Column("plan", sa.Boolean(), nullable=False, server_default=sa.false()))
    for name in ("undo_of", "undone_by", "duplicate_of"):
        add("import_jobs", sa.Column(name, sa.BigInteger(), nullable=True))
    add("import_jobs", sa.Column("conflicts", sa.BigInteger(), nullable=False, server_default="0"))
    add("import_jobs", sa.Column("header", sa.JSON(), nullable=True))
    add("import_jobs", sa.Column("sha256", sa.String(64), nullable=True))
    add("import_jobs", sa.Column("max_invalid", sa.String(24), nullable=True))
    add("import_jobs", sa.Column("columns", sa.JSON(), nullable=True))
    op.create_index("ix_import_jobs_sha256", "import_jobs", ["sha256"])
    op.create_index("ix_import_jobs_undo_of", "import_jobs", ["undo_of"])
    op.create_table(
        "import_changes",
        sa.Column(
            "job_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("import_jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("rn", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=True),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("before_sku", sa.Text(), nullable=True),
        sa.Column("before_name", sa.Text(), nullable=True),
        sa.Column("before_description", sa.Text(), nullable=True),
        sa.Column("before_active", sa.Boolean(), nullable=True),
        sa.Column("before_updated_at", sa.DateTime(timezone=True), nullable=True),
        # the change list pages through one kind of one import in file order
        sa.PrimaryKeyConstraint("job_id", "kind", "rn"),
    )


def downgrade():
    op.drop_table("import_changes")
    op.drop_index("ix_import_jobs_undo_of", "import_jobs")
    op.drop_index("ix_import_jobs_sha256", "import_jobs")
    for name in (
        "columns", "max_invalid", "sha256", "header", "conflicts",
        "duplicate_of", "undone_by", "undo_of", "plan", "kind",
    ):  # fmt: skip
        op.drop_column("import_jobs", name)
