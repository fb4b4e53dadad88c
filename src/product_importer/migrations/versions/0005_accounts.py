"""Accounts, their sign-in sessions and tokens, the setup link, the audit log; who imported.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        "users",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("last_sign_in_at", Stamp),
    )
    op.create_index("uq_users_lower_email", "users", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "access_tokens",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("expires_at", Stamp),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("last_used_at", Stamp),
    )
    op.create_table(
        "sign_in_sessions",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("last_seen_at", Stamp, nullable=False),
    )
    op.create_table(
        "setup_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("at", Stamp, nullable=False),
        sa.Column("actor_id", BigId),
        sa.Column("actor_email", sa.String(254)),
        sa.Column("client_address", sa.String(64)),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255)),
        sa.Column("details", sa.JSON()),
    )
    op.create_index("ix_audit_log_action_id", "audit_log", ["action", "id"])
    op.create_index("ix_audit_log_actor_email_id", "audit_log", ["actor_email", "id"])
    with op.batch_alter_table("import_jobs") as batch:
        batch.add_column(sa.Column("created_by_id", BigId))
        batch.add_column(sa.Column("created_by", sa.String(254)))


def downgrade():
    with op.batch_alter_table("import_jobs") as batch:
        batch.drop_column("created_by")
        batch.drop_column("created_by_id")
    op.drop_table("audit_log")
    op.drop_table("setup_tokens")
    op.drop_table("sign_in_sessions")
    op.drop_table("access_tokens")
    op.drop_table("users")
