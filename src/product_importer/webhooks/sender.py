"""One signed HTTP attempt to a webhook endpoint, and what its answer means."""

import contextlib
import contextvars
import enum
import functools
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpcore
import httpx

from .. import tls
from . import reasons, signing, ssrf
from .urls import url_without_secrets

log = logging.getLogger(__name__)
# httpx logs every request at INFO; the delivery log and our own lines say what matters.
logging.getLogger("httpx").setLevel(logging.WARNING)

USER_AGENT = "ProductImporter-Webhooks/1.0"
MAX_BODY_READ = 64 * 1024  # read this much of an answer, so the connection can be reused
# A zero socket timeout means non-blocking (an error, not a timeout): wait at least this long.
MIN_WAIT_SECONDS = 0.001
# When the current thread's attempt must end (a time.perf_counter() value), if it is sending.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


class Verdict(enum.StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"  # network error, timeout, 5xx or 429
    FAILED = "failed"  # any other answer, or a refused target
    GONE = "gone"  # 410: the receiver asks us to stop


@dataclass(frozen=True)
class Outcome:
    """What one attempt found out."""

    verdict: Verdict
    status_code: int | None = None
    response_time_ms: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds, from the receiver's Retry-After

    @property
    def ok(self) -> bool:
        return self.verdict == Verdict.SUCCEEDED

    def reply(self) -> dict:
        """The columns a delivery and its attempt log keep of the answer."""
        return {
            "status_code": self.status_code,
            "response_time_ms": self.response_time_ms,
            "error": self.error,
        }


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every socket wait ends by the deadline of the attempt using it."""

    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _remaining(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> "_DeadlineStream":
        tls = self._stream.start_tls(ssl_context, server_hostname, _remaining(timeout))
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend, handing out connections that respect the deadline."""

    def __init__(self, backend: httpcore.NetworkBackend):
        self._backend = backend

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        stream = self._backend.connect_tcp(
            host, port, _remaining(timeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _remaining(timeout: float | None) -> float | None:
    """Shorten one socket wait to the time left before this thread's attempt must end."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = max(deadline - time.perf_counter(), MIN_WAIT_SECONDS)
    return left if timeout is None else min(timeout, left)


@functools.cache
def _trusted() -> ssl.SSLContext | bool:
    """The CAs a receiver's certificate is checked against: certifi's, and those SSL_CERT_FILE
    (or REQUESTS_CA_BUNDLE) names, as for `import --url`. With the environment off (its proxies
    would bypass the address check) httpx read neither: an internal receiver signed by a CA of
    one's own was never trusted."""
    cas = tls.trusted_cas()
    if cas is None:
        return True
    try:
        return tls.context(cas[1], beside_public=True)
    except (OSError, ssl.SSLError) as error:
        log.error(
            "%s is %s, which holds no CA certificate that can be read (%s): webhook receivers "
            "are checked against the public CAs. Point it at the PEM file of your CA.",
            *cas,
            error,
        )
        return True


@functools.lru_cache(maxsize=256)
def _client(host: str) -> httpx.Client:
    """One client per receiving host name: keeps connections open between its deliveries.

    Requests go to the checked address, not the name, so one shared pool would hand a TLS
    connection verified for one host name to another name on the same address.
    """
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=10)
    transport = httpx.HTTPTransport(limits=limits, trust_env=False, verify=_trusted())
    # httpx's timeouts restart on every read, so a receiver trickling its answer could hold a
    # thread for ever; only the socket level sees every wait. httpx has no public way in.
    pool = transport._pool
    pool._network_backend = _DeadlineBackend(pool._network_backend)
    # Proxies from the environment would bypass the address check; redirects likewise.
    return httpx.Client(
        transport=transport,
        trust_env=False,
        follow_redirects=False,
        headers={"user-agent": USER_AGENT, "content-type": "application/json"},
    )


def send(
    url: str,
    signing_secrets: Sequence[str],
    msg_id: str,
    body: bytes,
    *,
    timeout: float,
    allow_private: bool,
) -> Outcome:
    """POST `body` to `url`, signed by each secret, to the address checked after DNS; all
    within `timeout`."""
    started = time.perf_counter()
    try:
        parsed = ssrf.parse(url)
        target = ssrf.resolve(parsed, allow_private=allow_private, timeout=timeout)
    except ssrf.Refused as error:
        return Outcome(Verdict.FAILED, error=str(error))
    except ssrf.LookupTimeout:
        error = _timed_out(timeout, "resolving the host name")
        return Outcome(Verdict.RETRY, response_time_ms=_elapsed_ms(started), error=error)
    except (OSError, UnicodeError) as error:
        return Outcome(
            Verdict.RETRY, error=_unreachable(url, reasons.dns(error, parsed.host), error)
        )
    headers = {
        "host": target.host_header(),
        **signing.headers(signing_secrets, msg_id, _now(), body),
    }
    try:
        response = _post(target, headers, body, deadline=started + timeout)
    except httpx.TimeoutException as error:
        ms = _elapsed_ms(started)
        return Outcome(Verdict.RETRY, response_time_ms=ms, error=_timeout_message(error, timeout))
    except httpx.HTTPError as error:
        said = _unreachable(url, reasons.network(error, target.url), error)
        return Outcome(Verdict.RETRY, response_time_ms=_elapsed_ms(started), error=said)
    return judge(response, _elapsed_ms(started), url=parsed)


@contextlib.contextmanager
def _until(deadline: float):
    """Make every network wait of this thread end by `deadline` (a time.perf_counter())."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def _post(target: ssrf.Target, headers: dict, body: bytes, *, deadline: float) -> httpx.Response:
    """POST to the first of the target's addresses that takes the connection.

    A name may have an address this machine cannot reach (IPv6 first, on a network of IPv4
    only) or a dead server among several: as a browser does, the next one is tried.
    """
    *others, last = target.addresses
    for address in others:
        if time.perf_counter() >= deadline:
            break
        try:
            return _post_to(target, address, headers, body, deadline=deadline)
        except httpx.ConnectError:
            continue  # nothing was sent: the next address gets the delivery
    return _post_to(target, last, headers, body, deadline=deadline)


def _post_to(
    target: ssrf.Target, address: ssrf.Address, headers: dict, body: bytes, *, deadline: float
) -> httpx.Response:
    host = ssrf.ascii_host(target.url)  # as the Host header names it, not as IDNA 2003 would
    extensions = {"sni_hostname": host} if target.url.scheme == "https" else {}
    with (
        _until(deadline),
        _client(host).stream(
            "POST",
            target.pinned_url(address),
            content=body,
            headers=headers,
            timeout=_remaining(None),  # waiting for a pooled connection counts too
            extensions=extensions,
        ) as response,
    ):
        _drain(response, deadline)
    return response


def _drain(response: httpx.Response, deadline: float) -> None:
    """Read (and drop) the start of the answer, so the connection can serve the next request."""
    read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read > MAX_BODY_READ:
            return
        if time.perf_counter() > deadline:
            raise httpx.ReadTimeout("The answer took too long", request=response.request)


def judge(response: httpx.Response, response_time_ms: int, *, url: httpx.URL) -> Outcome:
    """Say what a receiver's answer means: success, retry later, give up, or stop for good.

    `url` is the webhook's URL, which a relative `Location` is read against.
    """
    code = response.status_code
    reply = {"status_code": code, "response_time_ms": response_time_ms}
    if 200 <= code < 300:
        return Outcome(Verdict.SUCCEEDED, **reply)
    error = f"HTTP {code} {response.reason_phrase}".strip()
    if code == 410:
        return Outcome(Verdict.GONE, **reply, error=f"{error}: the webhook was disabled")
    if code >= 500 or code == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return Outcome(Verdict.RETRY, **reply, error=error, retry_after=retry_after)
    location = response.headers.get("location") if 300 <= code < 400 else None
    if location:
        return Outcome(Verdict.FAILED, **reply, error=_redirected(error, url, location))
    return Outcome(Verdict.FAILED, **reply, error=f"{error} (only 5xx and 429 are retried)")


def _redirected(error: str, url: httpx.URL, location: str) -> str:
    """Say where a receiver redirects to, and what to do: redirects are never followed (the
    address they point to would escape the check of the webhook's own)."""
    try:
        where = str(url.join(location))
    except httpx.InvalidURL:
        where = location
    # Every role reads the delivery log: a Location relative to the webhook's URL keeps its
    # user, password and path once joined to it.
    where = url_without_secrets(where)
    return (
        f"{error}: the receiver redirects to {where}. Redirects are not followed; "
        "if that is where events should go, change the webhook's URL to it"
    )


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds a `Retry-After` header asks for (a number or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() also takes "²", which float() refuses, and an error
    # here would end the attempt unrecorded (the delivery then waits out every lease for ever)
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def unexpected(error: Exception) -> Outcome:
    """An attempt ended by an error no one foresaw (a bug, a library's surprise): retried as a
    network error is. Its error names the exception's type only: every role reads the delivery
    log, and a message may quote the URL's credentials or a secret in any form."""
    return Outcome(
        Verdict.RETRY,
        error=f"The attempt ended in an unexpected error ({_qualified_name(type(error))}); "
        "the server's log has the details",
    )


def _qualified_name(kind: type) -> str:
    """`binascii.Error`, `KeyError`: the module says which of many `Error`s it is."""
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _unreachable(url: str, said: str, error: Exception) -> str:
    """Log the raw error beside what the delivery log says of it; return what it says. The
    URL goes to the log without its credentials: logs are read and kept more widely."""
    shown = url_without_secrets(str(url))
    log.info("webhook POST to %s failed: %s (%s: %s)", shown, said, type(error).__name__, error)
    return said


def _timeout_message(error: httpx.TimeoutException, timeout: float) -> str:
    phase = {
        httpx.ConnectTimeout: "connecting",
        httpx.ReadTimeout: "waiting for the answer",
        httpx.WriteTimeout: "sending",
        httpx.PoolTimeout: "waiting for a free connection",
    }.get(type(error), "waiting")
    return _timed_out(timeout, phase)


def _timed_out(timeout: float, phase: str) -> str:
    return f"Timed out after {timeout:g} s {phase}"


def _now() -> int:
    return int(time.time())


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
