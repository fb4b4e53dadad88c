"""Request hardening: cross-site refusal, body limits, security headers on every response.

The JSON API has outside clients (scripts, other systems) that hold no CSRF token, so besides
the token the pages send, it refuses state-changing requests that a browser marks as coming
from another site: browsers always send `Sec-Fetch-Site` or `Origin` on such requests, other
clients send neither. `Origin: null` (a sandboxed frame, a file: page) counts as cross-site.
The pages' forms are refused the same way, on top of their CSRF token.
"""

from urllib.parse import urlsplit

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import Forbidden, UriTooLong, uri_too_long_message

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
}


def init_app(app: Flask) -> None:
    """Limit API addresses (MAX_URL_BYTES) and request bodies (MAX_CONTENT_LENGTH, 1 MiB), and
    add the security headers."""
    app.before_request(_limit_api_address)
    app.before_request(_limit_body)
    app.after_request(_add_headers)


def init_chunked_body_check(app: Flask) -> None:
    """Refuse a body sent in chunks past the limit: after auth.enforce, so that a caller it
    refuses (401, 403) is answered before the body is read, not after a megabyte sent slowly."""
    app.before_request(_limit_chunked_body)


def large_body(view):
    """Let this view receive an upload of up to MAX_UPLOAD_BYTES (plus the form around it)."""
    view.large_body = True
    return view


def _is_upload() -> bool:
    """Whether the request is a file sent to a view that takes one (JSON is never an upload)."""
    view = current_app.view_functions.get(request.endpoint)
    return getattr(view, "large_body", False) and not request.is_json


def _limit_api_address() -> None:
    """Refuse an API address past MAX_URL_BYTES (414 in the API's JSON): the same limit under
    any server, below the one gunicorn keeps, so that a client is told what to do."""
    limit = current_app.config["MAX_URL_BYTES"]
    if request.path.startswith("/api/") and _address_bytes() > limit:
        raise UriTooLong(uri_too_long_message(limit))


def _address_bytes() -> int:
    """The length of the address as sent (path and query, still percent-encoded)."""
    wsgi = request.environ  # the request's, not settings
    raw = wsgi.get("RAW_URI") or wsgi.get("REQUEST_URI")  # gunicorn, Werkzeug; uWSGI, mod_wsgi
    if raw is not None:
        return len(raw)
    return len(wsgi.get("PATH_INFO", "").encode()) + 1 + len(wsgi.get("QUERY_STRING", ""))


def _limit_body() -> None:
    if _is_upload():
        # Room for the multipart envelope around the file; the file itself is checked exactly.
        envelope = current_app.config["MAX_CONTENT_LENGTH"]
        request.max_content_length = current_app.config["MAX_UPLOAD_BYTES"] + envelope


def _limit_chunked_body() -> None:
    # the header first: nearly no request is chunked, so most never look the view up again
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower() and not _is_upload():
        _refuse_long_stream()


def _refuse_long_stream() -> None:
    """Read a body sent in chunks (no Content-Length) now, and refuse it past the limit (413).

    Werkzeug stops reading such a body at the limit without a word, so a longer one would be
    read cut short (a JSON body then seems malformed); one byte more than the limit tells.
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    request.max_content_length = limit + 1
    read = len(request.get_data(cache=True))
    request.max_content_length = limit  # the 413's message names the limit of a JSON body
    if read > limit:
        raise RequestEntityTooLarge()


def _add_headers(response):
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if response.mimetype == "text/html":
        # A page shows the catalog, accounts or tokens as one account sees them: kept by the
        # browser, Back showed it after signing out, to whoever uses the machine next.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def refuse_cross_site_requests() -> None:
    """Raise Forbidden for a state-changing request sent by a page of another site."""
    if request.method in SAFE_METHODS:
        return
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site in ("cross-site", "same-site"):
        raise Forbidden("Cross-site requests are refused. Use the app's own pages or the API.")
    origin = request.headers.get("Origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc != request.host):
        raise Forbidden("Cross-site requests are refused. Use the app's own pages or the API.")
