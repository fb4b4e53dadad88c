"""Redis stopped for a minute: uploads are accepted and product edits succeed meanwhile; once
it is back, the queued import runs and every webhook event is delivered, with no one acting."""

import time

import pytest
from standardwebhooks import Webhook

from tests.conftest import http_client
from tests.helpers import upload_csv, wait_for_job
from tests.webhooks.receiver import Receiver

from .conftest import wait_for_status

pytestmark = pytest.mark.slow
EVENTS = ["product.created", "product.updated", "import.completed"]
# What a worker logs when it has lost the broker (Celery's consumer).
BROKER_LOST = "Connection to broker lost"
OUTAGE_SECONDS = 60  # as long as the outage the product promises to ride out (README)


def test_redis_stopped_then_back_loses_nothing(cluster, redis_server, deploy, accounts):
    app = deploy(cluster.url, redis_server.url)
    worker = app.processes[-1]
    receiver = Receiver()
    with http_client(app.url, accounts["admin"].token) as http:
        hook = http.post("/api/webhooks", json={"url": receiver.url, "events": EVENTS}).json()

        redis_server.stop()
        stopped = time.monotonic()
        down = wait_for_status(app.url, "/readyz", 503)
        assert down.json()["checks"]["broker"].startswith("unreachable")
        uploaded = upload_csv(http, "sku,name\nUP-1,Uploaded while Redis was down\n")
        assert uploaded.status_code == 202
        product = http.post("/api/products", json={"sku": "ED-1", "name": "Created"})
        assert product.status_code == 201
        edited = http.patch(f"/api/products/{product.json()['id']}", json={"name": "Edited"})
        assert edited.status_code == 200
        worker.wait_for_output(BROKER_LOST)  # the worker noticed, and keeps trying
        # a whole minute down: the worker's tries to reconnect space out meanwhile
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))

        redis_server.start()  # the same port: nobody restarts the web server or the worker
        wait_for_status(app.url, "/readyz", 200)
        job = wait_for_job(http, uploaded.json()["id"], timeout=180)

    assert job["status"] == "completed"
    requests = receiver.wait_for(3, timeout=180)
    receiver.close()
    events = [Webhook(hook["secret"]).verify(r.body, r.headers) for r in requests]
    product_events = [(e["type"], e["data"]["name"]) for e in events if e["type"] != EVENTS[2]]
    assert product_events == [("product.created", "Created"), ("product.updated", "Edited")]
    assert [e["data"]["id"] for e in events if e["type"] == EVENTS[2]] == [job["id"]]
    assert len(requests) == 3  # each once
