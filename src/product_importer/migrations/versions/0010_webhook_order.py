"""An index of each endpoint's pending deliveries, for sending them in order.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

A delivery is sent only once the endpoint's earlier deliveries have left `pending` (or it has
waited WEBHOOK_ORDER_WAIT_SECONDS); asking whether an earlier one is pending looks in this
partial index, whose size is the pending deliveries, not the 30 days of finished ones.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_webhook_deliveries_pending_endpoint",
        "webhook_deliveries",
        ["endpoint_id", "id"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )


def downgrade():
    op.drop_index("ix_webhook_deliveries_pending_endpoint", table_name="webhook_deliveries")
