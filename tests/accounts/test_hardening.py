"""Request hardening on the live server: body limits, cross-site requests, the Host header and
the security headers of every kind of response."""

import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from product_importer.config import allowed_hosts
from tests.conftest import PASSWORD, http_client

from .conftest import form_token, is_signed_in

MIB = 1024 * 1024
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def raw_exchange(url: str, head: str, body: bytes) -> tuple[int, dict, bytes]:
    """Send a request head and (part of) its body on a socket; return the answer.

    The head may announce more body than is sent: an answer then shows the server refused
    the request without waiting for (or reading) the rest.
    """
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer: {answer!r}"
            answer += chunk
        top, _, rest = answer.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers.get("Content-Length", 0))
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
    return int(lines[0].split()[1]), headers, rest


def request_head(method: str, url: str, path: str, token: str, **headers) -> str:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {urlsplit(url).netloc}"]
    lines += [f"Authorization: Bearer {token}", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\n".join(lines) + "\n"


def test_a_json_body_over_1_mib_is_refused_before_it_is_read(live_server, http, accounts):
    announced = 2 * MIB
    head = request_head(
        "POST",
        live_server,
        "/api/webhooks",
        accounts["admin"].token,
        Content_Type="application/json",
        Content_Length=announced,
    )

    status, _, body = raw_exchange(live_server, head, b"[" + b"1," * 32_000)  # 64 KB of 2 MiB

    assert status == 413
    assert json.loads(body)["error"]["code"] == "too_large"
    headers = {"Content-Type": "application/json", **http.headers}
    whole = httpx.post(  # a connection of its own: it ends unread past the limit
        f"{live_server}/api/webhooks", content=b"[" + b"1," * MIB + b"1]", headers=headers
    )
    assert whole.status_code == 413
    assert "larger than 1,048,576 bytes" in whole.json()["error"]["message"]
    assert http.get("/api/webhooks").json()["items"] == []


def in_chunks(body: bytes):
    """The body as a generator: httpx sends it chunked, without Content-Length."""
    for start in range(0, len(body), 64 * 1024):
        yield body[start : start + 64 * 1024]


@pytest.mark.parametrize("path", ["/api/products", "/api/imports", "/api/tokens"])
def test_a_json_body_over_1_mib_sent_in_chunks_is_refused(live_server, http, path):
    headers = {"Content-Type": "application/json", **http.headers}
    body = json.dumps({"upload": "u" * (2 * MIB), "name": "n"}).encode()

    response = httpx.post(f"{live_server}{path}", content=in_chunks(body), headers=headers)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert "larger than 1,048,576 bytes" in response.json()["error"]["message"]
    small = json.dumps({"sku": "S-1", "name": "Small"}).encode()
    made = httpx.post(f"{live_server}/api/products", content=in_chunks(small), headers=headers)
    assert made.status_code == 201, made.text  # a body in chunks under the limit is read


@pytest.mark.parametrize("token", [None, "pit_not-a-token"])
def test_a_body_in_chunks_without_valid_credentials_is_refused_before_it_is_read(
    live_server, http, token
):
    head = ["POST /api/products HTTP/1.1", f"Host: {urlsplit(live_server).netloc}"]
    head += ["Connection: close", "Content-Type: application/json", "Transfer-Encoding: chunked"]
    head += [f"Authorization: Bearer {token}"] if token else []
    first_chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"  # of a body that never ends

    status, headers, body = raw_exchange(live_server, "\n".join(head) + "\n", first_chunk)

    assert status == 401  # answered without waiting for the rest
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(body)["error"]["code"] == "unauthorized"
    assert http.get("/api/products").json()["total"] == 0


def test_a_body_in_chunks_from_a_role_too_low_is_refused_before_it_is_read(
    live_server, http, accounts
):
    head = ["DELETE /api/products HTTP/1.1", f"Host: {urlsplit(live_server).netloc}"]
    head += ["Connection: close", "Content-Type: application/json", "Transfer-Encoding: chunked"]
    head += [f"Authorization: Bearer {accounts['viewer'].token}"]
    first_chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"  # of a body that never ends

    status, _headers, body = raw_exchange(live_server, "\n".join(head) + "\n", first_chunk)

    assert status == 403  # answered without waiting for the rest
    assert json.loads(body)["error"]["details"]["required_role"] == "admin"


def test_a_form_over_1_mib_is_refused(live_server):
    with httpx.Client(base_url=live_server) as browser:
        response = browser.post("/login", data={"email": "x" * (2 * MIB), "password": "y"})
    assert response.status_code == 413


def test_a_body_under_the_limit_is_read(http):
    name = "n" * (MIB // 2)
    response = http.post("/api/products", json={"sku": "BIG", "name": name})
    assert response.status_code == 422  # read, then refused for its long name, not its size
    assert "name" in response.json()["error"]["details"]


@pytest.mark.parametrize(
    "origin", ["null", "https://evil.example", "http://127.0.0.1.evil.example"]
)
def test_a_cross_site_request_with_a_session_is_refused(browsers, accounts, origin, client):
    session = browsers(accounts["editor"].email)

    response = session.post(
        "/api/products", json={"sku": "X-1", "name": "Cross"}, headers={"Origin": origin}
    )
    upload = session.post(
        "/api/imports", files={"file": ("a.csv", b"sku,name\nA,B\n")}, headers={"Origin": origin}
    )

    assert (response.status_code, upload.status_code) == (403, 403)
    assert response.json()["error"]["code"] == "forbidden"
    assert client.get("/api/products").get_json()["total"] == 0
    assert client.get("/api/imports").get_json()["items"] == []


def test_a_same_site_request_with_a_session_goes_through(browsers, accounts, live_server):
    session = browsers(accounts["editor"].email)
    response = session.post(
        "/api/products", json={"sku": "X-1", "name": "Mine"}, headers={"Origin": live_server}
    )
    assert response.status_code == 201


def test_a_session_request_without_the_pages_csrf_token_is_refused(browsers, accounts, client):
    session = browsers(accounts["editor"].email)
    del session.headers["X-CSRFToken"]

    response = session.post("/api/products", json={"sku": "X-1", "name": "Forged"})

    assert response.status_code == 403
    assert "CSRF token" in response.json()["error"]["message"]
    assert client.get("/api/products").get_json()["total"] == 0


def test_a_stale_csrf_token_is_named_so_the_page_fetches_the_sessions_token(browsers, accounts):
    session = browsers(accounts["editor"].email)
    session.headers["X-CSRFToken"] = "a token of an earlier session"

    refused = session.post("/api/products", json={"sku": "X-1", "name": "Kept"})
    fresh = session.get("/csrf-token", headers={"Accept": "application/json"})
    session.headers["X-CSRFToken"] = fresh.json()["csrf_token"]
    sent_again = session.post("/api/products", json={"sku": "X-1", "name": "Kept"})

    assert refused.status_code == 403
    assert refused.json()["error"]["details"] == {"reason": "csrf_token"}
    assert fresh.status_code == 200 and fresh.headers["Cache-Control"] == "no-store"
    assert sent_again.status_code == 201


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "null"}, {"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}],
)
def test_a_form_posted_from_another_site_is_refused_even_with_its_csrf_token(
    browsers, accounts, live_server, headers
):
    session = browsers(accounts["editor"].email)
    token = form_token(session.get("/account").text)

    sign_out = session.post("/logout", data={"csrf_token": token}, headers=headers)

    assert sign_out.status_code == 403
    assert is_signed_in(session)
    with httpx.Client(base_url=live_server, timeout=30) as browser:
        form = {"email": accounts["editor"].email, "password": PASSWORD}
        form["csrf_token"] = form_token(browser.get("/login").text)
        assert browser.post("/login", data=form, headers=headers).status_code == 403
        assert not is_signed_in(browser)
        assert browser.post("/login", data=form).status_code == 302  # from its own page


def test_a_request_for_another_host_name_is_refused_and_changes_nothing(
    live_server, accounts, client
):
    with http_client(live_server, accounts["admin"].token) as http:
        evil = {"Host": "evil.example", "Origin": "http://evil.example"}
        created = http.post("/api/products", json={"sku": "E", "name": "E"}, headers=evil)
        page = http.get("/products", headers={"Host": "evil.example", "Accept": "text/html"})
        ours = http.get("/api/products", headers={"Host": "localhost"})

    assert (created.status_code, page.status_code) == (400, 400)
    assert "evil.example" in created.json()["error"]["message"]
    assert page.text == "Host 'evil.example' is not trusted."
    assert client.get("/api/products").get_json()["total"] == 0
    assert ours.status_code == 200


def assert_security_headers(response, what: str) -> None:
    policy = response.headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, what
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (what, name)


def test_every_kind_of_response_carries_the_security_headers(live_server, http, browsers, accounts):
    session = browsers(accounts["viewer"].email)
    with httpx.Client(base_url=live_server) as anonymous:
        responses = {
            "sign-in page": anonymous.get("/login"),
            "redirect to sign in": anonymous.get("/products"),
            "401": anonymous.get("/api/products"),
            "static file": anonymous.get("/static/app.js"),
            "health": anonymous.get("/healthz"),
            "bad host": anonymous.get("/login", headers={"Host": "evil.example"}),
        }
    responses |= {
        "page": session.get("/products"),
        "403 page": session.get("/users"),
        "404 page": session.get("/no-such-page"),
        "API": http.get("/api/products"),
        "API 403": session.post("/api/products", json={"sku": "V", "name": "V"}),
        "API 404": http.get("/api/products/999"),
        "API 413": httpx.post(
            f"{live_server}/api/products", json={"name": "x" * MIB}, headers=http.headers
        ),
        "CSV": http.get("/api/products/export.csv"),
    }
    for what, response in responses.items():
        assert_security_headers(response, what)
    assert responses["403 page"].status_code == 403


def test_pages_are_not_kept_by_the_browser_and_the_api_and_files_may_be(
    live_server, http, browsers, accounts
):
    # A page shows the catalog, accounts or tokens as one account sees them. Kept (Firefox
    # keeps a page in its back-forward cache unless told no-store), Back after signing out
    # showed it to whoever used the machine next.
    session = browsers(accounts["admin"].email)
    for path in ("/products", "/users", "/account", "/imports", "/audit"):
        assert session.get(path).headers.get("Cache-Control") == "no-store", path
    with httpx.Client(base_url=live_server) as anonymous:
        assert anonymous.get("/login").headers["Cache-Control"] == "no-store"
        assert "no-store" not in anonymous.get("/static/app.js").headers.get("Cache-Control", "")
    assert "Cache-Control" not in http.get("/api/products").headers  # JSON: as it was


def test_allowed_hosts_default_to_local_names_and_the_bound_address():
    assert allowed_hosts(None, None) == ["localhost", "127.0.0.1"]
    assert allowed_hosts(None, "10.1.2.3") == ["localhost", "127.0.0.1", "10.1.2.3"]
    assert socket.gethostname() in allowed_hosts(None, "0.0.0.0")
    assert allowed_hosts(" shop.example, api.example ", "0.0.0.0") == [
        "shop.example",
        "api.example",
    ]


@pytest.mark.parametrize("blank", [",", " ", " , ,"])
def test_allowed_hosts_naming_no_host_is_the_default_not_every_host(make_app, monkeypatch, blank):
    # Flask took the empty list it gave as "check nothing": any Host was answered.
    monkeypatch.setenv("ALLOWED_HOSTS", blank)
    app = make_app()

    assert app.test_client().get("/healthz", base_url="http://evil.example").status_code == 400
    assert app.test_client().get("/healthz", base_url="http://localhost").status_code == 200


def test_allowed_hosts_names_the_only_host_names_answered(make_app, monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", "shop.example")
    app = make_app()

    assert app.test_client().get("/healthz", base_url="http://shop.example").status_code == 200
    assert app.test_client().get("/healthz", base_url="http://localhost").status_code == 400


NOT_UNICODE = "The JSON body holds text that is not Unicode"
# A lone surrogate as JSON escapes it, and as UTF-8 would encode it (which Python's JSON
# parser reads too): each of these bodies answered a 500, as no database or hash takes it.
LONE_SURROGATES = {"escaped": b"\\ud800", "encoded": b"\xed\xb0\x80"}
BODIES = {
    "/api/products": b'{"sku": "A-1", "name": "Lamp %s"}',
    "/api/tokens": b'{"name": "laptop %s"}',
    "/api/users": b'{"email": "ana%s@example.test", "role": "viewer"}',
    "/api/account/password": b'{"current_password": "%s", "new_password": "a new password"}',
    "/api/webhooks": b'{"url": "https://example.test/%s", "events": ["product.created"]}',
}
COUNTS = (
    "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM access_tokens), "
    "(SELECT count(*) FROM users), (SELECT count(*) FROM webhook_endpoints)"
)


@pytest.mark.parametrize("surrogate", LONE_SURROGATES.values(), ids=LONE_SURROGATES.keys())
@pytest.mark.parametrize("path", BODIES)
def test_a_json_body_with_a_lone_surrogate_is_refused_and_changes_nothing(
    http, sql, path, surrogate
):
    before = sql(COUNTS)

    body = BODIES[path] % surrogate
    response = http.post(path, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_request" and error["message"].startswith(NOT_UNICODE)
    assert sql(COUNTS) == before


@pytest.mark.parametrize("path", ["/api/products", "/api/imports", "/api/webhooks"])
def test_a_json_body_nested_a_thousand_deep_is_refused_as_not_an_object(http, path):
    # Python's JSON parser raises RecursionError there, not ValueError: it was a 500.
    body = b"[" * 100_000 + b"]" * 100_000
    response = http.post(path, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith("Send the ")
