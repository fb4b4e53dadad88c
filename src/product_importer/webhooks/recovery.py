"""Resend what failed since a time: every event whose latest delivery to a webhook failed.

A receiver that was down for longer than a day of retries, or a webhook disabled while its
deliveries were in line ("Not sent: the webhook is disabled."), leaves failed deliveries that
nothing sends again; Redeliver takes them one at a time. Recovering (as Svix calls it) queues
each such event again in one statement, as Redeliver queues one: a new delivery with the same
`webhook-id` and payload. An event delivered since, or still in line, is left alone; so are
pings, which are not events. Events published while the webhook was disabled were never
queued for it, so there is nothing of them to resend.
"""

from datetime import UTC, datetime

from sqlalchemy import DateTime, bindparam, func, insert, select
from sqlalchemy.orm import Session

from .. import background
from ..errors import Invalid
from ..timeutil import iso, utcnow
from . import events, service
from .delivery import DELIVERY_RETENTION
from .models import Delivery, DeliveryStatus

deliveries = Delivery.__table__
EXAMPLE = "2026-12-04T09:00:00Z"

# The latest delivery of each event to the endpoint since the time asked (the index on
# endpoint_id, id), kept when it failed, and inserted again as `service.queued_again` says:
# one statement however many events, in their first order, so that they go out in it.
_latest = (
    select(func.max(deliveries.c.id))
    .where(
        deliveries.c.endpoint_id == bindparam("endpoint_id"),
        deliveries.c.created_at >= bindparam("since", type_=DateTime(timezone=True)),
        deliveries.c.event_type != events.PING,
    )
    .group_by(deliveries.c.event_id)
)
_again = {
    name: bindparam(name, type_=deliveries.c[name].type)
    for name in ("status", "attempts", "created_at", "next_attempt_at", "queued_until")
}
QUEUE_FAILED_AGAIN = (
    insert(deliveries)
    .from_select(
        ["endpoint_id", "event_id", "event_type", "payload", *_again],
        select(
            deliveries.c.endpoint_id,
            deliveries.c.event_id,
            deliveries.c.event_type,
            deliveries.c.payload,
            *_again.values(),
        )
        .where(deliveries.c.id.in_(_latest), deliveries.c.status == DeliveryStatus.FAILED.value)
        .order_by(deliveries.c.id),
    )
    .returning(deliveries.c.id)
)


def parse_since(fields: dict) -> datetime:
    """The `since` of a recover request (ISO 8601 with a time zone), in UTC; raise Invalid."""
    problems = {name: "Unknown field." for name in fields if name != "since"}
    since, problem = _since(fields.get("since"))
    if problem:
        problems["since"] = problem
    if problems:
        raise Invalid("The recovery is not valid; see details.", details=problems)
    return since


def _since(value) -> tuple[datetime | None, str | None]:
    """The time asked, or why it cannot be used."""
    days = DELIVERY_RETENTION.days
    try:
        since = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None, f"Give the time to resend from, in ISO 8601 with a time zone ({EXAMPLE})."
    if since.tzinfo is None:
        return None, f"Give the time zone too: Z for UTC, or an offset ({EXAMPLE})."
    since = since.astimezone(UTC)
    if since < utcnow() - DELIVERY_RETENTION:
        return None, f"At most {days} days back: older deliveries are no longer kept."
    if since > utcnow():
        return None, "Give a time in the past: nothing has failed after now."
    return since, None


def recover(session: Session, endpoint_id: int, *, since: datetime) -> int:
    """Queue again every event whose latest delivery to the endpoint since `since` failed;
    return how many. They are sent once the session commits."""
    endpoint = service.get(session, endpoint_id)
    service.refuse_disabled(endpoint, then="resend what failed")
    params = {"endpoint_id": endpoint_id, "since": since, **service.queued_again()}
    queued = list(session.execute(QUEUE_FAILED_AGAIN, params).scalars())
    if queued:
        background.send_after_commit(session, events.DELIVER_TASK, queued)
    return len(queued)


def summary(since: datetime, queued: int) -> dict:
    """The answer to a recover request."""
    return {"since": iso(since), "queued": queued}
