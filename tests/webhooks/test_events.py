"""Events from the rest of the app: one per import, never one per CSV row; in both modes.

That nothing more was sent is shown by a later event that must arrive: once it has, and no
delivery is pending, the receiver holds everything the earlier change sent.
"""

import pytest

from tests.conftest import http_client
from tests.helpers import import_csv, upload_csv, wait_for_job
from tests.imports.conftest import TABLE_LOCK

from .conftest import settled_deliveries
from .receiver import verify


@pytest.fixture
def import_hook(any_http, receiver) -> dict:
    body = {"url": receiver.url, "events": ["import.completed", "import.failed", "import.undone"]}
    response = any_http.post("/api/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_completed_import_sends_one_import_completed(any_http, receiver, import_hook):
    job = import_csv(any_http, "sku,name\nA-1,Apple\nB-2,Banana\nC-3,Cherry\n,No SKU\nb-2,Bean\n")
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
    assert event["data"]["rows_superseded"] == 1
    assert event["data"]["summary"] == (
        "3 created, 0 updated, 0 unchanged, 1 rejected. "
        "1 row repeated an earlier SKU; the last one was kept."
    )
    # the URL of its change record, at the address the import was asked at: a receiver
    # fetches what changed from it
    changes_url = event["data"]["changes_url"]
    assert changes_url == str(any_http.base_url.join(f"/api/imports/{job['id']}/changes"))
    assert any_http.get(changes_url).json()["total"] == 3


def test_a_port_the_client_named_is_not_given_to_receivers(any_http, receiver, import_hook):
    # Flask checks a Host's name against ALLOWED_HOSTS, not its port: an editor naming
    # 127.0.0.1:6666 would have sent every receiver, with its token, to that port.
    host = f"{any_http.base_url.host}:6666"
    answer = any_http.post(
        "/api/imports",
        files={"file": ("fruit.csv", b"sku,name\nA-1,Apple\n", "text/csv")},
        headers={"Host": host},
    )
    assert answer.status_code == 202, answer.text

    (received,) = receiver.wait_for(1)
    assert received.json()["data"]["changes_url"] == f"/api/imports/{answer.json()['id']}/changes"


def test_public_url_names_the_change_record_wherever_the_import_was_asked(app, monkeypatch):
    # Behind a reverse proxy the address the request came in at may be an internal one
    # that receivers cannot reach; PUBLIC_URL, when set, is the one they are given.
    from types import SimpleNamespace

    from product_importer.imports.endings import changes_url

    asked = SimpleNamespace(id=7, origin="http://10.0.0.5:8000")
    with app.app_context():
        monkeypatch.setitem(app.config, "PUBLIC_URL", "https://importer.example.com/pi")
        assert changes_url(asked) == "https://importer.example.com/pi/api/imports/7/changes"
        monkeypatch.setitem(app.config, "PUBLIC_URL", "")
        assert changes_url(asked) == "http://10.0.0.5:8000/api/imports/7/changes"


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


def test_whoever_acts_on_an_import_is_its_actor_not_the_uploader(
    any_http, served, accounts, receiver, import_hook
):
    """An admin applies, undoes, retries, cancels and discards what an editor uploaded: each
    event and audit entry names the admin."""
    admin = accounts["admin"].email
    with http_client(served.url, accounts["editor"].token) as editor:
        plan = import_csv(editor, "sku,name\nA-1,Apple\n", data={"plan": "true"})
        other = import_csv(editor, "sku,name\nB-2,Banana\n", data={"plan": "true"})
        failed = import_csv(editor, "name\nNo SKU column\n")
    any_http.post(f"/api/imports/{plan['id']}/apply")
    applied = wait_for_job(any_http, plan["id"])
    undo = wait_for_job(any_http, any_http.post(f"/api/imports/{plan['id']}/undo").json()["id"])
    retried = any_http.post(f"/api/imports/{failed['id']}/retry").json()
    wait_for_job(any_http, retried["id"])
    assert any_http.post(f"/api/imports/{other['id']}/discard").status_code == 200

    receiver.wait_for(4)  # the editor's failure, then the admin's apply, undo and retry
    assert len(settled_deliveries(any_http, import_hook["id"])) == 4
    events = {(r.json()["type"], r.json()["data"]["id"]): r.json() for r in receiver.requests}
    assert events[("import.failed", failed["id"])]["actor"]["email"] == accounts["editor"].email
    assert events[("import.completed", plan["id"])]["actor"]["email"] == admin
    assert events[("import.undone", undo["id"])]["actor"]["email"] == admin
    assert events[("import.failed", retried["id"])]["actor"]["email"] == admin
    assert (applied["created_by"], applied["applied_by"]) == (accounts["editor"].email, admin)
    entries = any_http.get("/api/audit", params={"action": "import."}).json()["items"]
    by = {(entry["action"], entry["target"]): entry["actor"] for entry in entries}
    assert by[("import.applied", f"import #{plan['id']}")] == admin
    assert by[("import.undone", f"import #{plan['id']}")] == admin
    assert by[("import.retried", f"import #{retried['id']}")] == admin
    assert by[("import.discarded", f"import #{other['id']}")] == admin


def test_whoever_cancels_an_import_is_in_the_audit_log(http, live_server, accounts, holding):
    with http_client(live_server, accounts["editor"].token) as editor, holding(TABLE_LOCK):
        job = upload_csv(editor, "sku,name\nA-1,Apple\n").json()
        assert http.post(f"/api/imports/{job['id']}/cancel").status_code == 202
    assert wait_for_job(http, job["id"])["status"] == "cancelled"

    entries = http.get("/api/audit", params={"action": "import.cancelled"}).json()["items"]
    assert [(entry["target"], entry["actor"]) for entry in entries] == [
        (f"import #{job['id']}", accounts["admin"].email)
    ]
