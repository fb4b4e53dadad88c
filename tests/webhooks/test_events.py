"""Events from the rest of the app: one per import, never one per CSV row; in both modes.

That nothing more was sent is shown by a later event that must arrive: once it has, and no
delivery is pending, the receiver holds everything the earlier change sent.
"""

import pytest

from tests.helpers import import_csv, wait_for_job

from .conftest import settled_deliveries
from .receiver import verify


@pytest.fixture
def import_hook(any_http, receiver) -> dict:
    body = {"url": receiver.url, "events": ["import.completed", "import.failed", "import.undone"]}
    response = any_http.post("/api/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_completed_import_sends_one_import_completed(any_http, receiver, import_hook):
    job = import_csv(any_http, "sku,name\nA-1,Apple\nB-2,Banana\nC-3,Cherry\n,No SKU\n")
    later = import_csv(any_http, "sku,name\nD-4,Date\n")

    receiver.wait_for(2)
    assert len(settled_deliveries(any_http, import_hook["id"])) == 2
    sent = {r.json()["data"]["id"]: r for r in receiver.requests}
    assert len(receiver.requests) == 2 and set(sent) == {job["id"], later["id"]}  # none per row
    request = sent[job["id"]]
    assert verify(import_hook["secret"], request)
    event = request.json()
    assert event["type"] == "import.completed"
    assert event["data"]["id"] == job["id"]
    assert event["data"]["status"] == "completed_with_errors"
    assert (event["data"]["created"], event["data"]["rows_invalid"]) == (3, 1)
    assert event["data"]["changes_url"] == f"/api/imports/{job['id']}/changes"


def test_a_plan_sends_nothing_and_an_undo_sends_import_undone(any_http, receiver, import_hook):
    plan = import_csv(any_http, "sku,name\nA-1,Apple\n", data={"plan": "true"})
    any_http.post(f"/api/imports/{plan['id']}/apply")
    wait_for_job(any_http, plan["id"])
    undo = wait_for_job(any_http, any_http.post(f"/api/imports/{plan['id']}/undo").json()["id"])

    receiver.wait_for(2)
    assert len(settled_deliveries(any_http, import_hook["id"])) == 2
    events = [request.json() for request in receiver.requests]
    assert [event["type"] for event in events] == ["import.completed", "import.undone"]
    assert [event["data"]["id"] for event in events] == [plan["id"], undo["id"]]
    assert events[1]["data"]["undo_of"] == plan["id"]


def test_a_failed_import_sends_import_failed(any_http, receiver, import_hook):
    job = import_csv(any_http, "name\nNo SKU column\n")

    (request,) = receiver.wait_for(1)
    event = request.json()
    assert event["type"] == "import.failed"
    assert event["data"]["id"] == job["id"]
    assert "sku" in event["data"]["error"]


def test_endpoints_only_get_the_events_they_chose(any_http, receiver):
    body = {"url": receiver.url, "events": ["import.failed"]}
    hook = any_http.post("/api/webhooks", json=body).json()

    import_csv(any_http, "sku,name\nA-1,Apple\n")
    failed = import_csv(any_http, "name\nNo SKU column\n")

    receiver.wait_for(1)
    assert len(settled_deliveries(any_http, hook["id"])) == 1
    (request,) = receiver.requests  # none for the completed import
    assert request.json()["type"] == "import.failed"
    assert request.json()["data"]["id"] == failed["id"]
