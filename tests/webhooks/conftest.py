"""Webhook fixtures: receivers on 127.0.0.1 and endpoints."""

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
