"""Accounts, their personal access tokens, the one-time setup link and the audit log."""

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, func, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import BigId, db
from ..timeutil import iso, utcnow
from .roles import Role, lower_of


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.VIEWER)
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("uq_users_lower_email", func.lower(email), unique=True),)

    def to_dict(self) -> dict:
        """The account JSON (never the password hash)."""
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "active": self.active,
            "created_at": iso(self.created_at),
            "last_sign_in_at": iso(self.last_sign_in_at),
        }


class Token(db.Model):
    """A personal access token: kept as a SHA-256 hash, shown in full only when created."""

    __tablename__ = "access_tokens"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never given twice (migration 0020)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists, to tell tokens apart
    role: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The token it was made with (POST /api/tokens with a bearer token); none when made in a
    # browser or by the command line. Deleting a token deletes those made with it, and so on:
    # a stolen token cannot make itself another that outlives its revocation (migration 0025).
    made_by_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("access_tokens.id", ondelete="CASCADE"), index=True
    )

    owner: Mapped[User] = relationship(lazy="joined")

    @property
    def acting_role(self) -> Role:
        """The role it acts with: its owner's current role caps the one it was made with."""
        return lower_of(self.role, self.owner.role)

    def to_dict(self) -> dict:
        """The token JSON, without the secret part; `role` is the one it acts with."""
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "role": self.acting_role.value,
            "made_as": self.role,
            "owner": self.owner.email,
            "expires_at": iso(self.expires_at),
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at),
            "made_by_token": self.made_by_token_id,
        }


class SignInSession(db.Model):
    """A browser signed in: its cookie holds the key, kept here as a hash; sign-out deletes it."""

    __tablename__ = "sign_in_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SetupToken(db.Model):
    """The one-time link that creates the first admin; worthless once any account exists."""

    __tablename__ = "setup_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEntry(db.Model):
    """Who did what, when, from where, to what."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(BigId)  # no foreign key: the log outlives
    actor_email: Mapped[str | None] = mapped_column(String(254))
    client_address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_audit_log_action_id", "action", "id"),
        Index("ix_audit_log_actor_email_id", "actor_email", "id"),
    )

    def to_dict(self) -> dict:
        """One audit log entry."""
        return {
            "id": self.id,
            "at": iso(self.at),
            "actor": self.actor_email,
            "client_address": self.client_address,
            "action": self.action,
            "target": self.target,
            "details": self.details,
        }
