"""Addresses too long to read: `serve` (gunicorn) lets a filter of a few KB through, and answers
a longer one with 414 in the API's JSON error shape, never gunicorn's own HTML page."""

import socket
from urllib.parse import urlsplit

import pytest

LIMIT = 8000  # MAX_URL_BYTES by default
SHORTEN = "Shorten the filters: a few words of the text find the same products."


def test_a_filter_of_several_kilobytes_is_served(http):
    """gunicorn's own limit (4094 bytes of request line) used to refuse it with an HTML page."""
    response = http.get("/api/products", params={"q": "x" * 6000})

    assert response.status_code == 200, response.text
    assert response.json()["total"] == 0


@pytest.mark.parametrize(
    "path", ["/api/products", "/api/products/export.csv", "/api/imports", "/api/nowhere"]
)
@pytest.mark.parametrize(
    "length",
    [
        LIMIT + 100,  # refused by the app
        20_000,  # past the longest request line gunicorn reads: refused by it, as the app does
    ],
)
def test_an_address_too_long_is_refused_in_the_apis_json_saying_to_shorten_it(http, path, length):
    query = "q=" + "x" * (length - len(path) - len("?q="))

    response = http.get(f"{path}?{query}")

    assert response.status_code == 414
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    error = response.json()["error"]
    assert error["code"] == "uri_too_long"
    assert error["message"] == (
        f"The address is longer than {LIMIT:,} bytes (its path and query). {SHORTEN}"
    )


def test_an_address_of_the_limit_is_read(http):
    path = "/api/products"
    query = "q=" + "x" * (LIMIT - len(path) - len("?q="))

    assert http.get(f"{path}?{query}").status_code == 200


def test_a_page_address_past_the_api_limit_is_still_served(http):
    """The limit is the API's: the Products page opens on a long filter and says why the list
    cannot be loaded (its own request to the API is the one refused)."""
    response = http.get("/products", params={"description": "x" * (LIMIT + 100)})

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")


def test_a_request_line_that_never_ends_is_refused_without_waiting_for_its_end(live_server):
    """The server reads no more than its limit of a request line: it answers without the rest."""
    address = urlsplit(live_server)
    with socket.create_connection((address.hostname, address.port)) as conn:
        conn.sendall(b"GET /api/products?q=" + b"x" * 20_000)  # and no line end, ever

        answer = b""
        while b"\r\n\r\n" not in answer:
            piece = conn.recv(65536)
            assert piece, f"closed without an answer: {answer!r}"
            answer += piece

    assert answer.startswith(b"HTTP/1.1 414 ")
    assert b"Content-Type: application/json" in answer
