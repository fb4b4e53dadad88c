"""Why an attempt could not reach its receiver, said for the person reading the deliveries.

The operating system's words ("[Errno 111] Connection refused") name a cause, not what it means
for a webhook; the raw text is logged by the sender for whoever digs further.
"""

import errno
import socket
import ssl

import httpx

NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNEXPECTED_EOF_WHILE_READING")
CONNECT = {
    errno.ECONNREFUSED: "Connection refused: nothing listens at {where}",
    errno.ECONNRESET: "Connection reset by {where} before it answered",
    errno.EHOSTUNREACH: "No route to {where}: the host cannot be reached from this server",
    errno.ENETUNREACH: "No route to {where}: its network cannot be reached from this server",
    errno.ETIMEDOUT: "Connecting to {where} timed out",
}
DNS = {
    socket.EAI_NONAME: "DNS lookup failed: the host name {host} does not exist; check the URL",
    socket.EAI_AGAIN: "DNS lookup failed: no answer for {host} for now (the DNS server failed)",
}
if hasattr(socket, "EAI_NODATA"):  # not on every platform
    DNS[socket.EAI_NODATA] = DNS[socket.EAI_NONAME]


def network(error: httpx.HTTPError, url: httpx.URL) -> str:
    """Say why the request to `url` failed, as a person can act on it."""
    where = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    cause = _root(error)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return _untrusted(cause, url.host)
    if isinstance(cause, ssl.SSLError):
        return _tls(cause, where)
    if isinstance(cause, OSError) and cause.errno in CONNECT:
        return CONNECT[cause.errno].format(where=where)
    if isinstance(error, httpx.RemoteProtocolError) and "without sending" in str(error):
        return f"{where} closed the connection without answering"
    if isinstance(error, httpx.ConnectError):
        return f"Could not connect to {where}: {error}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def dns(error: OSError | UnicodeError, host: str) -> str:
    """Say why looking up `host` failed."""
    if isinstance(error, UnicodeError):
        return f"DNS lookup failed: {host} is not a valid host name; check the URL"
    said = DNS.get(error.errno) if isinstance(error, socket.gaierror) else None
    if said:
        return said.format(host=host)
    return f"DNS lookup failed for {host}: {error.strerror or error}"


def _root(error: BaseException) -> BaseException:
    """The first cause down the chain that the operating system or TLS raised."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error


def _untrusted(error: ssl.SSLCertVerificationError, host: str) -> str:
    reason = (error.verify_message or error.reason or "").rstrip(".")
    if "Hostname mismatch" in reason or "IP address mismatch" in reason:
        return f"TLS: the certificate the receiver shows is not for {host} ({reason})"
    if "expired" in reason:
        return f"TLS: the certificate of {host} has expired"
    return (
        f"TLS: the certificate of {host} is not trusted ({reason}); the receiver needs a "
        "certificate from a known authority, or the workers' SSL_CERT_FILE must name the CA "
        "that signed it"
    )


def _tls(error: ssl.SSLError, where: str) -> str:
    if error.reason in NOT_TLS:
        return (
            f"TLS handshake with {where} failed: it does not speak HTTPS there "
            "(should the URL start with http://?)"
        )
    return f"TLS handshake with {where} failed ({error.reason or error})"
