"""Totals of what workers count (webhook attempts and their latency), for /metrics.

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-02

Workers serve no port of their own: each adds what it counted to these rows every second,
and any web process answers /metrics from them (`metrics/pushed.py`).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "metric_totals",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("labels", sa.String(512), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", "labels", name=op.f("pk_metric_totals")),
    )


def downgrade():
    op.drop_table("metric_totals")
