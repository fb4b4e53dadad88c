"""Publish events to webhook endpoints (an outbox written in the caller's transaction)."""

from sqlalchemy import Connection


def publish(conn: Connection, event_type: str, data: dict) -> list[int]:
    """Queue `event_type` for every enabled endpoint subscribed to it; return delivery ids."""
    return []
