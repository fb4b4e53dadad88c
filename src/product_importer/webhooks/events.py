"""Publish events to webhook endpoints (an outbox written in the caller's transaction)."""

import json
import logging
import uuid
from datetime import timedelta

from sqlalchemy import (
    Connection,
    DateTime,
    Integer,
    String,
    Text,
    bindparam,
    cast,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from .. import background
from ..accounts.auth import current_actor
from ..extensions import db
from ..timeutil import iso, utcnow
from .models import Delivery, DeliveryStatus, Endpoint

log = logging.getLogger(__name__)

# What an endpoint can subscribe to; `ping` is only sent by the Test button.
EVENT_TYPES = (
    "product.created",
    "product.updated",
    "product.deleted",
    "products.deleted_all",
    "import.completed",
    "import.failed",
    "import.undone",
)
PING = "ping"
DELIVER_TASK = "product_importer.webhooks.deliver"
# How long the sweep trusts a task message to be on its way before it sends another: long
# enough for a batch of 25 deliveries to a receiver that always times out (5 s each).
QUEUED_GRACE_SECONDS = 180.0
endpoints = Endpoint.__table__
deliveries = Delivery.__table__

# One prepared INSERT .. SELECT, built once: publishing runs inside the request that changed
# a product, so it costs one round trip. Endpoints subscribe with a JSON list of names; a LIKE
# on its text finds them the same way on PostgreSQL and SQLite.
FAN_OUT = (
    insert(deliveries)
    .from_select(
        ["endpoint_id", "event_id", "event_type", "payload", "status", "attempts"]
        + ["created_at", "next_attempt_at", "queued_until"],
        select(
            endpoints.c.id,
            bindparam("event_id", type_=String),
            bindparam("event_type", type_=String),
            bindparam("payload", type_=Text),
            literal(DeliveryStatus.PENDING.value, String),
            literal(0, Integer),
            bindparam("now", type_=DateTime(timezone=True)),
            bindparam("now", type_=DateTime(timezone=True)),
            bindparam("queued_until", type_=DateTime(timezone=True)),
        )
        .where(
            endpoints.c.enabled,
            cast(endpoints.c.events, Text).like(bindparam("subscribed"), escape="/"),
        )
        # The lock the deliveries' foreign key takes anyway, taken as they are chosen: an
        # endpoint being deleted is waited for and then left out. Chosen unlocked, it was
        # chosen, and the insert failed on the foreign key once the delete committed (a
        # product change answered 500, an import failed).
        .with_for_update(read=True, key_share=True),
    )
    .returning(deliveries.c.id)
)


def new_event_id() -> str:
    """Return a new event id; it is also the `webhook-id` of every attempt."""
    return "evt_" + uuid.uuid4().hex


def payload(event_id: str, event_type: str, data: dict, actor: dict | None = None) -> str:
    """Serialize the event body once; every attempt sends exactly these bytes.

    `actor` is `{"id", "email"}` of the account that caused the event, None for the system.
    """
    now = utcnow()
    body = {
        "id": event_id,
        "type": event_type,
        # SPEC names it `created_at`; the Standard Webhooks payload names it `timestamp`.
        "timestamp": iso(now),
        "created_at": iso(now),
        "actor": actor,
        "data": data,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)


def publish(
    conn: Connection, event_type: str, data: dict, *, actor: dict | None, will_send: bool = False
) -> list[int]:
    """Queue `event_type` for every enabled endpoint subscribed to it; return delivery ids.

    The deliveries are rows written in the caller's transaction: a rolled-back change sends
    nothing. With `will_send`, the caller calls `send(ids)` after the commit (the sweep leaves
    them alone for a grace period); otherwise the periodic sweep sends them.
    """
    queued_until = utcnow() + timedelta(seconds=QUEUED_GRACE_SECONDS) if will_send else None
    return _fan_out(conn, event_type, data, actor, queued_until=queued_until)


def publish_in_session(session: Session, event_type: str, data: dict) -> None:
    """Publish, as the account making this request, in the session's transaction.

    The deliveries start once the session commits.
    """
    queued_until = utcnow() + timedelta(seconds=QUEUED_GRACE_SECONDS)
    conn = session.connection()
    ids = _fan_out(conn, event_type, data, current_actor(), queued_until=queued_until)
    if ids:
        background.send_after_commit(session, DELIVER_TASK, ids)


def _fan_out(conn: Connection, event_type: str, data: dict, actor, *, queued_until) -> list[int]:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    event_id, now = new_event_id(), utcnow()
    params = {
        "subscribed": '%"' + event_type.replace("_", "/_") + '"%',
        "event_id": event_id,
        "event_type": event_type,
        "payload": payload(event_id, event_type, data, actor),
        "now": now,
        "queued_until": queued_until,
    }
    return list(conn.execute(FAN_OUT, params).scalars())


def send(delivery_ids: list[int]) -> None:
    """Start sending deliveries now; call it after the commit that wrote them.

    Never raises: if the broker is out of reach, the periodic sweep sends them later.
    """
    if not delivery_ids:
        return
    try:
        background.submit(DELIVER_TASK, delivery_ids)
    except Exception:
        log.warning("could not start webhook deliveries %s now", delivery_ids, exc_info=True)
        unqueue(delivery_ids)


def unqueue(delivery_ids: list[int]) -> None:
    """Say no message is on its way for these deliveries: the sweep sends them when it can.

    Without this a delivery whose message never left would wait QUEUED_GRACE_SECONDS.
    """
    try:
        with db.engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(delivery_ids))
                .where(deliveries.c.status == DeliveryStatus.PENDING.value)
                .values(queued_until=None)
            )
    except Exception:  # the database is out of reach too: the grace period will do
        log.warning("could not unqueue webhook deliveries %s", delivery_ids, exc_info=True)


background.UNSENT[DELIVER_TASK] = unqueue
