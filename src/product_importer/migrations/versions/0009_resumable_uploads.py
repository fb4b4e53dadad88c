"""Resumable (tus) uploads, and the upload an import reads.

Revision ID: 0009
Revises: 0011
Create Date: 2026-12-02

`uploads` holds one row per tus upload (its bytes are in the upload folder; the offset is the
file's size). `import_jobs.upload_id` names the upload a job reads, which it may start reading
while the bytes still arrive; it applies only once the upload is complete.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0011"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_id", BigId, nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("file_path", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_uploads_expires_at", "uploads", ["expires_at"])
    with op.batch_alter_table("import_jobs") as batch:
        batch.add_column(sa.Column("upload_id", sa.String(32), nullable=True))


def downgrade():
    with op.batch_alter_table("import_jobs") as batch:
        batch.drop_column("upload_id")
    op.drop_index("ix_uploads_expires_at", table_name="uploads")
    op.drop_table("uploads")
