"""Webhook payloads say who caused the event (`actor`), checked with the Standard Webhooks
library a receiver would use."""

import pytest
from standardwebhooks import Webhook

from tests.conftest import http_client
from tests.helpers import import_csv
from tests.webhooks.receiver import Receiver

from .conftest import run_cli

pytestmark = pytest.mark.usefixtures("live_worker")
EDITOR = {"id": 2, "email": "editor@example.test"}


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def hook(client, receiver) -> dict:
    body = {"url": receiver.url, "events": ["product.created", "import.completed"]}
    response = client.post("/api/webhooks", json=body)
    assert response.status_code == 201
    return response.get_json()


def received_event(receiver, hook, count: int = 1) -> dict:
    """The last event the receiver got, after checking its signature as receivers do."""
    request = receiver.wait_for(count)[-1]
    return Webhook(hook["secret"]).verify(request.body, request.headers)


def test_a_product_event_names_the_account_that_made_the_change(client_as, receiver, hook):
    assert client_as("editor").post("/api/products", json={"sku": "P", "name": "Pen"})

    event = received_event(receiver, hook)

    assert event["type"] == "product.created"
    assert event["actor"] == EDITOR
    assert event["data"]["sku"] == "P"


def test_an_import_event_names_its_uploader(live_server, accounts, receiver, hook):
    with http_client(live_server, accounts["editor"].token) as editor:
        job = import_csv(editor, "sku,name\nA-1,Apple\n")

    event = received_event(receiver, hook)

    assert (event["type"], event["data"]["id"]) == ("import.completed", job["id"])
    assert event["actor"] == EDITOR
    assert event["data"]["created_by"] == EDITOR["email"]


def test_an_import_from_the_command_line_has_no_actor(receiver, hook, tmp_path):
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n")

    done = run_cli("import", str(path))

    assert done.returncode == 0, done.stderr
    event = received_event(receiver, hook)
    assert event["type"] == "import.completed"
    assert event["actor"] is None
    assert event["data"]["created_by"] is None
    # asked at no address, and PUBLIC_URL unset: the path alone (docs/api.md says so)
    assert event["data"]["changes_url"] == f"/api/imports/{event['data']['id']}/changes"


def test_a_tampered_payload_fails_the_library_check(client_as, receiver, hook):
    from standardwebhooks.webhooks import WebhookVerificationError

    client_as("editor").post("/api/products", json={"sku": "P", "name": "Pen"})
    request = receiver.wait_for(1)[0]

    with pytest.raises(WebhookVerificationError):
        Webhook(hook["secret"]).verify(request.body.replace(b"Pen", b"Pan"), request.headers)
