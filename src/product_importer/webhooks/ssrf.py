"""Keep webhooks out of the operator's network: check targets when saved and after DNS.

Link-local addresses (169.254.0.0/16 holds the cloud metadata service) and addresses that
cannot be a server are always refused; loopback and private addresses unless allowed.
Delivery connects to the very address that was checked, so DNS cannot be re-pointed between
the check and the connection.
"""

import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote

import httpx

from . import reasons

SCHEMES = ("http", "https")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# Metadata services outside the link-local ranges (AWS over IPv6, Alibaba Cloud).
PRIVATE_HINT = " (allowed only with WEBHOOK_ALLOW_PRIVATE=true)"
METADATA = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
# IPv6 ranges that carry or reach an IPv4 address (or a deprecated site network), so that a
# private or link-local IPv4 target could hide in them: always refused.
TUNNELS = {
    ipaddress.ip_network("fec0::/10"): "a site-local address",
    ipaddress.ip_network("2002::/16"): "a 6to4 address (it embeds an IPv4 address)",
    ipaddress.ip_network("2001::/32"): "a Teredo address (it embeds an IPv4 address)",
}
MAX_PORT = 65535
SAVE_LOOKUP_TIMEOUT_SECONDS = 10.0  # a webhook being saved waits no longer for DNS than this


class LookupTimeout(TimeoutError):
    """DNS did not answer in time."""


class Refused(Exception):
    """The target is not allowed; the message says why, for the person who configured it."""


@dataclass(frozen=True)
class Target:
    """A checked target: the URL to request and the addresses to connect to instead of DNS,
    in the order DNS gave them (every one checked)."""

    url: httpx.URL
    addresses: tuple[Address, ...]

    @property
    def address(self) -> Address:
        """The first address: the one tried first."""
        return self.addresses[0]

    def pinned_url(self, address: Address | None = None) -> httpx.URL:
        """The URL with its host replaced by a checked address (the first, by default)."""
        return self.url.copy_with(host=str(address or self.address))

    def host_header(self) -> str:
        return self.url.netloc.decode("ascii")


def parse(url: str) -> httpx.URL:
    """Return the parsed URL, or raise Refused unless it is an absolute http(s) URL."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as error:
        raise Refused(f"Not a valid URL: {str(error).rstrip('.')}.") from None  # ended once
    if parsed.scheme not in SCHEMES:
        raise Refused("Only http:// and https:// URLs can receive webhooks.")
    if not parsed.host:
        raise Refused("The URL has no host name.")
    if "%" in parsed.host:  # httpx escapes a space (or such) rather than refusing it
        raise Refused(
            f"The host name {unquote(parsed.host)!r} holds a space or another character a host "
            "name cannot have; check the URL."
        )
    if parsed.port is not None and not 1 <= parsed.port <= MAX_PORT:
        # else port 0 would be sent to the scheme's port, and 99999 refused at every attempt
        raise Refused(
            f"Port {parsed.port} does not exist: give one from 1 to {MAX_PORT}, or none "
            "(http:// uses 80, https:// 443)."
        )
    return parsed


def refusal(address: Address, *, allow_private: bool) -> str | None:
    """Return why `address` is refused, or None when it may be used."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address in METADATA:
        return f"{address} is a cloud metadata address"
    for network, what in TUNNELS.items():
        if address.version == 6 and address in network:
            return f"{address} is {what}"
    if address.is_link_local:
        return f"{address} is a link-local address (such as the cloud metadata service)"
    if address.is_multicast or address.is_unspecified:
        return f"{address} is not the address of a server"
    if address.is_loopback:
        return None if allow_private else f"{address} is a loopback address{PRIVATE_HINT}"
    if address.is_reserved:
        return f"{address} is not the address of a server"
    if not address.is_global and not allow_private:
        return f"{address} is a private address{PRIVATE_HINT}"
    return None


def resolve(url: httpx.URL, *, allow_private: bool, timeout: float) -> Target:
    """Resolve the host within `timeout` s, check every address; raise Refused or OSError."""
    port = url.port or (443 if url.scheme == "https" else 80)
    infos = _getaddrinfo(ascii_host(url), port, timeout)
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        # one refused address refuses the name: DNS may hand out any of them later
        reason = refusal(address, allow_private=allow_private)
        if reason:
            raise Refused(_explain(url.host, address, reason))
    return Target(url=url, addresses=tuple(dict.fromkeys(addresses)))


def ascii_host(url: httpx.URL) -> str:
    """The host as DNS, TLS and the Host header must name it: an IDN in its IDNA 2008 form
    (straße.de is xn--strae-oqa.de). `url.host` is decoded for people; handed to the socket or
    ssl module, Python would encode it anew as IDNA 2003 (strasse.de: another domain)."""
    return url.raw_host.decode("ascii")


def _getaddrinfo(host: str, port: int, timeout: float) -> list:
    """Look `host` up, raising LookupTimeout when DNS takes longer than `timeout` seconds."""
    # getaddrinfo takes no timeout and cannot be interrupted, so it runs in a thread of its
    # own that we stop waiting for; a thread per lookup means one hung name delays no other.
    lookups = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-dns")
    future = lookups.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    lookups.shutdown(wait=False)  # the thread ends when getaddrinfo returns, answer or not
    try:
        return future.result(timeout)
    except TimeoutError:
        raise LookupTimeout(f"DNS lookup of {host} timed out after {timeout:g} s") from None


def _explain(host: str, address: Address, reason: str) -> str:
    subject = reason if host == str(address) else f"{host} resolves to {reason}"
    return f"Refused: {subject}."


def check_url(url: str, *, allow_private: bool) -> Target:
    """Check a URL as it is saved: scheme, host, and where its name resolves now."""
    parsed = parse(url)
    try:
        return resolve(parsed, allow_private=allow_private, timeout=SAVE_LOOKUP_TIMEOUT_SECONDS)
    except socket.gaierror as error:  # in words, as a delivery's error says it
        raise Refused(f"{reasons.dns(error, parsed.host)}.") from None
    except (OSError, UnicodeError) as error:
        raise Refused(f"The host name {parsed.host} could not be resolved ({error}).") from None
