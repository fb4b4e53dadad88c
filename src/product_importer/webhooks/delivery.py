"""Sending webhook deliveries, as workers do it: claim, attempt, record, retry, sweep.

Deliveries are rows (an outbox written with the change that caused them). A task message
only says "these are due"; the worker claims a row before sending it (`SKIP LOCKED`), so
however many messages or workers there are, one attempt is made at a time. Retries are
scheduled by writing `next_attempt_at`, and every worker's periodic sweep sends what is due.

Each endpoint gets its events in the order they were created: a delivery is claimed only
when no earlier one to its endpoint is pending (being sent, or waiting for a retry), unless
it has waited WEBHOOK_ORDER_WAIT_SECONDS since it was created. The worker that finishes a
delivery sends the next one of its endpoint at once. `ping` (the Test button) is outside the
order: it neither waits nor holds anyone up.
"""

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Row, bindparam, delete, exists, insert, or_, select, update
from sqlalchemy.exc import DBAPIError

from .. import database
from ..extensions import db
from ..metrics import pushed
from ..timeutil import aware, spoken_wait, utcnow
from . import events, sender
from .models import Attempt, Delivery, DeliveryStatus, Endpoint, gone_columns, signing_secrets
from .sender import Outcome, Verdict
from .service import allow_private, order_wait_seconds, retry_base_seconds, timeout_seconds

log = logging.getLogger(__name__)

RETRY_WINDOW = timedelta(hours=24)  # "about a day" of retries
MAX_RETRY_DELAY_SECONDS = 4 * 3600.0
RETRY_FACTOR = 3
LEASE_MARGIN_SECONDS = 60.0  # a claim outlives the attempt's timeout by this much
# Recording an attempt while the database is out of reach: tried again after 0.5 s, 1 s, 2 s...
# at most 8 s apart, while the claim lasts.
RECORD_RETRY_FIRST_SECONDS = 0.5
RECORD_RETRY_MOST_SECONDS = 8.0
SWEEP_LIMIT = 500
BATCH_SIZE = 25  # deliveries to one endpoint that one task sends, one after another
DELIVERY_RETENTION = timedelta(days=30)
CLEANUP_EVERY_SECONDS = 3600.0

deliveries = Delivery.__table__
attempts_table = Attempt.__table__
endpoints = Endpoint.__table__
_state = {"cleaned_at": 0.0}
_earlier = deliveries.alias("earlier")

# Waiting its turn: an earlier event to the same endpoint is still pending, and this one was
# created after `hold_since` (now - WEBHOOK_ORDER_WAIT_SECONDS). Pings take no part.
HELD_BACK = (
    exists()
    .where(
        _earlier.c.endpoint_id == deliveries.c.endpoint_id,
        _earlier.c.status == DeliveryStatus.PENDING.value,
        _earlier.c.id < deliveries.c.id,
        _earlier.c.event_type != events.PING,
    )
    .where(deliveries.c.event_type != events.PING)
    .where(deliveries.c.created_at > bindparam("hold_since"))
)

# Statements a worker runs for every attempt, built once (building them costs more than
# running them).
_due_now = (
    select(deliveries.c.id)
    .where(
        deliveries.c.id == bindparam("delivery_id"),
        deliveries.c.status == DeliveryStatus.PENDING.value,
        deliveries.c.next_attempt_at <= bindparam("now"),
        or_(deliveries.c.locked_until.is_(None), deliveries.c.locked_until < bindparam("now")),
        ~HELD_BACK,
    )
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)
UNQUEUE = (
    update(deliveries)
    .where(deliveries.c.id.in_(bindparam("ids", expanding=True)))
    .where(deliveries.c.status == DeliveryStatus.PENDING.value)
    .values(queued_until=None)
)
NEXT_IN_LINE = (
    select(deliveries.c.id)
    .where(
        deliveries.c.endpoint_id == bindparam("endpoint_id"),
        deliveries.c.status == DeliveryStatus.PENDING.value,
        deliveries.c.event_type != events.PING,
    )
    .order_by(deliveries.c.id)
    .limit(1)
)
CLAIM = (
    update(deliveries)
    .where(deliveries.c.id == _due_now)
    .values(attempts=deliveries.c.attempts + 1, locked_until=bindparam("lease_until"))
    .returning(
        deliveries.c.id,
        deliveries.c.attempts,
        deliveries.c.endpoint_id,
        deliveries.c.event_id,
        deliveries.c.payload,
        deliveries.c.created_at,
    )
)
ENDPOINT_OF = select(deliveries.c.id, deliveries.c.endpoint_id).where(
    deliveries.c.id.in_(bindparam("ids", expanding=True))
)
ENDPOINT = select(
    endpoints.c.url,
    endpoints.c.secret,
    endpoints.c.previous_secret,
    endpoints.c.previous_secret_until,
    endpoints.c.enabled,
).where(endpoints.c.id == bindparam("endpoint_id"))
RECORD = (
    update(deliveries)
    # only while this attempt's claim holds: a worker that lost it records nothing
    .where(deliveries.c.id == bindparam("delivery_id"))
    .where(deliveries.c.attempts == bindparam("attempt"))
    # not yet recorded: a record whose commit went through as its connection was lost is
    # not recorded twice when tried again
    .where(deliveries.c.locked_until.is_not(None))
    .values(
        locked_until=None,
        queued_until=None,  # a retry is the sweep's to send when it falls due
        **{
            name: bindparam(name, type_=deliveries.c[name].type)
            for name in (
                "status",
                "status_code",
                "response_time_ms",
                "error",
                "next_attempt_at",
                "finished_at",
            )
        },
    )
)


@dataclass(frozen=True)
class Claim:
    """A delivery this worker holds while it makes attempt number `attempt`."""

    id: int
    attempt: int
    endpoint_id: int
    event_id: str
    payload: str
    created_at: datetime
    lease_until: datetime  # then another worker may claim it for the next attempt


def deliver(delivery_ids: list[int]) -> int:
    """Send those of the deliveries that are due; return how many attempts were made.

    One endpoint's deliveries go in order, a batch per task; other endpoints' batches go to
    tasks of their own, so a slow receiver holds up no one else.
    """
    with db.engine.connect() as conn:
        batches = batches_by_endpoint(conn, delivery_ids)
        if not batches:
            return 0
        first, *others = batches
        for batch in others:
            events.send(batch)
        made = sum(deliver_one(delivery_id, conn) for delivery_id in first)
        with conn.begin():
            # those left waiting for their turn are the sweep's once it comes, not in 3 minutes
            conn.execute(UNQUEUE, {"ids": first})
        return made


def batches_by_endpoint(conn: Connection, delivery_ids: list[int]) -> list[list[int]]:
    """Group ids by endpoint, in order, in batches of at most BATCH_SIZE."""
    with conn.begin():
        rows = conn.execute(ENDPOINT_OF, {"ids": list(delivery_ids)}).all()
    return _batches(rows)


def _batches(rows) -> list[list[int]]:
    by_endpoint: dict[int, list[int]] = {}
    for delivery_id, endpoint_id in sorted(rows):
        by_endpoint.setdefault(endpoint_id, []).append(delivery_id)
    return [
        ids[start : start + BATCH_SIZE]
        for ids in by_endpoint.values()
        for start in range(0, len(ids), BATCH_SIZE)
    ]


def deliver_one(delivery_id: int, conn: Connection | None = None) -> int:
    """Send one due delivery, then those its ending lets go; return how many attempts."""
    if conn is None:
        with db.engine.connect() as own:
            return deliver_one(delivery_id, own)
    made = 0
    while (outcome := _attempt(conn, delivery_id)) is not None:
        made += 1
        claim, verdict = outcome
        if verdict == Verdict.RETRY:
            break  # the later ones keep waiting for its retry
        # it left `pending`: the next of its endpoint is free to go, and this worker is here
        with conn.begin():
            delivery_id = conn.execute(NEXT_IN_LINE, {"endpoint_id": claim.endpoint_id}).scalar()
        if delivery_id is None:
            break
    return made


def _attempt(conn: Connection, delivery_id: int) -> tuple[Claim, Verdict] | None:
    """Claim one due delivery, make one attempt and record it; None when it was not due."""
    claimed = _claim(conn, delivery_id)
    if claimed is None:
        return None
    claim, endpoint = claimed
    started = utcnow()
    outcome, state = _decide(claim, endpoint)
    _record_surely(conn, claim, outcome, state, started)
    pushed.webhook_attempt(outcome.verdict.value, outcome.response_time_ms)
    level = logging.DEBUG if outcome.ok else logging.INFO
    log.log(level, "webhook delivery %s attempt %s: %s", claim.id, claim.attempt, _said(outcome))
    return claim, outcome.verdict


def _decide(claim: Claim, endpoint: Row | None) -> tuple[Outcome, dict]:
    """Make the attempt and say what follows it; an error no one foresaw counts as a failed
    attempt, so that the delivery is never left claimed, unrecorded, holding up the next."""
    try:
        outcome = _send(claim, endpoint)
        return outcome, _next_state(claim, outcome)
    except Exception as error:
        log.exception("webhook delivery %s attempt %s failed unexpectedly", claim.id, claim.attempt)
        outcome = sender.unexpected(error)
        return outcome, _next_state(claim, outcome)


def _send(claim: Claim, endpoint: Row | None) -> Outcome:
    if endpoint is None or not endpoint.enabled:
        return Outcome(Verdict.FAILED, error="Not sent: the webhook is disabled.")
    return sender.send(
        endpoint.url,
        _secrets(endpoint),
        claim.event_id,
        claim.payload.encode(),
        timeout=timeout_seconds(),
        allow_private=allow_private(),
    )


def _secrets(endpoint: Row) -> list[str]:
    return signing_secrets(
        endpoint.secret, endpoint.previous_secret, endpoint.previous_secret_until
    )


def _said(outcome: Outcome) -> str:
    return outcome.error or f"HTTP {outcome.status_code} in {outcome.response_time_ms} ms"


def _claim(conn: Connection, delivery_id: int) -> tuple[Claim, Row | None] | None:
    """Take a due delivery for one attempt (another worker skips it until the lease ends)."""
    now = utcnow()
    lease_until = now + timedelta(seconds=timeout_seconds() + LEASE_MARGIN_SECONDS)
    hold_since = now - timedelta(seconds=order_wait_seconds())
    with conn.begin():
        params = {"delivery_id": delivery_id, "now": now, "lease_until": lease_until}
        params["hold_since"] = hold_since
        row = conn.execute(CLAIM, params).first()
        if row is None:
            return None
        endpoint = conn.execute(ENDPOINT, {"endpoint_id": row.endpoint_id}).first()
    return Claim(*row, lease_until=lease_until), endpoint


def _record_surely(
    conn: Connection, claim: Claim, outcome: Outcome, state: dict, started: datetime
) -> None:
    """Record the attempt; if the database cut the connection off (a restart, a network cut,
    an admin ending it), again on a new one, with backoff, as long as the claim lasts.

    Unrecorded, the delivery stays claimed, holds up the events behind it for minutes, and
    is sent again. Past the claim another worker may be sending it already: given up then.
    """
    wait = RECORD_RETRY_FIRST_SECONDS
    while True:
        try:
            return _record(conn, claim, outcome, state, started)  # reconnects when used
        except DBAPIError as error:
            if not (error.connection_invalidated or conn.invalidated):
                raise
            left = (claim.lease_until - utcnow()).total_seconds()
            if left <= 0:
                return _unrecorded(claim, outcome, error)
            wait = min(wait, left)
            _say_unreachable(claim, error, wait)
            time.sleep(wait)
            wait = min(wait * 2, RECORD_RETRY_MOST_SECONDS)


def _say_unreachable(claim: Claim, error: DBAPIError, wait: float) -> None:
    log.warning(
        "webhook delivery %s attempt %s: the database is out of reach while recording it (%s); "
        "trying again in %.1f s, on a new connection",
        claim.id,
        claim.attempt,
        _first_line(error),
        wait,
    )


def _unrecorded(claim: Claim, outcome: Outcome, error: DBAPIError) -> None:
    # "twice" only if it reached the receiver: refused, unresolved or disabled, it did not
    twice = "its receiver gets this event twice, with the same webhook-id"
    log.error(
        "webhook delivery %s attempt %s (%s) could not be recorded: the database was out of "
        "reach until its claim ended (%s). It is sent again once a worker's sweep finds it "
        "due%s",
        claim.id,
        claim.attempt,
        _said(outcome),
        _first_line(error),
        f"; {twice}" if outcome.status_code is not None else "",
    )


def _first_line(error: DBAPIError) -> str:
    """The driver's message, first line (its name if it says nothing)."""
    said = str(error.orig).strip().splitlines()
    return said[0] if said else type(error.orig).__name__


def _record(
    conn: Connection, claim: Claim, outcome: Outcome, state: dict, started: datetime
) -> None:
    """Log the attempt and move the delivery on to `state`: done, failed, or due again later."""
    reply = outcome.reply()
    with conn.begin():
        if outcome.verdict == Verdict.GONE:
            # The webhook first, as its delete does (then its deliveries): the delivery first
            # could deadlock with a delete, which would fail one side.
            conn.execute(_HOLD_ENDPOINT, {"endpoint_id": claim.endpoint_id})
        row = {"delivery_id": claim.id, "attempt": claim.attempt, **reply}
        if not conn.execute(RECORD, row | state).rowcount:
            return  # the claim was lost, or the webhook deleted (its deliveries with it)
        conn.execute(
            insert(attempts_table),
            {"delivery_id": claim.id, "number": claim.attempt, "started_at": started, **reply},
        )
        if outcome.verdict == Verdict.GONE:
            _disable(conn, claim.endpoint_id)


_HOLD_ENDPOINT = (
    select(endpoints.c.id)
    .where(endpoints.c.id == bindparam("endpoint_id"))
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE: events may still be published to it
)


def _next_state(claim: Claim, outcome: Outcome) -> dict:
    now = utcnow()
    if outcome.verdict == Verdict.SUCCEEDED:
        return {"status": DeliveryStatus.SUCCEEDED, "next_attempt_at": None, "finished_at": now}
    if outcome.verdict == Verdict.RETRY:
        delay = retry_delay(claim.attempt, outcome.retry_after)
        next_at = now + timedelta(seconds=delay)
        if next_at <= aware(claim.created_at) + RETRY_WINDOW:
            return {
                "status": DeliveryStatus.PENDING,
                "next_attempt_at": next_at,
                "finished_at": None,
            }
        return {
            "status": DeliveryStatus.FAILED,
            "next_attempt_at": None,
            "finished_at": now,
            "error": _given_up(claim, outcome, now),
        }
    return {"status": DeliveryStatus.FAILED, "next_attempt_at": None, "finished_at": now}


def _given_up(claim: Claim, outcome: Outcome, now: datetime) -> str:
    """Why a delivery that would be retried is not: its day is over, or the receiver asked
    for a wait (`Retry-After`) that ends past it, which may be seconds after it was sent."""
    made = f"{claim.attempt} attempt{'' if claim.attempt == 1 else 's'}"
    window_ends = aware(claim.created_at) + RETRY_WINDOW
    asked = outcome.retry_after
    # in seconds: a date years away is past what a datetime can hold
    if asked is None or asked <= (window_ends - now).total_seconds():
        return f"Gave up after {made} over a day: {outcome.error}"
    return (
        f"Gave up after {made}: the receiver asked to be retried in {spoken_wait(asked)} "
        f"(Retry-After), past this event's day of retries: {outcome.error}. "
        "Redeliver it once the receiver accepts events"
    )


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt`: exponential, jittered."""
    backoff = min(retry_base_seconds() * RETRY_FACTOR ** (attempt - 1), MAX_RETRY_DELAY_SECONDS)
    # jitter spreads out the retries of many deliveries that failed together
    delay = backoff * random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_WINDOW.total_seconds()))
    return delay


def _disable(conn: Connection, endpoint_id: int) -> None:
    log.warning("webhook %s answered 410 Gone; disabling it", endpoint_id)
    conn.execute(
        update(endpoints).where(endpoints.c.id == endpoint_id).values(**gone_columns(utcnow()))
    )


# --- periodic maintenance ---------------------------------------------------------------------


def periodic() -> None:
    """Send deliveries that are due (retries, and any whose message was lost); prune old ones."""
    dispatch_due()
    if time.monotonic() - _state["cleaned_at"] >= CLEANUP_EVERY_SECONDS:
        _state["cleaned_at"] = time.monotonic()
        remove_old_deliveries()


def dispatch_due() -> int:
    """Hand each due delivery no task is on its way for to a task; return how many."""
    now = utcnow()
    waiting = (
        select(deliveries.c.id)
        .where(
            deliveries.c.status == DeliveryStatus.PENDING,
            deliveries.c.next_attempt_at <= now,
            or_(deliveries.c.locked_until.is_(None), deliveries.c.locked_until < now),
            or_(deliveries.c.queued_until.is_(None), deliveries.c.queued_until < now),
            ~HELD_BACK,
        )
        .order_by(deliveries.c.next_attempt_at)
        .limit(SWEEP_LIMIT)
        .with_for_update(skip_locked=True)
    )
    queued_until = now + timedelta(seconds=events.QUEUED_GRACE_SECONDS)
    hold_since = now - timedelta(seconds=order_wait_seconds())
    with db.engine.begin() as conn:
        # marked as queued, so other workers' sweeps leave them alone
        rows = conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(waiting.scalar_subquery()))
            .values(queued_until=queued_until)
            .returning(deliveries.c.id, deliveries.c.endpoint_id),
            {"hold_since": hold_since},
        ).all()
    for batch in _batches(rows):
        events.send(batch)
    return len(rows)


def remove_old_deliveries() -> int:
    """Delete finished deliveries (and their attempts) older than DELIVERY_RETENTION."""
    cutoff = utcnow() - DELIVERY_RETENTION
    with db.engine.begin() as conn:
        # a month of a busy webhook's deliveries: more than a timeout set for everyone allows
        database.of(conn).without_statement_timeout(conn)
        return conn.execute(
            delete(deliveries).where(
                deliveries.c.status != DeliveryStatus.PENDING, deliveries.c.created_at < cutoff
            )
        ).rowcount
