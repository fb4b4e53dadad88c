"""One attempt, without the database: timeouts, refusals after DNS, what answers mean."""

import logging
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import certifi
import pytest
import trustme

from product_importer.webhooks import sender, signing
from product_importer.webhooks.sender import Verdict
from tests.conftest import free_port

from .receiver import Answer, verify

SECRET = signing.generate_secret()
BODY = b'{"id":"evt_1","type":"ping","data":{}}'


@pytest.fixture
def tls_receiver(tmp_path):
    """An HTTPS server on 127.0.0.1 with a self-signed certificate; yields its URL."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def send(url: str, *, timeout: float = 2, allow_private: bool = True) -> sender.Outcome:
    return sender.send(url, [SECRET], "evt_1", BODY, timeout=timeout, allow_private=allow_private)


def test_a_signed_post_is_sent_to_the_checked_address(receiver):
    outcome = send(receiver.url.replace("127.0.0.1", "localhost"))

    assert outcome.ok
    (request,) = receiver.requests
    assert request.headers["host"] == f"localhost:{receiver.port}"
    assert request.body == BODY
    assert verify(SECRET, request)


def test_a_kept_alive_connection_is_reused_only_for_the_same_host_name(receiver):
    by_name = receiver.url.replace("127.0.0.1", "localhost")  # the same address, another name

    for url in (by_name, by_name, receiver.url, receiver.url, by_name):
        assert send(url).ok

    ports = [request.client[1] for request in receiver.requests]
    assert ports[0] == ports[1] == ports[4]  # kept alive for its host name
    assert ports[2] == ports[3] != ports[0]  # another name has a connection of its own


def test_a_receiver_slower_than_the_timeout_is_a_retryable_timeout(receiver):
    receiver.answer(Answer(sleep=1.5))

    outcome = send(receiver.url, timeout=0.5)

    assert outcome.verdict == Verdict.RETRY
    assert outcome.error == "Timed out after 0.5 s waiting for the answer"
    assert outcome.response_time_ms >= 500


@pytest.mark.parametrize(
    "answer",
    [
        Answer(trickle=0.1),
        Answer(trickle=0.7),  # each byte within the timeout: only a total deadline stops it
        Answer(trickle=0.1, trickle_head=True),
        Answer(trickle=0.7, trickle_head=True),
    ],
    ids=["body", "body-slower", "headers", "headers-slower"],
)
def test_an_answer_trickling_in_past_the_timeout_is_cut_off_at_the_timeout(receiver, answer):
    receiver.answer(answer)

    started = time.monotonic()
    outcome = send(receiver.url, timeout=1)
    took = time.monotonic() - started

    assert outcome.verdict == Verdict.RETRY
    assert outcome.error == "Timed out after 1 s waiting for the answer"
    assert outcome.status_code is None
    assert took >= 1
    assert outcome.response_time_ms >= 1000
    receiver.wait_for_hang_up()  # it left with most of the answer still to come


def test_a_dns_lookup_slower_than_the_timeout_is_a_retryable_timeout(receiver, held_dns):
    started = time.monotonic()
    outcome = send(receiver.url.replace("127.0.0.1", "localhost"), timeout=1)
    took = time.monotonic() - started

    assert outcome.verdict == Verdict.RETRY
    assert outcome.error == "Timed out after 1 s resolving the host name"
    assert took >= 1
    assert held_dns.waiting == 1  # it gave up on the lookup rather than waiting for it
    assert receiver.requests == []


def test_time_spent_on_dns_counts_towards_the_timeout(receiver, slow_dns):
    slow_dns(0.6)
    receiver.answer(Answer(sleep=0.6))

    outcome = send(receiver.url.replace("127.0.0.1", "localhost"), timeout=1)

    # Neither the lookup nor the answer alone takes the 1 s: their sum does.
    assert outcome.error == "Timed out after 1 s waiting for the answer"
    assert outcome.response_time_ms >= 1000


def test_a_closed_port_is_a_retryable_network_error_said_for_people(caplog):
    caplog.set_level(logging.INFO, logger="product_importer.webhooks")
    port = free_port()
    outcome = send(f"http://127.0.0.1:{port}/hook")

    assert outcome.verdict == Verdict.RETRY
    assert outcome.status_code is None
    assert outcome.error == f"Connection refused: nothing listens at 127.0.0.1:{port}"
    assert "[Errno 111] Connection refused" in caplog.text  # the raw detail, for operators


def test_a_failure_is_logged_without_the_urls_credentials(caplog):
    # Logs are read and kept more widely than the webhook's settings: a password in the URL
    # went into every failure's line.
    caplog.set_level(logging.INFO, logger="product_importer.webhooks")
    port = free_port()
    send(f"http://ops:hunter2@127.0.0.1:{port}/hook?token=s3cret")

    assert f"webhook POST to http://***@127.0.0.1:{port}/hook?token=*** failed" in caplog.text
    assert "hunter2" not in caplog.text and "s3cret" not in caplog.text


def test_a_host_name_that_does_not_resolve_is_said_for_people():
    outcome = send("http://no-such-host.invalid/hook")

    assert outcome.verdict == Verdict.RETRY
    assert outcome.error.startswith("DNS lookup failed: ")
    assert "no-such-host.invalid" in outcome.error
    assert "Errno" not in outcome.error


def test_https_to_a_server_that_speaks_plain_http_is_said_for_people(receiver):
    outcome = send(receiver.url.replace("http://", "https://"))

    assert outcome.verdict == Verdict.RETRY
    assert outcome.error == (
        f"TLS handshake with 127.0.0.1:{receiver.port} failed: it does not speak HTTPS there "
        "(should the URL start with http://?)"
    )


def test_a_certificate_nobody_vouches_for_is_said_for_people(tls_receiver):
    outcome = send(tls_receiver)

    assert outcome.verdict == Verdict.RETRY
    assert outcome.error == (
        "TLS: the certificate of 127.0.0.1 is not trusted (self-signed certificate); the "
        "receiver needs a certificate from a known authority, or the workers' SSL_CERT_FILE "
        "must name the CA that signed it"
    )


class NoContent(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def own_ca_receiver(tmp_path):
    """An HTTPS receiver whose certificate a CA of one's own signed; yields its URL and the
    CA's PEM file. The worker's clients are made again after it (they keep their CAs)."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = ThreadingHTTPServer(("127.0.0.1", 0), NoContent)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/hook", ca_file
    server.shutdown()
    server.server_close()
    sender._trusted.cache_clear()
    sender._client.cache_clear()


def test_a_receiver_signed_by_a_ca_of_ones_own_is_trusted_through_ssl_cert_file(
    own_ca_receiver, monkeypatch
):
    # Internal receivers (WEBHOOK_ALLOW_PRIVATE) often have a certificate of the company's CA:
    # with the environment off (its proxies would bypass the address check), httpx read no
    # SSL_CERT_FILE, and every attempt failed as not trusted, retried for a day.
    url, ca_file = own_ca_receiver
    assert send(url).verdict == Verdict.RETRY  # the public CAs do not vouch for it
    sender._trusted.cache_clear()
    sender._client.cache_clear()
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))

    outcome = send(url)

    assert outcome.ok, outcome.error
    # beside the public CAs, not in their place: public receivers are still trusted
    public = ssl.create_default_context(cafile=certifi.where()).cert_store_stats()["x509_ca"]
    assert sender._trusted().cert_store_stats()["x509_ca"] == public + 1


def test_private_targets_are_refused_after_resolution_when_not_allowed(receiver):
    outcome = send(receiver.url.replace("127.0.0.1", "localhost"), allow_private=False)

    assert outcome.verdict == Verdict.FAILED
    assert outcome.error.startswith("Refused: localhost resolves to 127.0.0.1")
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.SUCCEEDED),
        (204, Verdict.SUCCEEDED),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (429, Verdict.RETRY),
        (410, Verdict.GONE),
        (404, Verdict.FAILED),
        (302, Verdict.FAILED),
    ],
)
def test_what_each_answer_means(receiver, status, verdict):
    receiver.answer(Answer(status=status, headers={"Retry-After": "7"}))

    outcome = send(receiver.url)

    assert (outcome.verdict, outcome.status_code) == (verdict, status)
    assert outcome.retry_after == (7 if verdict == Verdict.RETRY else None)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("30", 30), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0)],
)
def test_retry_after_is_seconds_or_a_date(header, seconds):
    assert sender.parse_retry_after(header) == seconds
