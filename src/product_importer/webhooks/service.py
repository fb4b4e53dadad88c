"""Webhook endpoints and their deliveries, as the API sees them: configure, test, redeliver.

Sending, retrying and the periodic sweep are in `delivery.py`, which workers run.
"""

import logging
import math
import re
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.orm import Session

from .. import background, database
from ..accounts.auth import current_actor
from ..errors import Conflict, Invalid, NotFound
from ..timeutil import aware, utcnow
from . import events, sender, signing, ssrf
from .models import Attempt, Delivery, DeliveryStatus, Endpoint, gone_columns

log = logging.getLogger(__name__)

EDITABLE = {"url", "events", "enabled", "description"}
DEFAULT_DELIVERIES = 50
MAX_DELIVERIES = 200
READ_ONLY = {
    "id",
    "created_at",
    "secret",
    "disabled_reason",
    "previous_secret_expires_at",
    "last_test",
}
# How long the secret before a rotation signs beside the new one, unless asked otherwise: a day
# for the receiver's owner to put the new one in place (as Svix and Stripe give).
KEEP_PREVIOUS_HOURS = 24
MAX_KEEP_PREVIOUS_HOURS = 7 * 24

# --- settings ---------------------------------------------------------------------------------


def timeout_seconds() -> float:
    return float(current_app.config["WEBHOOK_TIMEOUT_SECONDS"])


def retry_base_seconds() -> float:
    return float(current_app.config["WEBHOOK_RETRY_BASE_SECONDS"])


def order_wait_seconds() -> float:
    return float(current_app.config["WEBHOOK_ORDER_WAIT_SECONDS"])


def allow_private() -> bool:
    return bool(current_app.config.get("WEBHOOK_ALLOW_PRIVATE"))


# --- endpoints ---------------------------------------------------------------------------------


def list_endpoints(session: Session) -> list[Endpoint]:
    """Return every endpoint, oldest first."""
    return list(session.scalars(select(Endpoint).order_by(Endpoint.id)))


def last_tests(session: Session, *, endpoint_ids: list[int]) -> dict[int, Delivery]:
    """The latest finished test (`ping`) of each of the endpoints that has one, by endpoint."""
    if not endpoint_ids:
        return {}
    latest = (
        select(func.max(Delivery.id))
        .where(
            Delivery.endpoint_id.in_(endpoint_ids),
            # written out, not a parameter: so PostgreSQL reads the pings' index alone
            Delivery.event_type == literal(events.PING, literal_execute=True),
            Delivery.status != DeliveryStatus.PENDING,  # a redelivered ping on its way
        )
        .group_by(Delivery.endpoint_id)
    )
    found = session.scalars(select(Delivery).where(Delivery.id.in_(latest)))
    return {delivery.endpoint_id: delivery for delivery in found}


def last_test(session: Session, endpoint: Endpoint) -> Delivery | None:
    """The endpoint's latest finished test, if it has one."""
    return last_tests(session, endpoint_ids=[endpoint.id]).get(endpoint.id)


def held(session: Session, endpoint_id: int) -> Endpoint:
    """The endpoint, read to be changed or deleted: locked (FOR NO KEY UPDATE; SQLite's writer
    lock), so a change waits for a delete and then finds it gone (404; read unlocked, it updated
    no row: a 500), while events published for it meanwhile (FOR KEY SHARE, as the deliveries'
    foreign key) go on."""
    database.of(session).lock_before_reading(session, Endpoint, endpoint_id)
    return get(session, endpoint_id, with_for_update={"key_share": True}, populate_existing=True)


def get(session: Session, endpoint_id: int, **options) -> Endpoint:
    """Return the endpoint (`options` as Session.get takes them), or raise NotFound."""
    endpoint = session.get(Endpoint, endpoint_id, **options)
    if endpoint is None:
        raise NotFound(f"Webhook {endpoint_id} does not exist.")
    return endpoint


def create(session: Session, *, fields: dict) -> Endpoint:
    """Create an endpoint from API fields, with a new secret; raise Invalid naming bad fields."""
    values = clean(fields, partial=False)
    endpoint = Endpoint(secret=signing.generate_secret(), **values)
    session.add(endpoint)
    session.flush()
    return endpoint


def update_endpoint(
    session: Session, endpoint_id: int, *, fields: dict
) -> tuple[Endpoint, list[str]]:
    """Change some of an endpoint's fields; enabling it again clears why it was disabled.
    Returns the endpoint and the names of the fields whose values changed."""
    values = clean(fields, partial=True)  # first: its DNS lookup may take seconds, unlocked
    endpoint = held(session, endpoint_id)
    changed = sorted(name for name, value in values.items() if getattr(endpoint, name) != value)
    url, enabled = endpoint.url, endpoint.enabled
    for name, value in values.items():
        setattr(endpoint, name, value)
    if values.get("enabled"):
        endpoint.disabled_reason = None
    session.flush()
    if endpoint.enabled and (endpoint.url != url or not enabled):
        retry_now(session, endpoint_id)
    return endpoint, changed


def retry_now(session: Session, endpoint_id: int) -> None:
    """Send the endpoint's waiting retries now, rather than when their backoff ends.

    For a URL put right, or a webhook enabled again: a retry waited up to 4 hours for the
    receiver as it was, and every later event to the endpoint waited behind it (in order).
    """
    now = utcnow()
    waiting = session.scalars(
        update(Delivery)
        .where(
            Delivery.endpoint_id == endpoint_id,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.next_attempt_at > now,
        )
        .values(next_attempt_at=now, queued_until=queued_again()["queued_until"])
        .returning(Delivery.id)
    ).all()
    if waiting:
        background.send_after_commit(session, events.DELIVER_TASK, sorted(waiting))


def rotate_secret(session: Session, endpoint_id: int, *, fields: dict) -> Endpoint:
    """Give the endpoint a new secret; the current one signs beside it for a while.

    `keep_previous_hours` (0 to a week, default a day) is how long: 0 stops it at once, for
    a secret that leaked. A secret already kept from an earlier rotation is dropped.
    """
    endpoint = held(session, endpoint_id)
    hours = _keep_previous_hours(fields)
    endpoint.previous_secret = endpoint.secret if hours else None
    endpoint.previous_secret_until = utcnow() + timedelta(hours=hours) if hours else None
    endpoint.secret = signing.generate_secret()
    session.flush()
    return endpoint


def _keep_previous_hours(fields: dict) -> int:
    """The `keep_previous_hours` of a rotation's body; raise Invalid naming what is wrong."""
    problems = {name: "Unknown field." for name in fields if name != "keep_previous_hours"}
    hours = fields.get("keep_previous_hours", KEEP_PREVIOUS_HOURS)
    valid = isinstance(hours, int) and not isinstance(hours, bool)
    if not (valid and 0 <= hours <= MAX_KEEP_PREVIOUS_HOURS):
        problems["keep_previous_hours"] = (
            f"Give a whole number of hours from 0 (stop the old secret now) "
            f"to {MAX_KEEP_PREVIOUS_HOURS}."
        )
    if problems:
        raise Invalid("The rotation is not valid; see details.", details=problems)
    return hours


def delete_endpoint(session: Session, endpoint_id: int) -> str:
    """Delete an endpoint with its deliveries; return the URL it had.

    Its row is held first (its tests, redeliveries and changes wait, as for a change) but
    deleted last: deleted first, it stayed locked while its deliveries went (seconds for the
    millions a busy webhook keeps), and every product change or import with an event for it
    waited that long, then failed on the webhook gone. Events published meanwhile are deleted
    with the row (the foreign key's cascade).
    """
    endpoint = held(session, endpoint_id)
    session.execute(
        delete(Delivery).where(Delivery.endpoint_id == endpoint_id),
        execution_options={"synchronize_session": False},
    )
    session.delete(endpoint)
    session.flush()
    return endpoint.url


def clean(fields: dict, *, partial: bool) -> dict:
    """Return the validated values of the editable fields; raise Invalid naming each problem."""
    problems = {name: "Unknown field." for name in fields if name not in EDITABLE | READ_ONLY}
    if not partial:
        problems |= {name: "Required." for name in ("url", "events") if name not in fields}
    values = {}
    for name in EDITABLE & fields.keys():
        try:
            values[name] = CLEANERS[name](fields[name])
        except ValueError as error:
            problems[name] = str(error)
    if problems:
        raise Invalid("The webhook is not valid; see details.", details=problems)
    return values


def _clean_url(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("Give the URL that receives the events (http:// or https://).")
    url = value.strip()
    if len(url) > 2048:
        raise ValueError("At most 2048 characters.")
    try:
        ssrf.check_url(url, allow_private=allow_private())
    except ssrf.Refused as error:
        raise ValueError(str(error)) from None
    return url


def _clean_events(value) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"Choose at least one event: {', '.join(events.EVENT_TYPES)}.")
    unknown = [item for item in value if item not in events.EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"Unknown event {unknown[0]!r}; known events: {', '.join(events.EVENT_TYPES)}."
        )
    return [name for name in events.EVENT_TYPES if name in value]


def _clean_enabled(value) -> bool:
    if not isinstance(value, bool):
        raise ValueError("Must be true or false.")
    return value


# C0, DEL and C1 control characters but tab and line breaks: as a product's description (and
# PostgreSQL cannot store a NUL at all).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _clean_description(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value.strip()) > 255 or CONTROL.search(value):
        raise ValueError("Must be text of at most 255 characters, without control characters.")
    return value.strip()


CLEANERS = {
    "url": _clean_url,
    "events": _clean_events,
    "enabled": _clean_enabled,
    "description": _clean_description,
}


# --- deliveries, as the API sees them ---------------------------------------------------------


def list_deliveries(
    session: Session, endpoint_id: int, *, limit: int = DEFAULT_DELIVERIES, page: int = 1
) -> list[tuple[Delivery, list[Attempt]]]:
    """Return one page of an endpoint's deliveries, newest first, each with its attempts in
    order."""
    get(session, endpoint_id)
    recent = list(
        session.scalars(
            select(Delivery)
            .where(Delivery.endpoint_id == endpoint_id)
            .order_by(Delivery.id.desc())
            .offset((page - 1) * limit)
            .limit(limit)
        )
    )
    log_of = {delivery.id: [] for delivery in recent}
    if log_of:
        for attempt in session.scalars(
            select(Attempt)
            .where(Attempt.delivery_id.in_(log_of))
            .order_by(Attempt.delivery_id, Attempt.number, Attempt.id)
        ):
            log_of[attempt.delivery_id].append(attempt)
    return [(delivery, log_of[delivery.id]) for delivery in recent]


def deliveries_total(
    session: Session, *, endpoint_id: int, page: int, per_page: int, found: int, counted: bool
) -> int | None:
    """The total of a deliveries page that holds `found`: read off a page that is not full,
    else counted, unless not `counted` (None)."""
    if found < per_page and (found or page == 1):  # the last page: nothing comes after it
        return (page - 1) * per_page + found
    # Counting reads every delivery kept of the webhook: 150-250 ms a request for the 4 million
    # a busy one keeps (docs/benchmarks.md), too much for a page refreshing every 2 s each time.
    return count_deliveries(session, endpoint_id) if counted else None


def count_deliveries(session: Session, endpoint_id: int) -> int:
    """How many deliveries the endpoint has, every page together."""
    query = select(func.count()).select_from(Delivery).where(Delivery.endpoint_id == endpoint_id)
    return session.scalar(query)


def redeliver(session: Session, endpoint_id: int, delivery_id: int) -> Delivery:
    """Send a delivery again, with the same `webhook-id`: now if still pending, else anew."""
    # The webhook first, as a delete takes it before its deliveries: the other order deadlocks
    # with a delete of the webhook. Key share: a worker's 410 may still disable it meanwhile.
    endpoint = get(session, endpoint_id, with_for_update={"key_share": True})
    # locked: no worker claims it between the check below and the commit (SKIP LOCKED)
    original = session.get(Delivery, delivery_id, with_for_update=True, populate_existing=True)
    if original is None or original.endpoint_id != endpoint_id:
        raise NotFound(f"Delivery {delivery_id} of webhook {endpoint_id} does not exist.")
    refuse_disabled(endpoint, then="redeliver")
    refuse_in_flight(original)
    again = queued_again()
    if original.status == DeliveryStatus.PENDING:
        original.next_attempt_at = again["next_attempt_at"]  # a retry waiting: bring it forward
        original.queued_until = again["queued_until"]
        # Its claim has ended (`refuse_in_flight`): unclaimed, the attempt's record that a worker
        # may still be trying to write, the database back, no longer matches and overwrites this.
        original.locked_until = None
        delivery = original
    else:
        delivery = Delivery(
            endpoint_id=endpoint_id,
            event_id=original.event_id,
            event_type=original.event_type,
            payload=original.payload,
            **again,
        )
        session.add(delivery)
    session.flush()
    background.send_after_commit(session, events.DELIVER_TASK, [delivery.id])
    return delivery


def refuse_in_flight(delivery: Delivery) -> None:
    """Raise Conflict while a worker sends the delivery: the attempt's outcome, recorded when
    it ends, would overwrite the redelivery (a 400 failing the event, a retry's backoff)."""
    if delivery.status != DeliveryStatus.PENDING or delivery.locked_until is None:
        return
    claim_left = math.ceil((aware(delivery.locked_until) - utcnow()).total_seconds())
    if claim_left > 0:
        raise Conflict(
            f"Attempt {delivery.attempts} of this delivery is being sent now; its outcome shows "
            f"here when the receiver answers (within {timeout_seconds():g} s), or in "
            f"{claim_left} s at most if the worker sending it stopped. Redeliver it then if it "
            "still needs sending.",
            code="attempt_in_progress",
            details={"attempt": delivery.attempts, "claimed_for_seconds": claim_left},
        )


def refuse_disabled(endpoint: Endpoint, *, then: str) -> None:
    """Raise Conflict if the endpoint is disabled: nothing would be sent to it."""
    if not endpoint.enabled:
        raise Conflict(f"The webhook is disabled. Enable it, then {then}.")


def queued_again() -> dict:
    """The columns of an event queued again: a new delivery, due now, its message on its way.

    Its day of retries starts now (`created_at`); the sweep leaves it to that message.
    """
    now = utcnow()
    return {
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
        "queued_until": now + timedelta(seconds=events.QUEUED_GRACE_SECONDS),
    }


def send_test(session: Session, endpoint_id: int) -> dict:
    """Send a `ping` now and wait for the answer; record it; return what SPEC's test returns."""
    endpoint = get(session, endpoint_id)
    event_id = events.new_event_id()
    body = events.payload(event_id, events.PING, {"webhook_id": endpoint.id}, current_actor())
    started = utcnow()
    try:
        outcome = sender.send(
            endpoint.url,
            endpoint.signing_secrets(),
            event_id,
            body.encode(),
            timeout=timeout_seconds(),
            allow_private=allow_private(),
        )
    except Exception as error:  # said as any failed test is, not as a 500 with nothing recorded
        log.exception("webhook %s test failed unexpectedly", endpoint_id)
        outcome = sender.unexpected(error)
    # Deleted while its receiver answered (in another tab, by another admin)? Said as for any
    # deleted webhook, rather than failing on its delivery's foreign key (a 500).
    endpoint = session.get(Endpoint, endpoint_id, with_for_update=True, populate_existing=True)
    if endpoint is None:
        raise NotFound(f"Webhook {endpoint_id} does not exist.")
    delivery = Delivery(
        endpoint_id=endpoint.id,
        event_id=event_id,
        event_type=events.PING,
        payload=body,
        status=DeliveryStatus.SUCCEEDED if outcome.ok else DeliveryStatus.FAILED,
        attempts=1,
        status_code=outcome.status_code,
        response_time_ms=outcome.response_time_ms,
        error=outcome.error,
        created_at=started,
        finished_at=utcnow(),
    )
    session.add(delivery)
    if outcome.verdict == sender.Verdict.GONE:  # as a delivery's 410 does, and its error says
        for name, value in gone_columns(utcnow()).items():
            setattr(endpoint, name, value)
    session.flush()
    reply = outcome.reply()
    session.add(Attempt(delivery_id=delivery.id, number=1, started_at=started, **reply))
    return {"ok": outcome.ok, **reply}
