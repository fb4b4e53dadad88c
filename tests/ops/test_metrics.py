"""`/metrics` through HTTP, on a real gunicorn of two processes and a real Celery worker."""

import io
import time
from contextlib import nullcontext

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import paused
from tests.helpers import import_csv, upload_csv, wait_for_job
from tests.webhooks.conftest import settled_deliveries
from tests.webhooks.receiver import Receiver

from .conftest import METRICS_TOKEN, sample, scrape

REQUESTS = "product_importer_http_requests_total"


def wait_for_metric(url: str, name: str, at_least: float, timeout: float = 60, **labels) -> dict:
    """Scrape until the sample reaches `at_least`; return that scrape."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(url)
        if sample(samples, name, **labels) >= at_least:
            return samples
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{name}{labels} below {at_least}: {sample(samples, name, **labels)}"
            )
        time.sleep(0.2)


def create_endpoint(http, url: str, events: tuple) -> dict:
    response = http.post("/api/webhooks", json={"url": url, "events": list(events)})
    assert response.status_code == 201, response.text
    return response.json()


def test_metrics_are_refused_without_credentials_and_to_non_admins(two_process_server, accounts):
    url = two_process_server
    anonymous = httpx.get(f"{url}/metrics")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    viewer = {"Authorization": f"Bearer {accounts['viewer'].token}"}
    assert httpx.get(f"{url}/metrics", headers=viewer).status_code == 403
    # the scraper's token opens /metrics and nothing else
    scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert httpx.get(f"{url}/api/products", headers=scraper).status_code == 401
    assert scrape(url, accounts["admin"].token)  # an admin's token opens it too
    assert scrape(url)


def test_requests_are_counted_per_route_by_every_web_process(two_process_server, accounts):
    url, headers = two_process_server, {"Authorization": f"Bearer {accounts['viewer'].token}"}
    route = "/api/products/<int:product_id>"
    before = scrape(url)
    for product_id in range(1, 41):
        # a new connection each: gunicorn's two processes take turns accepting them
        assert httpx.get(f"{url}/api/products/{product_id}", headers=headers).status_code == 404
    after = scrape(url)

    counted = sample(after, REQUESTS, route=route, method="GET", status="404") - sample(
        before, REQUESTS, route=route, method="GET", status="404"
    )
    assert counted == 40  # whichever process answered the scrape counts for both
    latency = "product_importer_http_request_duration_seconds_count"
    assert (
        sample(after, latency, route=route, method="GET")
        - sample(before, latency, route=route, method="GET")
        == 40
    )
    assert not any(dict(labels).get("route") == "/api/products/1" for _, labels in after)


def test_a_method_made_up_by_a_caller_is_counted_as_other_not_as_a_series_of_its_own(
    two_process_server,
):
    # Counted as it came, each made-up method added series to every scrape, without sign-in.
    url = two_process_server
    labels = {"route": "(unmatched)", "method": "(other)", "status": "405"}
    before = sample(scrape(url), REQUESTS, **labels)
    for method in ("AAAA", "AAAB", "ZZZZZZ"):  # signed out: refused before sign-in is asked
        assert httpx.request(method, f"{url}/api/products").status_code == 405
    after = scrape(url)

    assert sample(after, REQUESTS, **labels) - before == 3
    assert not {dict(labels).get("method") for _, labels in after} & {"AAAA", "AAAB", "ZZZZZZ"}


def test_an_import_and_a_webhook_delivery_move_their_counters(
    two_process_server, accounts, live_worker
):
    url = two_process_server
    receiver = Receiver()
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            http.headers["Authorization"] = f"Bearer {accounts['admin'].token}"
            endpoint = create_endpoint(http, receiver.url, events=("import.completed",))
            before = scrape(url)
            job = import_csv(http, "name,sku,description\nA,M-1,x\nB,M-2,y\nC,M-3,z\n")
            assert job["status"] == "completed"
            [delivery] = settled_deliveries(http, endpoint["id"])
            assert delivery["status"] == "succeeded"
    finally:
        receiver.close()

    ok = "product_importer_webhook_attempts_total"
    # workers push their counts through the database every second
    after = wait_for_metric(
        url, ok, sample(before, ok, outcome="succeeded") + 1, outcome="succeeded"
    )
    moved = lambda name, **labels: sample(after, name, **labels) - sample(before, name, **labels)  # noqa: E731
    assert moved("product_importer_imports_total", status="completed") == 1
    assert moved("product_importer_import_rows_total", status="completed") == 3
    assert moved("product_importer_import_duration_seconds_count", status="completed") == 1
    assert (
        moved("product_importer_import_duration_seconds_bucket", status="completed", le="+Inf") == 1
    )
    assert (
        moved("product_importer_webhook_attempt_duration_seconds_count", outcome="succeeded") == 1
    )

    with httpx.Client(base_url=url, timeout=30) as http:  # an undo is no import: not counted
        http.headers["Authorization"] = f"Bearer {accounts['admin'].token}"
        undo = wait_for_job(http, http.post(f"/api/imports/{job['id']}/undo").json()["id"])
        assert undo["status"] == "completed"
    undone = scrape(url)
    for name in ("product_importer_imports_total", "product_importer_import_rows_total"):
        assert sample(undone, name, status="completed") == sample(after, name, status="completed")
    assert sample(after, REQUESTS, route="/api/imports", method="POST", status="202") >= 1


def test_the_queue_and_pending_deliveries_are_read_from_the_database(
    two_process_server, accounts, live_worker
):
    url = two_process_server
    with httpx.Client(base_url=url, timeout=30) as http:
        http.headers["Authorization"] = f"Bearer {accounts['admin'].token}"
        hook = create_endpoint(http, "http://127.0.0.1:9/hook", events=("product.created",))
        with paused(live_worker):  # nothing takes the work while the figures are read
            upload = upload_csv(http, "name,sku\nA,Q-1\n")
            assert upload.status_code == 202
            assert http.post("/api/products", json={"name": "B", "sku": "Q-2"}).status_code == 201
            samples = scrape(url)
            leave_no_work(http, upload.json()["id"], hook["id"])
    assert sample(samples, "product_importer_import_queue_depth", status="queued") == 1
    assert sample(samples, "product_importer_webhook_deliveries_pending") == 1


def test_a_plan_waits_in_the_queue_gauge_and_is_counted_once_it_has_run(
    two_process_server, accounts, live_worker
):
    # Counted among the ended imports while it waited, a plan's status counter went down as
    # it was applied: Prometheus reads that as a restart, and rate() shows a false spike.
    url = two_process_server
    ended, depth = "product_importer_imports_total", "product_importer_import_queue_depth"
    before = scrape(url)
    with httpx.Client(base_url=url, timeout=30) as http:
        http.headers["Authorization"] = f"Bearer {accounts['editor'].token}"
        job = upload_csv(http, "sku,name\nP-1,Plan\n", data={"plan": "true"}).json()
        assert wait_for_job(http, job["id"])["status"] == "planned"
        planned = scrape(url)
        assert http.post(f"/api/imports/{job['id']}/apply").status_code == 202
        assert wait_for_job(http, job["id"])["status"] == "completed"
    applied = scrape(url)

    assert sample(planned, depth, status="planned") == sample(before, depth, status="planned") + 1
    assert sample(planned, ended, status="planned") == 0
    assert sample(applied, depth, status="planned") == sample(before, depth, status="planned")
    assert (
        sample(applied, ended, status="completed") == sample(before, ended, status="completed") + 1
    )


def leave_no_work(http, job_id: int, webhook_id: int) -> None:
    """Cancel the queued import and delete the webhook, so the next test inherits nothing."""
    assert http.post(f"/api/imports/{job_id}/cancel").status_code == 202
    assert http.delete(f"/api/webhooks/{webhook_id}").status_code == 204


def test_both_modes_answer_metrics_from_their_own_database(api, any_app, request):
    # production: the session's worker is held; embedded: `api` runs no background work
    production = not any_app.config["EMBEDDED_WORKER"]
    held = paused(request.getfixturevalue("live_worker")) if production else nullcontext()
    with held:
        hook = {"url": "http://127.0.0.1:9/h", "events": ["product.created"]}
        webhook = api.post("/api/webhooks", json=hook)
        assert webhook.status_code == 201
        assert api.post("/api/products", json={"name": "A", "sku": "BM-1"}).status_code == 201
        csv = {"file": (io.BytesIO(b"name,sku\nA,BM-2\n"), "p.csv")}
        upload = api.post("/api/imports", data=csv)
        assert upload.status_code == 202
        response = api.get("/metrics")
        leave_no_work(api, upload.get_json()["id"], webhook.get_json()["id"])
    assert response.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }
    assert sample(samples, "product_importer_import_queue_depth", status="queued") == 1
    assert sample(samples, "product_importer_webhook_deliveries_pending") == 1
    route = {"route": "/api/imports", "method": "POST", "status": "202"}
    assert sample(samples, REQUESTS, **route) >= 1
