"""Cross-site request forgery protection for the JSON API.

The API has outside clients (scripts, other systems) that hold no CSRF token, so instead of
a token it refuses state-changing requests that a browser marks as coming from another site:
browsers always send `Sec-Fetch-Site` or `Origin` on such requests, other clients send neither.
"""

from urllib.parse import urlsplit

from flask import request

from .errors import Forbidden

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def refuse_cross_site_requests() -> None:
    """Raise Forbidden for a state-changing request sent by a page of another site."""
    if request.method in SAFE_METHODS:
        return
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site in ("cross-site", "same-site"):
        raise Forbidden("Cross-site requests are refused. Use the app's own pages or the API.")
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise Forbidden("Cross-site requests are refused. Use the app's own pages or the API.")
