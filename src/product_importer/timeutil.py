"""UTC timestamps, stored and printed the same way on PostgreSQL and SQLite."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """Format as ISO 8601 UTC with a `Z`; SQLite hands back naive values, which are UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def aware(value: datetime) -> datetime:
    """The same moment, timezone-aware: SQLite hands back naive values, which are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
