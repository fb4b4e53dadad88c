"""Resending what failed since a time (`POST /api/webhooks/<id>/recover`): through the API in
both modes, and through a running server and worker to a receiver that checks every request
with the `standardwebhooks` library."""

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from tests.helpers import wait_until

from .conftest import create_endpoint, settled_deliveries
from .receiver import Answer, Receiver

DISABLED = "The webhook is disabled. Enable it, then resend what failed."


def ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def deliveries_of(api, endpoint_id: int) -> list[dict]:
    """The webhook's deliveries, oldest first."""
    response = api.get(f"/api/webhooks/{endpoint_id}/deliveries", query_string={"limit": 200})
    return response.get_json()["items"][::-1]


def new_product(api, sku: str) -> None:
    assert api.post("/api/products", json={"sku": sku, "name": sku}).status_code == 201


def settle(any_app, api, endpoint_id: int) -> list[dict]:
    """Send the webhook's pending deliveries in this process, as a worker would, and wait until
    none is pending (a worker of the session may have taken one); return them, oldest first."""
    from product_importer.webhooks import delivery

    with any_app.app_context():
        for item in deliveries_of(api, endpoint_id):
            if item["status"] == "pending":
                delivery.deliver_one(item["id"])

    def settled() -> list[dict] | None:
        found = deliveries_of(api, endpoint_id)
        return found if all(item["status"] != "pending" for item in found) else None

    return wait_until(settled, "no delivery pending")


# --- the API, in both modes --------------------------------------------------------------------


def test_only_the_events_whose_latest_delivery_since_then_failed_are_queued_again(
    any_app, api, receiver
):
    receiver.default = Answer(400)  # refused, not retried: each delivery fails at once
    hook = create_endpoint(api, receiver.url, events=["product.created"])["id"]
    for sku in ("A-1", "B-2", "C-3", "D-4"):
        new_product(api, sku)
    api.post(f"/api/webhooks/{hook}/test")  # a failed ping: not an event, never resent
    older, second, third, fourth, ping = settle(any_app, api, hook)
    assert {d["status"] for d in (older, second, third, fourth, ping)} == {"failed"}
    receiver.default = Answer(200)
    api.post(f"/api/webhooks/{hook}/deliveries/{third['id']}/redeliver")  # delivered since
    settle(any_app, api, hook)
    since = {"since": second["created_at"]}

    response = api.post(f"/api/webhooks/{hook}/recover", json=since)

    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json() == {"since": second["created_at"], "queued": 2}
    *before, again_second, again_fourth = deliveries_of(api, hook)
    assert [d["event_id"] for d in (again_second, again_fourth)] == [
        second["event_id"],
        fourth["event_id"],
    ]
    # new deliveries of their own; the session's worker may already be sending them
    assert min(again_second["id"], again_fourth["id"]) > max(d["id"] for d in before)
    assert {d["status"] for d in (again_second, again_fourth)} <= {"pending", "succeeded"}
    # queued again, they are in line: asking again queues nothing more
    assert api.post(f"/api/webhooks/{hook}/recover", json=since).get_json()["queued"] == 0
    assert [d["status"] for d in settle(any_app, api, hook)[-2:]] == ["succeeded"] * 2
    resent = [r for r in receiver.requests if r.headers["webhook-id"] == second["event_id"]]
    assert len(resent) == 2 and resent[1].body == resent[0].body  # the same payload again


def test_more_events_than_a_batch_go_again_in_the_order_they_first_came(any_app, api, receiver):
    receiver.default = Answer(400)
    hook = create_endpoint(api, receiver.url, events=["product.created"])["id"]
    for number in range(30):  # more than one task's batch (delivery.BATCH_SIZE, 25)
        new_product(api, f"SKU-{number:02}")
    first_came = [d["event_id"] for d in settle(any_app, api, hook)]
    # the first event is redelivered, and fails again: its latest delivery is now the newest
    api.post(f"/api/webhooks/{hook}/deliveries/{deliveries_of(api, hook)[0]['id']}/redeliver")
    settle(any_app, api, hook)
    receiver.default = Answer(200)

    response = api.post(f"/api/webhooks/{hook}/recover", json={"since": ago(hours=1)})

    assert response.get_json()["queued"] == 30
    queued = [d for d in deliveries_of(api, hook) if d["status"] == "pending"]
    assert [d["event_id"] for d in queued] == first_came
    assert {d["status"] for d in settle(any_app, api, hook)[-30:]} == {"succeeded"}


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({}, "since", "ISO 8601"),
        ({"since": "yesterday"}, "since", "ISO 8601"),
        ({"since": 1733300000}, "since", "ISO 8601"),
        ({"since": "2026-12-04T09:00:00"}, "since", "time zone"),
        ({"since": ago(days=31)}, "since", "At most 30 days back"),
        # before year 1 in UTC: no datetime holds it (a 500 before)
        ({"since": "0001-01-01T00:00:00+01:00"}, "since", "At most 30 days back"),
        ({"since": "9999-12-31T23:59:59-01:00"}, "since", "past"),
        ({"since": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, "since", "past"),
        ({"since": ago(hours=1), "until": ago(minutes=1)}, "until", "Unknown field"),
    ],
)
def test_a_recovery_says_what_is_wrong_with_its_time(api, receiver, body, field, says):
    endpoint = create_endpoint(api, receiver.url)

    response = api.post(f"/api/webhooks/{endpoint['id']}/recover", json=body)

    assert response.status_code == 422
    assert says in response.get_json()["error"]["details"][field]


def test_a_disabled_webhook_is_not_recovered_and_nobody_but_an_admin_may(
    any_app, api, accounts, receiver
):
    from tests.conftest import client_with_token

    endpoint = create_endpoint(api, receiver.url, enabled=False)
    url = f"/api/webhooks/{endpoint['id']}/recover"
    body = {"since": ago(hours=1)}

    disabled = api.post(url, json=body)
    editor = client_with_token(any_app, accounts["editor"].token).post(url, json=body)

    assert disabled.status_code == 409
    assert disabled.get_json()["error"]["message"] == DISABLED
    assert editor.status_code == 403
    assert api.post("/api/webhooks/999/recover", json=body).status_code == 404


# --- a running server and worker ---------------------------------------------------------------


@pytest.fixture
def failing():
    """A receiver that answers 503 (retry later) until told otherwise."""
    server = Receiver(default=Answer(503))
    yield server
    server.close()


def test_events_that_failed_while_the_webhook_was_off_are_resent_signed_as_before(
    live_server, http, failing
):
    hook = http.post("/api/webhooks", json={"url": failing.url, "events": ["product.created"]})
    hook = hook.json()
    for sku in ("A-1", "B-2", "C-3"):
        assert http.post("/api/products", json={"sku": sku, "name": sku}).status_code == 201
    failing.wait_for(2)  # the first event retried; the others wait their turn
    assert http.patch(f"/api/webhooks/{hook['id']}", json={"enabled": False}).is_success
    first, second, third = settled_deliveries(http, hook["id"])
    assert {d["error"] for d in (second, third)} == {"Not sent: the webhook is disabled."}
    url = f"/api/webhooks/{hook['id']}/recover"
    refused = http.post(url, json={"since": second["created_at"]})
    assert (refused.status_code, refused.json()["error"]["message"]) == (409, DISABLED)

    failing.default = Answer(200)
    assert http.patch(f"/api/webhooks/{hook['id']}", json={"enabled": True}).is_success
    response = http.post(url, json={"since": second["created_at"]})

    assert response.status_code == 202, response.text
    assert response.json()["queued"] == 2  # the first came before that time
    resent = wait_until(lambda: failing.accepted() if len(failing.accepted()) == 2 else None, "2")
    assert [r.headers["webhook-id"] for r in resent] == [second["event_id"], third["event_id"]]
    for request in resent:
        event = Webhook(hook["secret"]).verify(request.body, request.headers)
        assert event["id"] == request.headers["webhook-id"]
    shown = settled_deliveries(http, hook["id"])
    assert [d["status"] for d in shown] == ["failed", "failed", "failed", "succeeded", "succeeded"]
    (entry,) = http.get("/api/audit", params={"action": "webhook.recovered"}).json()["items"]
    assert entry["details"] == {"since": second["created_at"], "queued": 2}
    assert entry["target"] == f"webhook {hook['id']}"
