"""The address each import was asked at, for the URL of its change record in its webhook.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07

`import.completed` carries `changes_url`, where a receiver fetches what the import changed.
The worker that sends it has no request to take an address from: the web request that asked
for the import records its own (`origin`), used when PUBLIC_URL is not set. One empty column,
no rewrite; imports from before the release, like those of the command line, have none.
"""

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("import_jobs") as batch:
        batch.add_column(sa.Column("origin", sa.String(2048), nullable=True))


def downgrade():
    with op.batch_alter_table("import_jobs") as batch:
        batch.drop_column("origin")
