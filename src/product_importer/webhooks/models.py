"""Webhook endpoints, the deliveries queued for them, and every attempt made."""

import enum
from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, text, true
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import BigId, db
from ..timeutil import aware, iso, utcnow
from .urls import url_without_secrets


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Endpoint(db.Model):
    __tablename__ = "webhook_endpoints"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never given twice (migration 0020)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    description: Mapped[str] = mapped_column(String(255), default="", server_default="")
    secret: Mapped[str] = mapped_column(String(255))
    # The secret before the last rotation: it signs beside `secret` until `previous_secret_until`,
    # so that a receiver can switch to the new one without refusing an event (migration 0018).
    previous_secret: Mapped[str | None] = mapped_column(String(255))
    previous_secret_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why the app turned the endpoint off (a 410 answer); cleared when someone enables it.
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    def to_dict(
        self,
        *,
        last_test: "Delivery | None",
        with_secret: bool = False,
        whole_url: bool = True,
    ) -> dict:
        """Return the Webhook JSON of SPEC, with the outcome of `last_test` (its latest test);
        the secret only when asked (the create response), the URL with its likely secrets
        hidden unless `whole_url` (for those who manage it)."""
        data = {
            "id": self.id,
            "url": self.url if whole_url else url_without_secrets(self.url),
            "events": list(self.events or []),
            "enabled": self.enabled,
            "description": self.description,
            "created_at": iso(self.created_at),
            "disabled_reason": self.disabled_reason,
            "previous_secret_expires_at": iso(self.previous_secret_until)
            if self.previous_secret_signs()
            else None,
            "last_test": last_test.test_outcome() if last_test is not None else None,
        }
        if with_secret:
            data["secret"] = self.secret
        return data

    def previous_secret_signs(self) -> bool:
        """Whether the secret before the last rotation still signs requests."""
        return len(self.signing_secrets()) > 1

    def signing_secrets(self) -> list[str]:
        """The secrets that sign a request to this endpoint now, the current one first."""
        return signing_secrets(self.secret, self.previous_secret, self.previous_secret_until)


def signing_secrets(secret: str, previous: str | None, until: datetime | None) -> list[str]:
    """The secrets that sign a request now: the current one, and the previous one until it ends."""
    if previous and until is not None and aware(until) > utcnow():
        return [secret, previous]
    return [secret]


def gone_columns(now: datetime) -> dict:
    """The columns of an endpoint whose receiver answered 410 Gone: disabled, saying why."""
    return {
        "enabled": False,
        "disabled_reason": f"Disabled at {now:%Y-%m-%d %H:%M} UTC: the receiver answered 410 "
        "Gone. Enable it again once the receiver accepts events.",
        "updated_at": now,
    }


class Delivery(db.Model):
    """One event for one endpoint; `event_id` is the `webhook-id` of every attempt."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    # The exact body, serialized once, so every attempt sends the same bytes.
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_time_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A worker sending it holds it until then; a worker that died lets it go.
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A task message for it is on its way; the sweep sends another only after this.
    queued_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
        # whether an earlier delivery to the endpoint is pending (sending in order)
        Index(
            "ix_webhook_deliveries_pending_endpoint",
            "endpoint_id",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # each endpoint's latest test (its `last_test`), among the pings alone (migration 0027)
        Index(
            "ix_webhook_deliveries_ping_endpoint",
            "endpoint_id",
            "id",
            postgresql_where=text("event_type = 'ping'"),
            sqlite_where=text("event_type = 'ping'"),
        ),
        {"sqlite_autoincrement": True},  # ids never given twice (migration 0020)
    )

    def to_dict(self, attempts: list["Attempt"] | None = None) -> dict:
        """Return the delivery JSON of SPEC, with `attempt_log` when attempts are given."""
        data = {
            "id": self.id,
            "event_id": self.event_id,
            "event": self.event_type,
            "status": self.status,
            "attempts": self.attempts,
            "status_code": self.status_code,
            "response_time_ms": self.response_time_ms,
            "error": self.error,
            "created_at": iso(self.created_at),
            "next_attempt_at": iso(self.next_attempt_at),
        }
        if attempts is not None:
            data["attempt_log"] = [attempt.to_dict() for attempt in attempts]
        return data

    def test_outcome(self) -> dict:
        """Return the `last_test` of a Webhook JSON: this finished ping's outcome, and when."""
        return {
            "ok": self.status == DeliveryStatus.SUCCEEDED,
            "status_code": self.status_code,
            "response_time_ms": self.response_time_ms,
            "error": self.error,
            "at": iso(self.finished_at or self.created_at),
        }


class Attempt(db.Model):
    """One HTTP request made for a delivery, successful or not."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_time_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_webhook_attempts_delivery_id_number", "delivery_id", "number"),)

    def to_dict(self) -> dict:
        """Return one entry of a delivery's `attempt_log`."""
        return {
            "number": self.number,
            "at": iso(self.started_at),
            "status_code": self.status_code,
            "response_time_ms": self.response_time_ms,
            "error": self.error,
        }
