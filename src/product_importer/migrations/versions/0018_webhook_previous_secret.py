"""A webhook's previous secret, which signs beside the new one for a while after a rotation.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04

Rotating a secret (`POST /api/webhooks/<id>/rotate-secret`) keeps the old one here until
`previous_secret_until`: each request meanwhile carries a signature by each secret (Standard
Webhooks allows several in `webhook-signature`), so a receiver can switch to the new secret
without refusing a single event.
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(sa.Column("previous_secret", sa.String(255), nullable=True))
        batch.add_column(
            sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade():
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("previous_secret_until")
        batch.drop_column("previous_secret")
