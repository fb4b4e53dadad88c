"""Ids never given twice on SQLite: the tables whose rows are deleted and whose ids people see.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04

SQLite gives a new row the id after the largest one there: once the newest product is deleted
(or every product), the next product gets its id again, and an old change record, audit entry,
webhook event or client that kept the id then names another product. PostgreSQL's sequences
never go back. `AUTOINCREMENT` makes SQLite remember the largest id it ever gave
(`sqlite_sequence`), which only a new table can have: each table is rebuilt (batch mode) with
every row and id, its foreign keys and its indexes. An id deleted before the upgrade can still
come back once; none deleted after it can. Users and import jobs are never deleted, so their
ids never come back. On PostgreSQL nothing changes.
"""

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# Products first: the others hold no reference to them. Their rows are deleted through the API
# (products, webhooks with their deliveries, tokens) or by the deliveries' retention.
TABLES = ("products", "webhook_endpoints", "webhook_deliveries", "access_tokens")
# Computed by SQLite from the description (migration 0016): not copied, added back after.
DESCRIPTION_LOWER = (
    "ALTER TABLE products ADD COLUMN description_lower TEXT "
    "GENERATED ALWAYS AS (lower(description)) VIRTUAL"
)


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(autoincrement=True)


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(autoincrement=False)


def _rebuild(*, autoincrement: bool) -> None:
    """Rebuild each table with AUTOINCREMENT or without, keeping rows, ids and indexes."""
    # Dropping the old table would run its ON DELETE CASCADE (a webhook's deliveries): foreign
    # keys stay off meanwhile, which SQLite allows only outside a transaction.
    with op.get_context().autocommit_block():
        op.execute("PRAGMA foreign_keys = OFF")
    for table in TABLES:
        _rebuild_table(table, autoincrement)
    with op.get_context().autocommit_block():
        op.execute("PRAGMA foreign_keys = ON")


def _rebuild_table(table: str, autoincrement: bool) -> None:
    indexes = op.get_bind().execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :table "),
        {"table": table},
    )
    indexes = [sql for (sql,) in indexes if sql]  # those of constraints have no SQL: kept
    kwargs = {"sqlite_autoincrement": autoincrement}
    with warnings.catch_warnings():
        # SQLAlchemy cannot read back an index on lower(sku): it is made again below.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        with op.batch_alter_table(table, recreate="always", table_kwargs=kwargs) as batch:
            if table == "products":
                batch.drop_column("description_lower")
    if table == "products":
        op.execute(DESCRIPTION_LOWER)
    for sql in indexes:
        op.execute(sql.replace(" INDEX ", " INDEX IF NOT EXISTS ", 1))
