"""Exact totals of filtered product lists, kept per catalog version and shared by processes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

A filtered total (how many products match `description=church`, say) changes when a product is
edited, not only when one is added or removed, so the catalog version now also moves on
UPDATE. Counting every match of a common word reads a large part of the table (~0.3 s for
125,000 of 500,000 descriptions); `product_list_totals` keeps each count until the catalog
changes, for every web process (an unlogged table: a crash only empties the cache).
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    _retrigger("INSERT OR UPDATE OR DELETE")
    op.execute(
        "CREATE UNLOGGED TABLE product_list_totals "
        "(filters text PRIMARY KEY, version bigint NOT NULL, total bigint NOT NULL)"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TABLE product_list_totals")
    _retrigger("INSERT OR DELETE")


def _retrigger(events: str) -> None:
    op.execute("DROP TRIGGER IF EXISTS products_version_rows ON products")
    op.execute(
        f"CREATE TRIGGER products_version_rows AFTER {events} ON products "
        "FOR EACH STATEMENT EXECUTE FUNCTION products_bump_version()"
    )
