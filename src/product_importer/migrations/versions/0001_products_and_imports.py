"""Products, import jobs and rejected rows.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        "products",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("sku", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", Stamp, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", Stamp, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("uq_products_lower_sku", "products", [sa.text("lower(sku)")], unique=True)
    op.create_index("ix_products_updated_at_id", "products", ["updated_at", "id"])
    op.create_table(
        "import_jobs",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("file_path", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("phase", sa.String(16)),
        sa.Column("message", sa.String(255), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        *[
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in (
                "bytes_total",
                "bytes_processed",
                "rows_processed",
                "rows_invalid",
                "created",
                "updated",
                "unchanged",
            )
        ],
        sa.Column("rows_per_second", sa.Float()),
        sa.Column("eta_seconds", sa.Float()),
        sa.Column("error", sa.Text()),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("started_at", Stamp),
        sa.Column("finished_at", Stamp),
        sa.Column("heartbeat_at", Stamp),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("worker", sa.String(255)),
        sa.Column("db_pid", sa.Integer()),
        sa.Column(
            "retry_of_id", BigId, sa.ForeignKey("import_jobs.id", name="fk_import_jobs_retry_of_id")
        ),
        sa.Column("file_removed_at", Stamp),
    )
    op.create_index("ix_import_jobs_status_id", "import_jobs", ["status", "id"])
    op.create_table(
        "import_rejected_rows",
        sa.Column("id", BigId, primary_key=True),
        sa.Column(
            "job_id", BigId, sa.ForeignKey("import_jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("sku", sa.Text()),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index(
        "ix_import_rejected_rows_job_id_line", "import_rejected_rows", ["job_id", "line"]
    )


def downgrade():
    op.drop_table("import_rejected_rows")
    op.drop_table("import_jobs")
    op.drop_table("products")
