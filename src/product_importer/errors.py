"""Domain exceptions and the one handler that turns them into JSON or HTML responses."""

from typing import Any

from flask import Flask, Response, current_app, jsonify, render_template, request
from flask.globals import request_ctx
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from . import database
from .extensions import request_committed

# Seconds a client is asked to wait (Retry-After) when the database cannot serve it: a restart
# takes a few. (SQLite's busy writer was already waited for 30 s: a longer wait would put the
# command line's next ask past the 60 s it waits.)
UNAVAILABLE_RETRY_SECONDS = 5
UNAVAILABLE_MESSAGES = {
    "away": "The database is not answering (restarting, out of connections, or out of reach). "
    "Nothing was changed: try again in a few seconds.",
    "busy": "The database is busy with another write (an import being applied, say). Nothing "
    "was changed: try again in a few seconds.",
}


class AppError(Exception):
    """An error a caller can act on; the subclass sets the HTTP status and code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code


def said(message: str, details: Any = None) -> str:
    """An error for a terminal: its message, and its details as `field: what` pairs, never as
    Python's spelling of a dict."""
    message = message.removesuffix("; see details.")
    if not message.endswith(("?", "!")):  # a question ends as one, not "?."
        message = message.rstrip(".") + "."
    if isinstance(details, dict):
        return " ".join([message, *(f"{field}: {what}" for field, what in details.items())])
    return f"{message} {details}" if details else message


class BadRequest(AppError):
    status, code = 400, "bad_request"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class StaleCsrfToken(Forbidden):
    """A browser's state change without its page's CSRF token, or with one of a sign-in that
    ended since the page was made (the browser signed in or out in another tab)."""

    def __init__(self, why: str):
        # `details` tells a page to fetch a fresh token (GET /csrf-token) and send it again.
        super().__init__(
            f"The page's CSRF token is missing or stale ({why}). Reload the page and retry.",
            details={"reason": "csrf_token"},
        )


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class PreconditionFailed(AppError):
    status, code = 412, "precondition_failed"


class TooLarge(AppError):
    status, code = 413, "too_large"


class UriTooLong(AppError):
    status, code = 414, "uri_too_long"


class Invalid(AppError):
    status, code = 422, "invalid"


class TooMany(AppError):
    status, code = 429, "too_many"


class InsufficientStorage(AppError):
    status, code = 507, "insufficient_storage"


def wants_json() -> bool:
    """API paths always answer JSON; pages answer HTML unless JSON is asked for."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json"


def error_body(code: str, message: str, details: Any = None) -> dict:
    """The SPEC error shape: {"error": {"code", "message", "details"}}."""
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(status: int, code: str, message: str, details: Any = None):
    """Answer in the SPEC error shape for JSON callers, or with the error page for people."""
    if wants_json():
        return jsonify(error_body(code, message, details)), status
    if request_ctx.url_adapter is None:  # a Host not allowed: the page's links cannot be built
        return Response(message, mimetype="text/plain"), status
    return render_template("error.html", status=status, message=message), status


def _handle_app_error(error: AppError):
    return error_response(error.status, error.code, error.message, error.details)


def handle_csrf_error(error: CSRFError):
    """A page's form sent with a missing or stale CSRF token (CSRFProtect's 400): refused as the
    API refuses one, with 403 and `details.reason`, which a page acts on."""
    return _handle_app_error(StaleCsrfToken(error.description))


def handle_http_error(error: HTTPException):
    """Any HTTP error (a 404, a 405, flask-limiter's 429) in the one response shape."""
    code = (error.name or "error").lower().replace(" ", "_")
    message = error.description or error.name
    if error.code == 413:  # one code for every 413, as TooLarge has it
        code, message = TooLarge.code, _too_large_message()
    if error.code == 429:  # a limit of tries (flask-limiter's) is said as the import quota's
        code = TooMany.code
    if error.code == 500 and (
        unavailable := _unavailable(getattr(error, "original_exception", None))
    ):
        return _unavailable_response(unavailable)
    body, status = error_response(error.code or 500, code, message)
    return body, status, protocol_headers(error)


def _unavailable_response(kind: str):
    """The 503 of a request the database failed for now (`kind`: "away", "busy")."""
    from .accounts.auth import as_nobody  # here: accounts imports this module

    as_nobody()  # the page's navigation would ask the database who is signed in
    body, status = error_response(503, "database_unavailable", UNAVAILABLE_MESSAGES[kind])
    return body, status, {"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)}


def logged_as_unavailable(error: BaseException | None) -> bool:
    """Log in one line an error that will be answered 503 (the database away or busy, nothing
    committed): a traceback per request through an outage says nothing more. False, and
    nothing logged, for any other error."""
    if (kind := _unavailable(error)) is None:
        return False
    cause = str(getattr(error, "orig", None) or error).strip() or type(error).__name__
    current_app.logger.warning("database %s, answered 503: %s", kind, cause.splitlines()[0])
    return True


def _unavailable(error: BaseException | None) -> str | None:
    """Why the database failed the request for now ("away", "busy"), if `error` says so and
    the request changed nothing: the caller may then simply send it again. After a COMMIT was
    sent the change may have been made, so the 500 stands."""
    kind = database.unavailable(error)
    return None if kind is None or request_committed() else kind


def protocol_headers(error: HTTPException) -> list[tuple[str, str]]:
    """The headers an HTTP error keeps in any answer: Allow on a 405, Retry-After on a 429."""
    return [(name, value) for name, value in error.get_headers() if name != "Content-Type"]


def _too_large_message() -> str:
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.max_content_length and request.max_content_length > limit:
        return "The upload is larger than the limit. Split the file or compress it with gzip."
    return f"The request body is larger than {limit:,} bytes. Send less at once."


def uri_too_long_message(limit: int) -> str:
    """Why an address past `limit` bytes is refused, and what to do instead."""
    return (
        f"The address is longer than {limit:,} bytes (its path and query). "
        "Shorten the filters: a few words of the text find the same products."
    )


def register_errorhandlers(app: Flask) -> None:
    """Map domain exceptions and HTTP errors to one response shape."""
    app.register_error_handler(AppError, _handle_app_error)
    app.register_error_handler(CSRFError, handle_csrf_error)  # an HTTPException's 400 otherwise
    app.register_error_handler(HTTPException, handle_http_error)
