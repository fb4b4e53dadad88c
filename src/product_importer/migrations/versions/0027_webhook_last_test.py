"""An index of each endpoint's tests (`ping` deliveries), for its `last_test`.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05

The Webhook JSON's `last_test` (the Webhooks page's "Last test") is the endpoint's latest
finished ping. Found through the endpoint's deliveries, newest first, it would read every
delivery since that test: the millions a busy webhook keeps in 30 days when it was tested a
month ago, each time the page refreshes its list. This partial index holds the pings alone.
PostgreSQL builds it without holding up the deliveries being written (`CONCURRENTLY`); an
earlier try that failed may have left it invalid, so it is dropped first.
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

NAME = "ix_webhook_deliveries_ping_endpoint"


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(
            NAME,
            "webhook_deliveries",
            ["endpoint_id", "id"],
            sqlite_where=sa.text("event_type = 'ping'"),
        )
        return
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
        op.execute(
            f"CREATE INDEX CONCURRENTLY {NAME} ON webhook_deliveries (endpoint_id, id) "
            "WHERE event_type = 'ping'"
        )


def downgrade():
    op.drop_index(NAME, table_name="webhook_deliveries")
