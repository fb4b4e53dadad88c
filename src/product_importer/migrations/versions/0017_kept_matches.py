"""The ids of a small filter's matches, kept with its total, so that its pages read them by id.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04

A page of a term with few matches among many candidates finds every match before it can sort
them: a phrase of three common words ('stuff plant floor') at 5M products rechecks ~90,000
candidate descriptions for its handful of matches on every request (290 ms, docs/benchmarks.md). A
kept total of at most `totals.MATCHES_AT_MOST` matches now keeps their ids beside it
(`product_list_totals.matches`, NULL for larger totals or until they are found), carried over
the edits as the total is: the products logged since are added to them, and every page rechecks
its rows against the filter. `matches_at` is the version the ids are for: they are used only
while it is the kept total's, so that a web process of the release before, which moves the
total on without them, cannot leave them under a version they do not match. The table is
unlogged, as before: a crash only empties the cache.
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE product_list_totals ADD COLUMN matches bigint[], ADD COLUMN matches_at bigint"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE product_list_totals DROP COLUMN matches, DROP COLUMN matches_at")
