"""Rotating a webhook's secret: a new one shown once, the old one signing beside it a while.

Signatures are checked with the `standardwebhooks` library, as a receiver holding the old or
the new secret would check them.
"""

from datetime import UTC, datetime

import pytest
from sqlalchemy import update
from standardwebhooks import Webhook, WebhookVerificationError

from product_importer.webhooks.models import Endpoint
from tests.helpers import wait_until

from .conftest import create_endpoint


def rotate(client, endpoint: dict, **body) -> dict:
    """Rotate the endpoint's secret through the API; return the response's JSON."""
    path = f"/api/webhooks/{endpoint['id']}/rotate-secret"
    response = client.post(path, json=body) if body else client.post(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def accepts(secret: str, request) -> bool:
    """Whether a receiver holding `secret` accepts the request (the library's check)."""
    try:
        Webhook(secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


def ping(client, endpoint: dict, receiver):
    """Send the endpoint a test ping; return the request the receiver got."""
    before = len(receiver.requests)
    assert client.post(f"/api/webhooks/{endpoint['id']}/test").get_json()["ok"]
    return receiver.requests[before]


def test_a_rotation_shows_the_new_secret_once_and_both_sign_for_a_day(api, receiver):
    endpoint = create_endpoint(api, receiver.url)

    rotated = rotate(api, endpoint)

    new = rotated["secret"]
    assert new.startswith("whsec_") and new != endpoint["secret"]
    shown = api.get(f"/api/webhooks/{endpoint['id']}").get_json()
    assert "secret" not in shown
    assert shown["previous_secret_expires_at"] == rotated["previous_secret_expires_at"]
    assert rotated["previous_secret_expires_at"] is not None
    request = ping(api, endpoint, receiver)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert accepts(endpoint["secret"], request) and accepts(new, request)


def test_a_leaked_secret_stops_signing_at_once(api, receiver):
    endpoint = create_endpoint(api, receiver.url)

    rotated = rotate(api, endpoint, keep_previous_hours=0)

    assert rotated["previous_secret_expires_at"] is None
    request = ping(api, endpoint, receiver)
    assert accepts(rotated["secret"], request)
    assert not accepts(endpoint["secret"], request)


def test_a_second_rotation_drops_the_first_secret(api, receiver):
    endpoint = create_endpoint(api, receiver.url)
    middle = rotate(api, endpoint)["secret"]

    last = rotate(api, endpoint)["secret"]

    request = ping(api, endpoint, receiver)
    assert accepts(last, request) and accepts(middle, request)
    assert not accepts(endpoint["secret"], request)


def test_the_old_secret_stops_once_its_time_is_up(api, receiver, any_engine):
    endpoint = create_endpoint(api, receiver.url)
    new = rotate(api, endpoint, keep_previous_hours=1)["secret"]

    with any_engine.begin() as conn:  # the hour has passed (moved, not waited for)
        past = datetime(2000, 1, 1, tzinfo=UTC)
        conn.execute(update(Endpoint).values(previous_secret_until=past))

    assert (
        api.get(f"/api/webhooks/{endpoint['id']}").get_json()["previous_secret_expires_at"] is None
    )
    request = ping(api, endpoint, receiver)
    assert accepts(new, request) and not accepts(endpoint["secret"], request)


@pytest.mark.usefixtures("live_worker")
def test_queued_deliveries_are_signed_by_both_secrets(client, receiver):
    endpoint = create_endpoint(client, receiver.url, events=["product.created"])
    new = rotate(client, endpoint)["secret"]

    assert client.post("/api/products", json={"sku": "R-1", "name": "Rotated"}).status_code == 201

    wait_until(lambda: receiver.requests, "the product.created delivery")
    (request,) = receiver.requests
    assert accepts(endpoint["secret"], request) and accepts(new, request)
    assert Webhook(new).verify(request.body, request.headers)["data"]["sku"] == "R-1"


@pytest.mark.parametrize(
    "body",
    [
        {"keep_previous_hours": -1},
        {"keep_previous_hours": 169},
        {"keep_previous_hours": "24"},
        {"keep_previous_hours": True},
        {"keep_previous_hours": 1.5},
        {"keep": 24},
    ],
)
def test_a_rotation_asked_wrongly_is_refused_and_changes_nothing(api, receiver, body):
    endpoint = create_endpoint(api, receiver.url)

    response = api.post(f"/api/webhooks/{endpoint['id']}/rotate-secret", json=body)

    assert response.status_code == 422
    assert set(response.get_json()["error"]["details"]) == set(body)
    request = ping(api, endpoint, receiver)
    assert accepts(endpoint["secret"], request)
    assert len(request.headers["webhook-signature"].split(" ")) == 1


def test_rotating_an_unknown_webhook_is_not_found(api):
    assert api.post("/api/webhooks/999999/rotate-secret").status_code == 404


def test_a_rotation_is_audited_and_only_admins_may_rotate(client, client_as, receiver):
    endpoint = create_endpoint(client, receiver.url)

    assert (
        client_as("editor").post(f"/api/webhooks/{endpoint['id']}/rotate-secret").status_code == 403
    )
    rotated = rotate(client, endpoint, keep_previous_hours=2)

    (entry,) = client.get(
        "/api/audit", query_string={"action": "webhook.secret_rotated"}
    ).get_json()["items"]
    assert entry["target"] == receiver.url
    assert entry["details"] == {
        "id": endpoint["id"],
        "until": rotated["previous_secret_expires_at"],
    }
    assert rotated["secret"] not in str(entry)
