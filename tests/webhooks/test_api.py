"""The webhooks API: configure endpoints, test them, list and redeliver deliveries; in both
modes (`api`)."""

import threading
import time

import pytest
from sqlalchemy import insert, select, text

from tests.conftest import free_port
from tests.helpers import deleted_as_it_commits, wait_until

from .conftest import create_endpoint
from .receiver import Answer, Receiver, verify


def test_create_returns_the_secret_once(api, receiver):
    body = {"url": receiver.url, "events": ["product.updated", "product.created"]}
    response = api.post("/api/webhooks", json=body)

    assert response.status_code == 201
    created = response.get_json()
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["product.created", "product.updated"]
    assert created["enabled"] is True
    assert created["description"] == ""
    assert response.headers["Location"].endswith(f"/api/webhooks/{created['id']}")
    shown = api.get(f"/api/webhooks/{created['id']}").get_json()
    assert "secret" not in shown
    assert api.get("/api/webhooks").get_json()["items"] == [shown]


def test_a_webhook_keeps_the_outcome_of_its_last_test(api, receiver):
    """The Webhooks page's Last test came from the page alone: reloaded, it said "–" though
    a test had just been sent. Each webhook now has its latest ended test, from the server."""
    hook = create_endpoint(api, receiver.url, events=["product.created"])
    webhook = f"/api/webhooks/{hook['id']}"
    assert hook["last_test"] is None
    receiver.answer(Answer(status=202), Answer(status=503))
    assert api.post(f"{webhook}/test").get_json()["ok"]
    failed = api.post(f"{webhook}/test").get_json()
    api.post("/api/products", json={"sku": "T-1", "name": "Not a test"})  # a later event

    shown = api.get(webhook).get_json()

    last = shown["last_test"]
    assert {name: last[name] for name in failed} == failed
    assert (last["ok"], last["status_code"], last["error"]) == (False, 503, failed["error"])
    assert last["at"].endswith("Z")
    assert api.get("/api/webhooks").get_json()["items"] == [shown]
    changed = api.patch(webhook, json={**shown, "description": "CRM"})  # sent back whole
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["last_test"] == last


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": ["product.created"]}, "url"),
        ({"url": "http://127.0.0.1/x"}, "events"),
        ({"url": "http://127.0.0.1/x", "events": []}, "events"),
        ({"url": "http://127.0.0.1/x", "events": ["product.exploded"]}, "events"),
        ({"url": "ftp://127.0.0.1/x", "events": ["product.created"]}, "url"),
        ({"url": "http://127.0.0.1/x", "events": ["import.failed"], "enabled": "yes"}, "enabled"),
        ({"url": "http://127.0.0.1/x", "events": ["import.failed"], "colour": "red"}, "colour"),
        ({"url": "http://127.0.0.1/x", "events": ["ping"]}, "events"),
        (
            {"url": "http://127.0.0.1/x", "events": ["import.failed"], "description": "x" * 256},
            "description",
        ),
    ],
)
def test_invalid_webhooks_are_refused_naming_the_field(api, body, field):
    response = api.post("/api/webhooks", json=body)

    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]


def test_a_body_that_is_not_a_json_object_is_a_bad_request(api):
    assert api.post("/api/webhooks", data="url=x").status_code == 400


def test_patch_changes_only_what_is_sent(api, receiver):
    endpoint = create_endpoint(api, receiver.url, description="CRM")

    response = api.patch(f"/api/webhooks/{endpoint['id']}", json={"enabled": False})

    assert response.status_code == 200
    changed = response.get_json()
    assert (changed["enabled"], changed["description"], changed["url"]) == (
        False,
        "CRM",
        receiver.url,
    )
    refused = api.patch(f"/api/webhooks/{endpoint['id']}", json={"url": "gopher://x"})
    assert refused.status_code == 422


def test_a_url_longer_than_an_audit_target_is_saved_changed_and_deleted(api, receiver):
    url = f"{receiver.url}?token={'x' * 1000}"
    endpoint = create_endpoint(api, url)
    webhook = f"/api/webhooks/{endpoint['id']}"

    assert api.patch(webhook, json={"description": "CRM"}).status_code == 200
    assert api.post(f"{webhook}/rotate-secret").status_code == 200
    assert api.delete(webhook).status_code == 204
    entries = api.get("/api/audit", query_string={"action": "webhook.created"}).get_json()
    (created,) = entries["items"]
    assert created["target"] == url[:254] + "…"


def test_delete_removes_the_webhook_and_its_deliveries(api, receiver):
    endpoint = create_endpoint(api, receiver.url)
    api.post(f"/api/webhooks/{endpoint['id']}/test")

    assert api.delete(f"/api/webhooks/{endpoint['id']}").status_code == 204
    assert api.get(f"/api/webhooks/{endpoint['id']}").status_code == 404
    assert api.get(f"/api/webhooks/{endpoint['id']}/deliveries").status_code == 404
    assert api.delete(f"/api/webhooks/{endpoint['id']}").status_code == 404


def test_test_sends_a_signed_ping_and_reports_the_answer(api, receiver):
    endpoint = create_endpoint(api, receiver.url)
    receiver.answer(Answer(status=204, sleep=0.05))

    result = api.post(f"/api/webhooks/{endpoint['id']}/test").get_json()

    assert result["ok"] is True
    assert result["status_code"] == 204
    assert result["error"] is None
    assert result["response_time_ms"] >= 50
    (ping,) = receiver.requests
    assert verify(endpoint["secret"], ping)
    assert ping.json()["type"] == "ping"
    assert ping.json()["id"] == ping.headers["webhook-id"]
    assert ping.headers["content-type"] == "application/json"


def test_test_reports_errors_and_non_2xx_answers(api, receiver):
    endpoint = create_endpoint(api, receiver.url)
    receiver.answer(Answer(status=500))

    failed = api.post(f"/api/webhooks/{endpoint['id']}/test").get_json()
    assert (failed["ok"], failed["status_code"]) == (False, 500)
    assert "500" in failed["error"]

    closed = create_endpoint(api, f"http://127.0.0.1:{free_port()}/hook")
    unreachable = api.post(f"/api/webhooks/{closed['id']}/test").get_json()
    assert unreachable["ok"] is False
    assert unreachable["status_code"] is None
    assert unreachable["error"]


def test_a_test_that_fails_unexpectedly_says_what_went_wrong(api, any_engine, receiver):
    """A stored secret that is not base64 (a row edited by hand): the Test button answers what
    happened, and the ping is in the log, rather than a bare server error."""
    endpoint = create_endpoint(api, receiver.url)
    with any_engine.begin() as conn:
        statement = text("UPDATE webhook_endpoints SET secret = 'whsec_abc' WHERE id = :id")
        conn.execute(statement, {"id": endpoint["id"]})

    response = api.post(f"/api/webhooks/{endpoint['id']}/test")

    assert response.status_code == 200
    result = response.get_json()
    assert (result["ok"], result["status_code"]) == (False, None)
    assert "unexpected error (binascii.Error)" in result["error"]
    (ping,) = api.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["items"]
    assert (ping["status"], ping["error"]) == ("failed", result["error"])
    assert receiver.requests == []


def test_a_test_answered_410_disables_the_webhook_as_its_error_says(api, receiver):
    endpoint = create_endpoint(api, receiver.url)
    receiver.answer(Answer(status=410))

    result = api.post(f"/api/webhooks/{endpoint['id']}/test").get_json()

    assert (result["ok"], result["status_code"]) == (False, 410)
    assert result["error"] == "HTTP 410 Gone: the webhook was disabled"
    shown = api.get(f"/api/webhooks/{endpoint['id']}").get_json()
    assert shown["enabled"] is False
    assert "the receiver answered 410 Gone" in shown["disabled_reason"]


@pytest.mark.parametrize("location", ["/hooks/v2", "https://hooks.example.com/v2"])
def test_a_redirect_says_where_to_and_what_to_do(api, receiver, location):
    endpoint = create_endpoint(api, receiver.url)
    receiver.answer(Answer(status=308, headers={"Location": location}))

    result = api.post(f"/api/webhooks/{endpoint['id']}/test").get_json()

    where = location if location.startswith("https:") else receiver.url.replace("/hook", location)
    assert (result["ok"], result["status_code"]) == (False, 308)
    assert result["error"] == (
        f"HTTP 308 Permanent Redirect: the receiver redirects to {where}. Redirects are not "
        "followed; if that is where events should go, change the webhook's URL to it"
    )
    assert len(receiver.requests) == 1  # and the redirect was not followed


def test_test_gives_up_on_an_answer_trickling_in_at_the_timeout(
    any_app, api, receiver, monkeypatch
):
    monkeypatch.setitem(any_app.config, "WEBHOOK_TIMEOUT_SECONDS", 1.0)
    endpoint = create_endpoint(api, receiver.url)
    receiver.answer(Answer(trickle=0.1))  # a byte every 0.1 s, for 10 s

    started = time.monotonic()
    result = api.post(f"/api/webhooks/{endpoint['id']}/test").get_json()
    took = time.monotonic() - started

    assert took >= 1
    assert (result["ok"], result["status_code"]) == (False, None)
    assert result["error"] == "Timed out after 1 s waiting for the answer"
    assert result["response_time_ms"] >= 1000
    receiver.wait_for_hang_up()  # it left with most of the answer still to come
    (ping,) = api.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["items"]
    assert (ping["status"], ping["error"]) == ("failed", result["error"])


def test_deliveries_list_the_test_ping_with_its_attempt(api, receiver):
    endpoint = create_endpoint(api, receiver.url)
    api.post(f"/api/webhooks/{endpoint['id']}/test")

    (delivery,) = api.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["items"]

    assert delivery["event"] == "ping"
    assert delivery["event_id"].startswith("evt_")
    assert (delivery["status"], delivery["attempts"], delivery["status_code"]) == (
        "succeeded",
        1,
        200,
    )
    assert delivery["next_attempt_at"] is None
    assert set(delivery) >= {"id", "error", "response_time_ms", "created_at", "attempt_log"}
    (attempt,) = delivery["attempt_log"]
    assert (attempt["number"], attempt["status_code"]) == (1, 200)


def add_deliveries(engine, endpoint_id: int, count: int) -> list[int]:
    """Insert `count` finished deliveries, as weeks of events leave; return their ids."""
    from product_importer.webhooks.models import Delivery

    rows = [
        {
            "endpoint_id": endpoint_id,
            "event_id": f"evt_{n}",
            "event_type": "product.updated",
            "payload": "{}",
            "status": "succeeded",
            "attempts": 1,
        }
        for n in range(count)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Delivery.__table__), rows)
        query = select(Delivery.id).where(Delivery.endpoint_id == endpoint_id)
        return sorted(conn.scalars(query))


def test_deliveries_come_a_page_at_a_time_down_to_the_oldest(api, any_engine, receiver):
    endpoint = create_endpoint(api, receiver.url)
    ids = add_deliveries(any_engine, endpoint["id"], 55)
    listed = f"/api/webhooks/{endpoint['id']}/deliveries"

    first = api.get(listed).get_json()
    last = api.get(listed, query_string={"page": 2}).get_json()
    small = api.get(listed, query_string={"page": 3, "per_page": 20}).get_json()

    assert [item["id"] for item in first["items"]] == ids[::-1][:50]  # newest first, as before
    assert {k: first[k] for k in ("page", "pages", "per_page", "total")} == {
        "page": 1,
        "pages": 2,
        "per_page": 50,
        "total": 55,
    }
    assert [item["id"] for item in last["items"]] == ids[4::-1]
    assert [item["id"] for item in small["items"]] == ids[14::-1]
    assert (small["page"], small["pages"]) == (3, 3)
    assert len(api.get(listed, query_string={"limit": 200}).get_json()["items"]) == 55
    blank_per_page = api.get(listed, query_string={"limit": 10, "per_page": ""}).get_json()
    assert len(blank_per_page["items"]) == 10  # a blank per_page is left out: limit counts
    beyond = api.get(listed, query_string={"page": 4, "per_page": 20}).get_json()
    assert (beyond["items"], beyond["total"]) == ([], 55)


def test_deliveries_asked_without_their_total_are_not_counted(api, any_engine, receiver):
    """`total=false`, as the Webhooks page refreshes: a full page answers no total (counting
    every delivery of a busy webhook costs more than the page); one that is not full still
    reads its exact total off the page."""
    endpoint = create_endpoint(api, receiver.url)
    ids = add_deliveries(any_engine, endpoint["id"], 55)
    listed = f"/api/webhooks/{endpoint['id']}/deliveries"

    full = api.get(listed, query_string={"total": "false"}).get_json()
    last = api.get(listed, query_string={"total": "false", "page": 2}).get_json()
    counted = api.get(listed, query_string={"total": "true"}).get_json()

    assert [item["id"] for item in full["items"]] == ids[::-1][:50]
    assert (full["total"], full["pages"]) == (None, None)
    assert (last["total"], last["pages"], len(last["items"])) == (55, 2, 5)
    assert (counted["total"], counted["pages"]) == (55, 2)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"total": "no"}, "total"),
        ({"per_page": 201}, "per_page"),
        ({"per_page": 0}, "per_page"),
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
    ],
)
def test_a_deliveries_page_out_of_range_is_refused_naming_it(api, receiver, arguments, named):
    endpoint = create_endpoint(api, receiver.url)
    url = f"/api/webhooks/{endpoint['id']}/deliveries"

    response = api.get(url, query_string=arguments)

    assert response.status_code == 422
    assert list(response.get_json()["error"]["details"]) == [named]


def test_redeliver_sends_the_same_event_again(any_app, api, receiver):
    from product_importer.webhooks import delivery

    endpoint = create_endpoint(api, receiver.url)
    api.post(f"/api/webhooks/{endpoint['id']}/test")
    (first,) = api.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["items"]

    response = api.post(f"/api/webhooks/{endpoint['id']}/deliveries/{first['id']}/redeliver")

    assert response.status_code == 202
    again = response.get_json()
    assert again["event_id"] == first["event_id"]
    assert again["status"] == "pending"
    with any_app.app_context():
        delivery.deliver_one(again["id"])  # what a worker does with the queued task
    first_ping, second_ping = receiver.wait_for(2)
    assert first_ping.body == second_ping.body
    assert first_ping.headers["webhook-id"] == second_ping.headers["webhook-id"]
    assert verify(endpoint["secret"], second_ping)


def test_redeliver_of_an_unknown_delivery_is_not_found(api, receiver):
    endpoint = create_endpoint(api, receiver.url)

    response = api.post(f"/api/webhooks/{endpoint['id']}/deliveries/999/redeliver")

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_the_openapi_part_refers_only_to_schemas_it_defines():
    import json

    from product_importer.webhooks import openapi

    text = json.dumps(openapi.paths())
    known = set(openapi.schemas()) | {"Error"}  # Error: the app's one error shape
    referred = {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}
    assert referred <= known
    assert set(openapi.paths()) == {
        "/api/webhooks",
        "/api/webhooks/{id}",
        "/api/webhooks/{id}/test",
        "/api/webhooks/{id}/rotate-secret",
        "/api/webhooks/{id}/deliveries",
        "/api/webhooks/{id}/deliveries/{did}/redeliver",
        "/api/webhooks/{id}/recover",
    }


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_readers_below_admin_see_the_url_without_its_secrets(client, client_as, role):
    # Viewers read webhooks "never a secret", but a password, a token in the query or the
    # generated part of a Slack-style address was shown to them whole.
    url = "http://ops:hunter2@127.0.0.1:9/services/T000/B000/xq7TzK2mPa9Lw4Rn8Bv3?token=s3cret"
    created = create_endpoint(client, url, description="Stock sync")

    reader = client_as(role)
    shown = reader.get(f"/api/webhooks/{created['id']}").get_json()
    listed = [
        e for e in reader.get("/api/webhooks").get_json()["items"] if e["id"] == created["id"]
    ]

    assert shown["url"] == "http://***@127.0.0.1:9/services/T000/B000/***?token=***"
    assert listed == [shown]
    assert shown["description"] == "Stock sync"
    # The admin, who manages it, sees it whole.
    assert client.get(f"/api/webhooks/{created['id']}").get_json()["url"] == url


def test_a_plain_url_is_shown_whole_to_every_reader(client, client_as):
    url = "http://127.0.0.1:9/api/v1/product-events/2024"
    created = create_endpoint(client, url)
    assert client_as("viewer").get(f"/api/webhooks/{created['id']}").get_json()["url"] == url


def test_a_redirect_relative_to_a_url_with_credentials_shows_none_of_them(
    client, client_as, receiver
):
    # A relative Location is joined to the webhook's URL, user and password included, and
    # the delivery log, which every role reads, said it whole.
    url = receiver.url.replace("http://", "http://ops:hunter2@") + "/xq7TzK2mPa9Lw4Rn8Bv3"
    endpoint = create_endpoint(client, url)
    receiver.answer(Answer(status=308, headers={"Location": "?moved=1"}))
    assert client.post(f"/api/webhooks/{endpoint['id']}/test").status_code == 200

    deliveries = f"/api/webhooks/{endpoint['id']}/deliveries"
    (delivery,) = client_as("viewer").get(deliveries).get_json()["items"]

    where = receiver.url.replace("http://", "http://***@") + "/***?moved=***"
    assert f"the receiver redirects to {where}." in delivery["error"]
    assert "hunter2" not in str(delivery) and "xq7TzK2mPa9Lw4Rn8Bv3" not in str(delivery)


@pytest.mark.parametrize("status", [200, 410])
def test_a_webhook_deleted_while_its_test_waits_for_the_answer_is_said_not_found(http, status):
    """Test, then Delete (another tab, another admin) before the receiver answers: Test
    answers 404 as for any deleted webhook (the page says "deleted meanwhile"), not 500."""
    receiver = Receiver(Answer(status=status, held=True))
    try:
        hook = http.post(
            "/api/webhooks", json={"url": receiver.url, "events": ["product.created"]}
        ).json()
        answers = []
        tester = threading.Thread(
            target=lambda: answers.append(http.post(f"/api/webhooks/{hook['id']}/test"))
        )
        tester.start()
        receiver.wait_for_open(1)
        assert http.delete(f"/api/webhooks/{hook['id']}").status_code == 204
        receiver.release()
        tester.join()

        [answer] = answers
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["message"] == f"Webhook {hook['id']} does not exist."
    finally:
        receiver.close()


@pytest.mark.parametrize("description", ["CRM\x00sync", "CRM\x1bsync", "CRM\x85sync"])
def test_a_description_with_a_control_character_is_refused_naming_it(api, receiver, description):
    """A NUL (which PostgreSQL cannot store: it was a 500) or another control character in
    a description is refused when created or changed, as a product's text is."""
    body = {"url": receiver.url, "events": ["product.created"], "description": description}
    created = api.post("/api/webhooks", json=body)
    hook = create_endpoint(api, receiver.url, description="CRM")
    changed = api.patch(f"/api/webhooks/{hook['id']}", json={"description": description})

    for response in (created, changed):
        assert response.status_code == 422
        assert response.get_json()["error"]["details"] == {
            "description": "Must be text of at most 255 characters, without control characters."
        }
    assert api.get(f"/api/webhooks/{hook['id']}").get_json()["description"] == "CRM"


# A delivery row of the test's own, never committed, with the id the next delivery will get:
# the next insert of a delivery waits on it until the test lets go (its webhook is the test's
# own too, seen by no one else).
HOLD_NEXT_DELIVERY = """
WITH hook AS (
    INSERT INTO webhook_endpoints (url, events, secret, created_at, updated_at)
    VALUES ('http://held.invalid/', '[]', 'whsec_held', now(), now()) RETURNING id
)
INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload, status,
                                attempts, created_at)
SELECT nextval(pg_get_serial_sequence('webhook_deliveries', 'id')) + 1, hook.id, 'evt_held',
       'ping', '{}', 'failed', 1, now()
FROM hook
"""
BLOCKED_BY = "SELECT pid FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"


def test_redeliver_and_a_delete_of_its_webhook_at_once_both_succeed(http, holding, sql, receiver):
    """Redeliver (one admin) while Delete of its webhook (another) runs: the delete waits for
    the redelivery, then deletes the webhook with every delivery. Redeliver took the delivery
    before the webhook, a delete the webhook before its deliveries: PostgreSQL ended one of
    them as a deadlock, and the delete answered 500."""
    hook = http.post("/api/webhooks", json={"url": receiver.url, "events": ["product.created"]})
    webhook = f"/api/webhooks/{hook.json()['id']}"
    assert http.post(f"{webhook}/test").json()["ok"]
    [ping] = http.get(f"{webhook}/deliveries").json()["items"]
    answers = {}

    def ask(name: str, method: str, url: str) -> threading.Thread:
        def run():
            answers[name] = http.request(method, url)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    with holding(HOLD_NEXT_DELIVERY) as held:
        # the redelivery has taken its locks and waits to insert the new delivery
        redeliver = ask("redeliver", "POST", f"{webhook}/deliveries/{ping['id']}/redeliver")
        held.wait_until_blocking()
        [(redeliverer,)] = sql(BLOCKED_BY, pid=held.pid)
        delete = ask("delete", "DELETE", webhook)
        wait_until(lambda: sql(BLOCKED_BY, pid=redeliverer), "the delete waiting")
        held.release()
        redeliver.join()
        delete.join()

    assert answers["redeliver"].status_code == 202, answers["redeliver"].text
    assert answers["delete"].status_code == 204, answers["delete"].text
    assert http.get(webhook).status_code == 404
    assert sql("SELECT id FROM webhook_deliveries") == []


@pytest.mark.parametrize(
    ("method", "path", "body", "shown"),
    [
        ("PATCH", "", {"description": "CRM"}, {"description": "CRM"}),
        ("POST", "/rotate-secret", {}, {"enabled": True}),
    ],
)
def test_a_change_answers_what_it_made_though_a_delete_of_the_webhook_commits_right_after(
    http, holding, receiver, method, path, body, shown
):
    """A change of a webhook (one admin) and a delete of it (another) at once: the delete
    waits for the change, and may commit before the change's answer is read. The answer was
    read after the commit, from the webhook loaded again: it was gone, and the change that was
    made answered 500."""
    hook = http.post("/api/webhooks", json={"url": receiver.url, "events": ["product.created"]})
    webhook = f"/api/webhooks/{hook.json()['id']}"

    answer = deleted_as_it_commits(
        holding,
        lambda: http.request(method, webhook + path, json=body),
        table="webhook_endpoints",
        delete="DELETE FROM webhook_endpoints WHERE id = :id",
        id=hook.json()["id"],
    )

    assert answer.status_code == 200, answer.text
    assert shown.items() <= answer.json().items()
    assert http.get(webhook).status_code == 404


def test_a_new_webhook_is_answered_though_a_delete_of_it_commits_right_after(
    http, holding, receiver
):
    """Created, and deleted by another admin at once (from the list refreshed meanwhile): the
    webhook was read for the answer after the commit, gone, and its creation answered 500."""
    body = {"url": receiver.url, "events": ["product.created"], "description": "Gone soon"}

    answer = deleted_as_it_commits(
        holding,
        lambda: http.post("/api/webhooks", json=body),
        table="webhook_endpoints",
        delete="DELETE FROM webhook_endpoints WHERE description = 'Gone soon'",
    )

    assert answer.status_code == 201, answer.text
    assert answer.json()["secret"].startswith("whsec_")
    assert http.get(answer.headers["Location"]).status_code == 404


def test_a_redelivery_is_answered_though_a_delete_of_its_webhook_commits_right_after(
    http, holding, receiver
):
    """Redeliver (one admin) and a delete of its webhook (another) at once: the delete waits
    for the redelivery and may commit before its answer is read. Read from the delivery loaded
    again after the commit, the answer found it gone with its webhook: a 500 for an event that
    was queued."""
    hook = http.post("/api/webhooks", json={"url": receiver.url, "events": ["product.created"]})
    webhook = f"/api/webhooks/{hook.json()['id']}"
    assert http.post(f"{webhook}/test").json()["ok"]
    [ping] = http.get(f"{webhook}/deliveries").json()["items"]

    answer = deleted_as_it_commits(
        holding,
        lambda: http.post(f"{webhook}/deliveries/{ping['id']}/redeliver"),
        table="webhook_deliveries",  # where the delivery would be read again
        delete="DELETE FROM webhook_endpoints WHERE id = :id",
        id=hook.json()["id"],
    )

    assert answer.status_code == 202, answer.text
    assert (answer.json()["event_id"], answer.json()["status"]) == (ping["event_id"], "pending")
    assert http.get(webhook).status_code == 404


# A session waiting for a lock while inserting deliveries: an event's fan-out.
FAN_OUT_WAITING = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
    "AND datname = current_database() AND query LIKE 'INSERT INTO webhook_deliveries%'"
)


def test_a_product_change_while_its_webhook_is_deleted_is_made_and_sends_it_nothing(
    http, holding, sql, receiver
):
    """A product changed while a delete of a webhook for its event has not committed yet: the
    change waits for the delete, then is made without that webhook. Its event was queued for
    the webhook being deleted, and the insert failed on the gone webhook: the change answered
    500 (an import ending then failed as a whole)."""
    hook = http.post("/api/webhooks", json={"url": receiver.url, "events": ["product.updated"]})
    product = http.post("/api/products", json={"sku": "HOOK-1", "name": "Before"}).json()
    answers = []
    change = threading.Thread(
        target=lambda: answers.append(
            http.patch(f"/api/products/{product['id']}", json={"name": "After"})
        )
    )
    delete = f"DELETE FROM webhook_endpoints WHERE id = {hook.json()['id']}"
    with holding(delete) as deleting:
        change.start()
        deleting.wait_until_blocking()  # the change waits for the webhook's delete
        deleting.conn.commit()
        change.join()

    assert answers[0].status_code == 200, answers[0].text
    assert http.get(f"/api/products/{product['id']}").json()["name"] == "After"
    assert sql("SELECT id FROM webhook_deliveries") == []


def test_product_changes_do_not_wait_while_a_webhooks_deliveries_are_deleted(
    http, holding, sql, receiver
):
    """Deleting a webhook deletes its deliveries (the millions a busy one keeps take
    seconds). The webhook was deleted first and stayed locked meanwhile: every product change
    with an event for it waited for the whole delete. Its deliveries go first now."""
    hook = http.post("/api/webhooks", json={"url": receiver.url, "events": ["product.updated"]})
    webhook = f"/api/webhooks/{hook.json()['id']}"
    assert http.post(f"{webhook}/test").json()["ok"]
    [(ping,)] = sql("SELECT id FROM webhook_deliveries")
    product = http.post("/api/products", json={"sku": "HOOK-2", "name": "Before"}).json()
    answers = {}

    def send(name: str, method: str, url: str, **body) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: answers.update({name: http.request(method, url, **body)})
        )
        thread.start()
        return thread

    # a delivery held: the delete stops there, deleting the webhook's deliveries
    with holding(f"SELECT id FROM webhook_deliveries WHERE id = {ping} FOR UPDATE") as held:
        delete = send("delete", "DELETE", webhook)
        held.wait_until_blocking()
        change = send("change", "PATCH", f"/api/products/{product['id']}", json={"name": "After"})
        wait_until(lambda: "change" in answers or sql(FAN_OUT_WAITING)[0][0], "the change answered")
        waited = "change" not in answers
        held.release()
        change.join()
        delete.join()

    assert not waited, "the product change waited for the webhook's delete"
    assert answers["change"].status_code == 200, answers["change"].text
    assert answers["delete"].status_code == 204, answers["delete"].text
    assert http.get(webhook).status_code == 404
    # the change's event for the webhook, queued meanwhile, went with it
    assert sql("SELECT id FROM webhook_deliveries") == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("PATCH", "", {"description": "CRM"}), ("POST", "/rotate-secret", {})],
)
def test_a_change_of_a_webhook_being_deleted_waits_and_is_said_not_found(
    http, holding, receiver, method, path, body
):
    """Changed (one admin) while a delete of it (another) has not committed: the change read
    the webhook, then updated nothing once the delete committed, and answered 500."""
    hook = http.post("/api/webhooks", json={"url": receiver.url, "events": ["product.created"]})
    webhook = f"/api/webhooks/{hook.json()['id']}"
    answers = []
    change = threading.Thread(
        target=lambda: answers.append(http.request(method, webhook + path, json=body))
    )
    with holding(f"DELETE FROM webhook_endpoints WHERE id = {hook.json()['id']}") as deleting:
        change.start()
        deleting.wait_until_blocking()
        deleting.conn.commit()
        change.join()

    assert answers[0].status_code == 404, answers[0].text
    assert answers[0].json()["error"]["message"] == f"Webhook {hook.json()['id']} does not exist."


def test_the_audit_log_names_the_fields_a_webhook_patch_changed_and_skips_one_of_none(
    api, receiver
):
    # Logged as the fields sent: read-only ones and values as they were, and a change of
    # nothing as a change.
    hook = create_endpoint(api, receiver.url, description="CRM")
    same = {"url": receiver.url, "description": "CRM", "enabled": True, "id": hook["id"]}

    def edits():
        return api.get("/api/audit?action=webhook.updated").get_json()["items"]

    assert api.patch(f"/api/webhooks/{hook['id']}", json=same).status_code == 200
    assert edits() == []
    renamed = same | {"description": "ERP"}
    assert api.patch(f"/api/webhooks/{hook['id']}", json=renamed).status_code == 200
    [entry] = edits()
    assert entry["details"] == {"id": hook["id"], "fields": ["description"]}
