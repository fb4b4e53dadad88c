"""The CAs a server's certificate is checked against, for the app's own outgoing requests: the
command line's `import --url` and webhook deliveries."""

import os
import ssl

import certifi

CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")  # the first one set is taken


def trusted_cas() -> tuple[str, str] | None:
    """(variable, path) of the CAs a server's certificate is checked against, where one is
    named: SSL_CERT_FILE (OpenSSL's, which httpx reads) or REQUESTS_CA_BUNDLE (requests').

    The command talks through both libraries (its own requests, and tuspy's upload): each would
    read only its own variable, so a server whose CA one names passed the first request and
    failed the upload, or the other way round. Else None: both check against certifi's CAs.
    """
    named = [(name, os.environ.get(name, "").strip()) for name in CA_VARIABLES]
    return next(((name, path) for name, path in named if path), None)


def context(path: str, *, beside_public: bool = False) -> ssl.SSLContext:
    """A TLS context trusting the CAs of a PEM file, or of a folder of them (as requests
    takes), and certifi's too (those of the browsers) if `beside_public`: a worker sends to
    public receivers and internal ones alike. Raises OSError or ssl.SSLError where `path`
    holds none that can be read."""
    named = {"capath": path} if os.path.isdir(path) else {"cafile": path}
    if not beside_public:
        return ssl.create_default_context(**named)
    trusting = ssl.create_default_context(cafile=certifi.where())
    trusting.load_verify_locations(**named)
    return trusting
