"""Webhook fixtures: receivers on 127.0.0.1 and endpoints."""

import socket
import threading
import time

import pytest

from .receiver import Receiver


def settled_deliveries(http, endpoint_id: int, timeout: float = 30) -> list[dict]:
    """Wait until none of the webhook's deliveries is pending; return them, oldest first."""
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(f"/api/webhooks/{endpoint_id}/deliveries", params={"limit": 200})
        items = response.json()["items"][::-1]
        if all(item["status"] != "pending" for item in items):
            return items
        if time.monotonic() > deadline:
            raise TimeoutError(f"deliveries still pending after {timeout}s: {items}")
        time.sleep(0.05)


@pytest.fixture
def receiver():
    """A receiver that answers 200 unless told otherwise."""
    server = Receiver()
    yield server
    server.close()


def create_endpoint(client, url: str, events=("product.updated",), **fields) -> dict:
    """Create a webhook through the API with Flask's test client; return its JSON and secret."""
    response = client.post("/api/webhooks", json={"url": url, "events": list(events), **fields})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


@pytest.fixture
def make_endpoint(client):
    """Create a webhook on the PostgreSQL app (`create_endpoint`)."""
    return lambda url, events=("product.updated",), **fields: create_endpoint(
        client, url, events, **fields
    )


@pytest.fixture
def slow_dns(monkeypatch):
    """Make DNS answer correctly but late: call it with the seconds each lookup should take."""

    def slow_down(seconds: float) -> None:
        getaddrinfo = socket.getaddrinfo

        def lookup(*args, **kwargs):
            time.sleep(seconds)  # a resolver we cannot run here, so its delay is played
            return getaddrinfo(*args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", lookup)

    return slow_down


class HeldResolver:
    """DNS that answers only once released: the lookups still waiting are counted."""

    def __init__(self):
        self.released = threading.Event()
        self.waiting = 0
        self._lock = threading.Lock()

    def wrap(self, getaddrinfo):
        def lookup(*args, **kwargs):
            with self._lock:
                self.waiting += 1
            self.released.wait(60)
            with self._lock:
                self.waiting -= 1
            return getaddrinfo(*args, **kwargs)

        return lookup


@pytest.fixture
def held_dns(monkeypatch):
    """Make DNS lookups wait until the test ends (or calls `released.set()`)."""
    resolver = HeldResolver()
    monkeypatch.setattr(socket, "getaddrinfo", resolver.wrap(socket.getaddrinfo))
    yield resolver
    resolver.released.set()
