"""When a plan was applied, beside who applied it: a plan applied from the command line says so.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04

The command line acts as no account (`import FILE` leaves `created_by` empty), so a plan it
applies has no `applied_by`; with `applied_at` set it reads "applied from the command line",
and its end is no one's: not the uploader's in its webhook, nor against the uploader's queue
limit. One empty column, no rewrite. A plan applied before the release has no `applied_at`.
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("import_jobs") as batch:
        batch.add_column(sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("import_jobs") as batch:
        batch.drop_column("applied_at")
