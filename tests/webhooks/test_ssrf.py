"""Webhook targets inside the network are refused when saved and again at delivery."""

import socket

import pytest

from product_importer import create_app
from product_importer.webhooks import ssrf
from tests.conftest import client_with_token

REFUSED_UNLESS_ALLOWED = [
    "http://127.0.0.1/hook",
    "http://10.0.0.5/hook",
    "http://172.16.3.4:8080/hook",
    "http://192.168.1.10/hook",
    "http://[::1]/hook",
    "http://[fd12:3456::1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://2130706433/hook",  # 127.0.0.1 written as one number
    "http://localhost:9/hook",  # a host name resolving to 127.0.0.1
]
ALWAYS_REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://[::ffff:169.254.169.254]/",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://[fec0::1]/hook",  # site-local
    "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
    "http://[2002:a9fe:a9fe::1]/hook",  # 6to4 of the metadata address 169.254.169.254
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",  # Teredo
]


@pytest.fixture(scope="module")
def strict_app(app):
    """An app on the same database with WEBHOOK_ALLOW_PRIVATE off, as in production."""
    return create_app({"TESTING": True, "WEBHOOK_ALLOW_PRIVATE": False})


@pytest.fixture
def strict_client(strict_app, accounts):
    return client_with_token(strict_app, accounts["admin"].token)


@pytest.mark.parametrize("url", REFUSED_UNLESS_ALLOWED + ALWAYS_REFUSED)
def test_internal_targets_are_refused_when_saved(strict_client, url):
    response = strict_client.post("/api/webhooks", json={"url": url, "events": ["product.created"]})

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["details"]["url"].startswith("Refused:"), error
    assert strict_client.get("/api/webhooks").get_json()["items"] == []


@pytest.mark.parametrize("url", REFUSED_UNLESS_ALLOWED)
def test_private_targets_are_allowed_when_configured(url):
    assert ssrf.check_url(url, allow_private=True).address


@pytest.mark.parametrize("url", ALWAYS_REFUSED)
def test_link_local_targets_are_refused_even_when_private_ones_are_allowed(url):
    with pytest.raises(ssrf.Refused):
        ssrf.check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "/relative", ""]
)
def test_only_http_and_https_urls_are_accepted(url):
    with pytest.raises(ssrf.Refused):
        ssrf.parse(url)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.1:0/hook", "Port 0 does not exist: give one from 1 to 65535"),
        ("http://127.0.0.1:65536/hook", "Port 65536 does not exist"),
        ("http://localhost:99999/hook", "Port 99999 does not exist"),
        ("http://exa mple.com/hook", "The host name 'exa mple.com' holds a space"),
        # the parser's own sentence, ended once
        (
            "http://127.0.0.1/a\x00b",
            "Not a valid URL: Invalid non-printable ASCII character in URL, '\\x00' at "
            "position 18.",
        ),
    ],
)
def test_a_port_or_host_name_that_cannot_exist_is_refused_saying_so(client, url, said):
    response = client.post("/api/webhooks", json={"url": url, "events": ["product.created"]})

    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["url"].startswith(said)
    assert not response.get_json()["error"]["details"]["url"].endswith("..")
    assert client.get("/api/webhooks").get_json()["items"] == []


def test_a_host_name_that_does_not_exist_is_refused_in_words(client):
    url = "http://no-such-host.invalid/hook"
    response = client.post("/api/webhooks", json={"url": url, "events": ["product.created"]})

    assert response.status_code == 422
    said = response.get_json()["error"]["details"]["url"]
    # "does not exist" where a resolver answers; "no answer ... for now" on a host without one
    assert said.startswith("DNS lookup failed: the host name no-such-host.invalid "), said
    assert "Errno" not in said


def test_the_highest_port_is_a_port(client):
    url = "http://127.0.0.1:65535/hook"
    response = client.post("/api/webhooks", json={"url": url, "events": ["product.created"]})

    assert response.status_code == 201
    assert response.get_json()["url"] == url


def test_a_name_resolving_to_loopback_is_named_in_the_refusal():
    with pytest.raises(ssrf.Refused, match=r"localhost resolves to 127\.0\.0\.1 is a loopback"):
        ssrf.check_url("http://localhost/hook", allow_private=False)


def test_saving_gives_up_on_a_dns_lookup_that_takes_too_long(held_dns, monkeypatch):
    monkeypatch.setattr(ssrf, "SAVE_LOOKUP_TIMEOUT_SECONDS", 0.5)

    with pytest.raises(ssrf.Refused) as refused:
        ssrf.check_url("http://localhost/hook", allow_private=True)

    assert held_dns.waiting == 1  # given up on while the lookup still runs
    assert str(refused.value) == (
        "The host name localhost could not be resolved "
        "(DNS lookup of localhost timed out after 0.5 s)."
    )


def test_delivery_checks_the_target_again(strict_client, make_endpoint, receiver):
    # Saved while private targets were allowed; sent by an app where they are not.
    endpoint = make_endpoint(receiver.url.replace("127.0.0.1", "localhost"))
    client = strict_client

    result = client.post(f"/api/webhooks/{endpoint['id']}/test").get_json()

    assert result["ok"] is False
    assert result["error"].startswith("Refused: localhost resolves to 127.0.0.1")
    assert receiver.requests == []


@pytest.fixture
def idn_dns(monkeypatch):
    """DNS where only the IDNA 2008 form of straße.test (xn--strae-oqa.test) exists, at
    127.0.0.1; strasse.test, the name IDNA 2003 maps it to, is another domain, not here."""
    getaddrinfo = socket.getaddrinfo
    asked = []

    def lookup(host, port, *args, **kwargs):
        # as CPython does before asking the resolver: a non-ASCII name goes out as IDNA 2003
        name = host if host.isascii() else host.encode("idna").decode("ascii")
        if not name.endswith(".test"):
            return getaddrinfo(host, port, *args, **kwargs)  # the addresses connected to
        asked.append(name)
        if name == "xn--strae-oqa.test":
            return getaddrinfo("127.0.0.1", port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return asked


def test_an_idn_host_is_looked_up_and_sent_as_the_url_names_it(client, idn_dns, receiver):
    """straße.test is xn--strae-oqa.test (IDNA 2008, as browsers and the Host header have
    it): saving and delivering look that name up, not strasse.test, someone else's domain."""
    url = receiver.url.replace("127.0.0.1", "straße.test")
    created = client.post("/api/webhooks", json={"url": url, "events": ["product.created"]})
    assert created.status_code == 201, created.get_json()

    result = client.post(f"/api/webhooks/{created.get_json()['id']}/test").get_json()

    assert result["ok"] is True, result
    [request] = receiver.requests
    assert request.headers["host"] == f"xn--strae-oqa.test:{receiver.port}"
    assert "strasse.test" not in idn_dns
