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

from sqlalchemy import DateTime, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from .. import background
from ..errors import Invalid, NotFound
from ..timeutil import iso, utcnow
from . import events, service
from .delivery import BATCH_SIZE, DELIVERY_RETENTION
from .models import Delivery, DeliveryStatus, Endpoint

deliveries = Delivery.__table__
EXAMPLE = "2026-12-04T09:00:00Z"

# Each event's deliveries to the endpoint since the time asked (the index on endpoint_id, id):
# its latest, kept when it failed, and its first, whose order the events go out in again.
_per_event = (
    select(
        func.max(deliveries.c.id).label("latest"),
        func.min(deliveries.c.id).label("first"),
    )
    .where(
        deliveries.c.endpoint_id == bindparam("endpoint_id"),
        deliveries.c.created_at >= bindparam("since", type_=DateTime(timezone=True)),
        deliveries.c.event_type != events.PING,
    )
    .group_by(deliveries.c.event_id)
    .subquery()
)
_queued_again_params = {
    name: bindparam(name, type_=deliveries.c[name].type)
    for name in ("status", "attempts", "created_at", "next_attempt_at", "queued_until")
}
# Inserted again as `service.queued_again` says: one statement however many events.
QUEUE_FAILED_AGAIN = (
    insert(deliveries)
    .from_select(
        ["endpoint_id", "event_id", "event_type", "payload", *_queued_again_params],
        select(
            deliveries.c.endpoint_id,
            deliveries.c.event_id,
            deliveries.c.event_type,
            deliveries.c.payload,
            *_queued_again_params.values(),
        )
        .join(_per_event, deliveries.c.id == _per_event.c.latest)
        .where(deliveries.c.status == DeliveryStatus.FAILED.value)
        .order_by(_per_event.c.first),
    )
    .returning(deliveries.c.id)
)
# The worker that sends the first batch walks on through the rest in order (deliver_one); if
# it stops (a retry), the rest are the sweep's, not held for QUEUED_GRACE_SECONDS each.
LEFT_TO_THE_SWEEP = (
    update(deliveries)
    .where(
        deliveries.c.endpoint_id == bindparam("of_endpoint"),
        deliveries.c.id.between(bindparam("first_left"), bindparam("last")),
        deliveries.c.status == DeliveryStatus.PENDING.value,
    )
    .values(queued_until=None)
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
    # Compared before it is turned to UTC: year 1 an hour east of UTC is before year 1 there.
    if since < utcnow() - DELIVERY_RETENTION:
        return None, f"At most {days} days back: older deliveries are no longer kept."
    if since > utcnow():
        return None, "Give a time in the past: nothing has failed after now."
    return since.astimezone(UTC), None


def recover(session: Session, endpoint_id: int, *, since: datetime) -> int:
    """Queue again every event whose latest delivery to the endpoint since `since` failed;
    return how many. They are sent once the session commits."""
    # Locked first: a second request (a double click, a script trying again) waits for this
    # one, then finds these events in line, and queues none of them twice.
    endpoint = session.get(Endpoint, endpoint_id, with_for_update=True)
    if endpoint is None:
        raise NotFound(f"Webhook {endpoint_id} does not exist.")
    service.refuse_disabled(endpoint, then="resend what failed")
    params = {"endpoint_id": endpoint_id, "since": since, **service.queued_again()}
    queued = sorted(session.execute(QUEUE_FAILED_AGAIN, params).scalars())
    first, left = queued[:BATCH_SIZE], queued[BATCH_SIZE:]
    if left:
        session.execute(
            LEFT_TO_THE_SWEEP,
            {"of_endpoint": endpoint_id, "first_left": left[0], "last": left[-1]},
        )
    if first:
        background.send_after_commit(session, events.DELIVER_TASK, first)
    return len(queued)


def summary(since: datetime, queued: int) -> dict:
    """The answer to a recover request."""
    return {"since": iso(since), "queued": queued}
