"""Publish events to webhook endpoints (an outbox written in the caller's transaction)."""

from sqlalchemy import Connection
from sqlalchemy.orm import Session


def publish(conn: Connection, event_type: str, data: dict) -> list[int]:
    """Queue `event_type` for every enabled endpoint subscribed to it; return delivery ids.

    The deliveries are rows written in the caller's transaction: a rolled-back change sends
    nothing. Call `send(ids)` after the commit, or leave them to the periodic sweep.
    """
    return []


def publish_in_session(session: Session, event_type: str, data: dict) -> None:
    """Publish within an ORM session's transaction; deliveries start once it commits."""
    publish(session.connection(), event_type, data)
