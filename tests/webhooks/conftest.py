"""Webhook fixtures: receivers on 127.0.0.1 and endpoints."""

import socket
import time

import pytest

from .receiver import Receiver


@pytest.fixture
def receiver():
    """A receiver that answers 200 unless told otherwise."""
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def make_endpoint(client):
    """Create a webhook through the API; return its JSON (with the secret)."""

    def make(url: str, events=("product.updated",), **fields) -> dict:
        body = {"url": url, "events": list(events), **fields}
        response = client.post("/api/webhooks", json=body)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    return make


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
