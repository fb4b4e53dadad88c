"""Which token made a token: revoking a token revokes every token made with it.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05

`POST /api/tokens` called with a bearer token makes a token of the same owner; revoking the
first one left the new one working, so a stolen token could make itself another and outlive
its revocation. `made_by_token_id` names the token a token was made with (null when made in a
browser or by the command line) and references it ON DELETE CASCADE: the database deletes the
tokens made with a token as it deletes the token, and those made with them, and so on. One
empty column and its index, no rewrite. Tokens made before the release have no parent.

SQLite cannot add a foreign key to a table but with the column that holds it (ADD COLUMN ...
REFERENCES), nor drop such a column's constraint but with the column; PostgreSQL names the
constraint as the models' naming convention does.
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

FOREIGN_KEY = "fk_access_tokens_made_by_token_id_access_tokens"
INDEX = "ix_access_tokens_made_by_token_id"  # the cascade finds a token's children by it
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        parent = sa.ForeignKey("access_tokens.id", ondelete="CASCADE")
        column = sa.Column("made_by_token_id", BIG_ID, parent, nullable=True)
        op.add_column("access_tokens", column, inline_references=True)
    else:
        op.add_column("access_tokens", sa.Column("made_by_token_id", BIG_ID, nullable=True))
        op.create_foreign_key(
            FOREIGN_KEY,
            "access_tokens",
            "access_tokens",
            ["made_by_token_id"],
            ["id"],
            ondelete="CASCADE",
        )
    op.create_index(INDEX, "access_tokens", ["made_by_token_id"])


def downgrade():
    op.drop_index(INDEX, table_name="access_tokens")
    # The constraint goes with the column (SQLite's is part of the column's definition).
    op.execute("ALTER TABLE access_tokens DROP COLUMN made_by_token_id")
