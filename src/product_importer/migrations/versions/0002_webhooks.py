"""Webhook endpoints and their deliveries.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("description", sa.String(255), nullable=False, server_default=""),
        sa.Column("secret", sa.String(255), nullable=False),
        sa.Column("disabled_reason", sa.Text()),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BigId, primary_key=True),
        sa.Column(
            "endpoint_id",
            BigId,
            sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("response_time_ms", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("next_attempt_at", Stamp),
        sa.Column("locked_until", Stamp),
        sa.Column("queued_until", Stamp),
        sa.Column("finished_at", Stamp),
    )
    op.create_index(
        "ix_webhook_deliveries_status_next_attempt_at",
        "webhook_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_id_id", "webhook_deliveries", ["endpoint_id", "id"]
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", BigId, primary_key=True),
        sa.Column(
            "delivery_id",
            BigId,
            sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", Stamp, nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("response_time_ms", sa.Integer()),
        sa.Column("error", sa.Text()),
    )
    op.create_index(
        "ix_webhook_attempts_delivery_id_number", "webhook_attempts", ["delivery_id", "number"]
    )


def downgrade():
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
