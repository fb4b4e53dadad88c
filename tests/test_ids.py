"""Ids are never given twice, on the embedded SQLite as on PostgreSQL: a deleted product's,
webhook's, delivery's or token's id never names a new one (migration 0020)."""

import pytest

from tests.conftest import http_client
from tests.helpers import import_csv, wait_for_job
from tests.imports.test_embedded_and_cli import serve_embedded
from tests.webhooks.receiver import Receiver


@pytest.fixture
def embedded(tmp_path, test_env):
    """An HTTP client (admin) for `product-importer serve` with nothing configured but webhooks
    to this machine (the test's receiver)."""
    with serve_embedded(tmp_path, test_env, WEBHOOK_ALLOW_PRIVATE="true") as served:
        url, _instance, _server, token = served
        with http_client(url, token) as http:
            yield http


def created(response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def new_product(http, sku: str) -> int:
    return created(http.post("/api/products", json={"sku": sku, "name": sku}))["id"]


def test_a_deleted_products_id_is_not_given_to_the_next_product(embedded):
    first, newest = new_product(embedded, "A-1"), new_product(embedded, "B-2")
    assert embedded.delete(f"/api/products/{newest}").status_code == 204

    after = new_product(embedded, "C-3")

    assert after > newest > first
    assert embedded.get(f"/api/products/{newest}").status_code == 404


def test_an_import_after_every_product_was_deleted_gives_new_ids(embedded):
    new_product(embedded, "OLD-1")
    last = new_product(embedded, "OLD-2")
    assert embedded.delete("/api/products", params={"confirm": "true"}).json() == {"deleted": 2}

    job = import_csv(embedded, "sku,name\nA-1,Apple\nB-2,Banana\n")

    assert (job["status"], job["created"]) == ("completed", 2)
    ids = [item["id"] for item in embedded.get("/api/products").json()["items"]]
    assert len(ids) == 2 and min(ids) > last
    # its undo deletes what it created, found by the ids the import gave
    undo = wait_for_job(embedded, embedded.post(f"/api/imports/{job['id']}/undo").json()["id"])
    assert (undo["status"], undo["deleted"]) == ("completed", 2)
    assert embedded.get("/api/products").json()["items"] == []


def test_a_deleted_webhooks_and_its_deliveries_ids_are_not_given_again(embedded):
    receiver = Receiver()
    hook = {"url": receiver.url, "events": ["product.created"]}
    created(embedded.post("/api/webhooks", json=hook))
    newest = created(embedded.post("/api/webhooks", json=hook))["id"]
    assert embedded.post(f"/api/webhooks/{newest}/test").json()["ok"] is True
    delivery = embedded.get(f"/api/webhooks/{newest}/deliveries").json()["items"][0]["id"]
    assert embedded.delete(f"/api/webhooks/{newest}").status_code == 204  # its deliveries too

    after = created(embedded.post("/api/webhooks", json=hook))["id"]
    assert embedded.post(f"/api/webhooks/{after}/test").json()["ok"] is True

    assert after > newest
    assert embedded.get(f"/api/webhooks/{after}/deliveries").json()["items"][0]["id"] > delivery
    receiver.close()


def test_a_revoked_tokens_id_is_not_given_to_the_next_token(embedded):
    newest = created(embedded.post("/api/tokens", json={"name": "laptop"}))["id"]
    assert embedded.delete(f"/api/tokens/{newest}").status_code == 204

    after = created(embedded.post("/api/tokens", json={"name": "laptop again"}))["id"]

    assert after > newest
