"""Events from the rest of the app: one per import, never one per CSV row."""

import time

import pytest

from tests.helpers import import_csv

from .receiver import verify

pytestmark = pytest.mark.usefixtures("live_worker")


@pytest.fixture
def import_hook(http, receiver) -> dict:
    body = {"url": receiver.url, "events": ["import.completed", "import.failed"]}
    response = http.post("/api/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_completed_import_sends_one_import_completed(http, receiver, import_hook):
    job = import_csv(http, "sku,name\nA-1,Apple\nB-2,Banana\nC-3,Cherry\n,No SKU\n")

    (request,) = receiver.wait_for(1)
    time.sleep(1.5)  # nothing else follows: no event per row
    assert len(receiver.requests) == 1
    assert verify(import_hook["secret"], request)
    event = request.json()
    assert event["type"] == "import.completed"
    assert event["data"]["id"] == job["id"]
    assert event["data"]["status"] == "completed_with_errors"
    assert (event["data"]["created"], event["data"]["rows_invalid"]) == (3, 1)


def test_a_failed_import_sends_import_failed(http, receiver, import_hook):
    job = import_csv(http, "name\nNo SKU column\n")

    (request,) = receiver.wait_for(1)
    event = request.json()
    assert event["type"] == "import.failed"
    assert event["data"]["id"] == job["id"]
    assert "sku" in event["data"]["error"]


def test_endpoints_only_get_the_events_they_chose(http, receiver):
    body = {"url": receiver.url, "events": ["import.failed"]}
    assert http.post("/api/webhooks", json=body).status_code == 201

    import_csv(http, "sku,name\nA-1,Apple\n")
    time.sleep(1.5)

    assert receiver.requests == []
