"""Each webhook gets its events in the order they happened, however many workers send them,
and a receiver that was down gets every event once it is back: in order, each accepted once.

Signatures are checked with the `standardwebhooks` library, as a receiver would.
"""

import pytest
from standardwebhooks import Webhook

from tests.conftest import http_client
from tests.helpers import wait_until

from .receiver import Answer, Receiver

EVENTS = ["product.created", "product.updated", "product.deleted"]
HOUR = 3600
# Celery's line for a delivery task that made attempts (its result: how many).


@pytest.fixture
def http(live_server, accounts):
    with http_client(live_server, accounts["admin"].token) as client:
        yield client


def add_webhook(http, url: str) -> dict:
    response = http.post("/api/webhooks", json={"url": url, "events": EVENTS})
    assert response.status_code == 201, response.text
    return response.json()


def churn(http, skus: list[str]) -> list[tuple[str, str]]:
    """Create, update and delete each product at once (well within a second); the events."""
    happened = []
    for sku in skus:
        product = http.post("/api/products", json={"sku": sku, "name": "New"}).json()
        assert http.patch(f"/api/products/{product['id']}", json={"name": "Renamed"}).is_success
        assert http.delete(f"/api/products/{product['id']}").is_success
        happened += [(event, sku) for event in EVENTS]
    return happened


def events_of(hook: dict, requests) -> list[tuple[str, str]]:
    """(type, sku) of each request, after checking its signature with the library."""
    verified = [Webhook(hook["secret"]).verify(r.body, r.headers) for r in requests]
    return [(event["type"], event["data"]["sku"]) for event in verified]


def deliveries(sql, hook: dict) -> list:
    """The webhook's delivery rows, oldest first."""
    return sql(
        "SELECT * FROM webhook_deliveries WHERE endpoint_id = :id ORDER BY id", id=hook["id"]
    )


@pytest.fixture
def patient_workers(worker, start_worker):
    """Two worker processes of the test's own that wait two minutes for a receiver's answer
    (the session's worker is stopped meanwhile)."""
    worker.process.kill()  # started again by the next test that needs it
    started = [start_worker(WEBHOOK_TIMEOUT_SECONDS="120") for _ in range(2)]
    yield started
    for process in started:
        process.kill()


@pytest.mark.slow  # two worker processes of its own
def test_deliveries_to_many_webhooks_go_out_side_by_side_from_both_workers(patient_workers, http):
    # A worker sends one request per thread (4), and takes no more tasks than it has threads
    # (prefetch 1): six requests open at once can only come from both workers.
    receiver = Receiver(default=Answer(held=True))  # answers nothing until released
    hooks = [add_webhook(http, f"{receiver.url}?hook={n}") for n in range(8)]

    created = http.post("/api/products", json={"sku": "SPREAD-1", "name": "New"})
    assert created.status_code == 201

    receiver.wait_for_open(6, timeout=120)
    receiver.release()
    requests = receiver.wait_for(len(hooks), timeout=120)
    receiver.close()
    assert sorted(r.path for r in requests) == sorted(f"/hook?hook={n}" for n in range(8))


@pytest.mark.slow  # two worker processes of its own
def test_with_two_workers_each_webhook_gets_its_events_in_order(two_workers, http):
    # Which worker sends what is the broker's choice: on a quiet machine one may send them all,
    # so the test holds the order, not the share (both workers claim with SKIP LOCKED).
    receiver = Receiver(default=Answer(sleep=0.2))  # slow: deliveries pile up
    hooks = [add_webhook(http, f"{receiver.url}?hook={n}") for n in range(6)]

    happened = churn(http, ["ORD-1", "ORD-2", "ORD-3"])

    requests = receiver.wait_for(len(hooks) * len(happened), timeout=120)
    receiver.close()
    for n, hook in enumerate(hooks):
        mine = [r for r in requests if r.path.endswith(f"?hook={n}")]
        assert events_of(hook, mine) == happened  # created, updated, deleted: never resurrected


def test_a_receiver_down_for_an_hour_gets_every_event_once_in_order(live_worker, http, sql):
    receiver = Receiver(default=Answer(status=503))
    hook = add_webhook(http, receiver.url)
    happened = churn(http, ["DOWN-1", "DOWN-2"])
    wait_until(
        lambda: deliveries(sql, hook)[0].attempts >= 3, "retried three times"
    )  # fast retries here
    # Then the receiver asks for an hour's pause: the first event's next attempt is an hour on.
    receiver.default = Answer(status=503, headers={"retry-after": str(HOUR)})
    half_an_hour_on = sql("SELECT now() + interval '30 minutes'")[0][0]
    wait_until(
        lambda: deliveries(sql, hook)[0].next_attempt_at > half_an_hour_on, "an hour's pause"
    )
    tried = {r.headers["webhook-id"] for r in receiver.requests}
    assert len(tried) == 1  # only the first event was tried; the later ones waited behind it

    # The receiver is back and the hour has passed: move every clock of the deliveries on.
    receiver.default = Answer()
    sql(
        "UPDATE webhook_deliveries SET created_at = created_at - interval '1 hour', "
        "next_attempt_at = next_attempt_at - interval '1 hour' WHERE endpoint_id = :id",
        id=hook["id"],
    )

    accepted = wait_until(lambda: len(receiver.accepted()) == len(happened), "all delivered")
    accepted = receiver.accepted()
    receiver.close()
    assert events_of(hook, accepted) == happened
    ids = [r.headers["webhook-id"] for r in accepted]
    assert len(set(ids)) == len(ids)  # each accepted once
    assert tried == {ids[0]}  # the retries of the first event carried its webhook-id
    rows = deliveries(sql, hook)
    assert [(row.event_id, row.status) for row in rows] == [(i, "succeeded") for i in ids]


def test_a_later_event_stops_waiting_after_the_order_wait(live_worker, http, sql):
    receiver = Receiver(default=Answer())
    receiver.answer(Answer(status=503, headers={"retry-after": str(HOUR)}))  # first event fails
    hook = add_webhook(http, receiver.url)
    product = http.post("/api/products", json={"sku": "WAIT-1", "name": "New"}).json()
    http.patch(f"/api/products/{product['id']}", json={"name": "Renamed"})
    wait_until(lambda: deliveries(sql, hook)[0].attempts == 1, "tried once")

    # Seven hours later the first event still waits for its retry; the second waited more than
    # WEBHOOK_ORDER_WAIT_SECONDS (6 hours by default), so it goes without it.
    sql(
        "UPDATE webhook_deliveries SET created_at = created_at - interval '7 hours' "
        "WHERE endpoint_id = :id",
        id=hook["id"],
    )

    accepted = wait_until(receiver.accepted, "the second event delivered")
    receiver.close()
    assert events_of(hook, accepted) == [("product.updated", "WAIT-1")]
    first, second = deliveries(sql, hook)
    assert (first.status, first.attempts) == ("pending", 1)  # still waiting for its retry
    assert (second.status, second.attempts) == ("succeeded", 1)
