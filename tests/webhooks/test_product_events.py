"""Product edits through the API publish events, after the commit, without waiting for them;
in both modes where the test allows."""

import pytest

from tests.conftest import paused

from .conftest import settled_deliveries
from .receiver import Answer, Receiver, verify


@pytest.fixture
def silent():
    """A receiver that answers nothing until the test releases it."""
    server = Receiver(default=Answer(held=True))
    yield server
    server.close()


def add_webhook(http, url: str, events: list[str]) -> dict:
    response = http.post("/api/webhooks", json={"url": url, "events": events})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_product_edit_waits_for_neither_the_worker_nor_any_receiver(http, silent, live_worker):
    # Production mode only: the embedded default sends from the web process's own threads.
    hooks = [add_webhook(http, silent.url, ["product.updated"]) for _ in range(3)]
    product = http.post("/api/products", json={"sku": "SLOW-1", "name": "Before"}).json()

    with paused(live_worker):  # nothing is sent meanwhile
        response = http.patch(f"/api/products/{product['id']}", json={"name": "After"})
        assert response.status_code == 200
        assert silent.requests == []  # the request itself sent nothing and waited for nothing

    requests = silent.wait_for(3)  # sent by the worker afterwards, all still unanswered
    silent.release()
    secrets = {hook["secret"] for hook in hooks}
    assert all(any(verify(secret, r) for secret in secrets) for r in requests)
    assert {r.json()["data"]["name"] for r in requests} == {"After"}


def test_each_edit_publishes_its_event(any_http, receiver):
    hook = add_webhook(
        any_http,
        receiver.url,
        ["product.created", "product.updated", "product.deleted", "products.deleted_all"],
    )

    product = any_http.post("/api/products", json={"sku": "EV-1", "name": "Apple"}).json()
    receiver.wait_for(1)
    any_http.patch(f"/api/products/{product['id']}", json={"name": "Green apple"})
    receiver.wait_for(2)
    any_http.delete(f"/api/products/{product['id']}")
    receiver.wait_for(3)
    any_http.post("/api/products", json={"sku": "EV-2", "name": "Pear"})
    receiver.wait_for(4)
    any_http.delete("/api/products", params={"confirm": "true"})

    requests = receiver.wait_for(5)
    assert all(verify(hook["secret"], r) for r in requests)
    types = [r.json()["type"] for r in requests]
    assert types == [
        "product.created",
        "product.updated",
        "product.deleted",
        "product.created",
        "products.deleted_all",
    ]
    assert requests[1].json()["data"]["name"] == "Green apple"


def test_a_refused_edit_publishes_nothing(any_http, receiver):
    hook = add_webhook(any_http, receiver.url, ["product.created", "product.updated"])
    any_http.post("/api/products", json={"sku": "DUP-1", "name": "First"})
    other = any_http.post("/api/products", json={"sku": "DUP-2", "name": "Second"}).json()
    receiver.wait_for(2)

    clash = any_http.patch(f"/api/products/{other['id']}", json={"sku": "dup-1"})
    duplicate = any_http.post("/api/products", json={"sku": "DUP-1", "name": "Again"})
    any_http.patch(f"/api/products/{other['id']}", json={"name": "Later"})  # must arrive

    assert (clash.status_code, duplicate.status_code) == (409, 409)
    receiver.wait_for(3)
    assert len(settled_deliveries(any_http, hook["id"])) == 3
    events = [(r.json()["type"], r.json()["data"]["name"]) for r in receiver.requests]
    assert sorted(events[:2]) == [("product.created", "First"), ("product.created", "Second")]
    assert events[2] == ("product.updated", "Later")
