"""Who is asking, and may they: sessions and bearer tokens, roles per route, CSRF, 401/403.

Every view declares who may call it, with `@public` or `@requires(role)`; `enforce` runs before
every request and refuses what the view's declaration does not allow. A view that declares
nothing is refused to everyone but admins (and a test walks the URL map, so none does).
"""

import hmac
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from flask import (
    Flask,
    current_app,
    g,
    has_request_context,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)
from flask_login import AnonymousUserMixin, LoginManager, current_user, login_user, logout_user
from flask_wtf.csrf import validate_csrf
from sqlalchemy.orm.exc import StaleDataError
from wtforms import ValidationError

from .. import database
from ..errors import AppError, Forbidden, StaleCsrfToken
from ..extensions import bookkeeping, db
from . import service
from .models import User
from .roles import Role, at_least

log = logging.getLogger(__name__)

PUBLIC = "public"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
BEARER_REALM = 'Bearer realm="product-importer"'  # the 401's WWW-Authenticate
login_manager = LoginManager()


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


@dataclass
class Principal:
    """The account behind a request, with the role it acts with and how it proved it."""

    user: User
    role: Role
    via: str  # "session" or "token"
    session_key: str | None = None  # a session's key, as its cookie holds it
    expires_at: datetime | None = None  # a token's: the tokens it makes expire no later
    token_id: int | None = None  # a token's: revoking it revokes the tokens it makes
    is_authenticated = True
    is_active = True
    is_anonymous = False

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def email(self) -> str:
        return self.user.email

    def get_id(self) -> str:
        # What the session cookie holds: the account and the key of this sign-in.
        return f"{self.user.id}:{self.session_key}"

    def can(self, role: str) -> bool:
        """Whether this principal has every right of `role`."""
        return at_least(self.role, role)


class Anonymous(AnonymousUserMixin):
    role = None

    def can(self, role: str) -> bool:
        return False


def public(view):
    """Let anyone call this view, signed in or not."""
    view.access = PUBLIC
    return view


def requires(role: Role):
    """Let accounts (and tokens) with at least `role` call this view."""

    def mark(view):
        view.access = role
        return view

    return mark


def admin_or_token(setting: str):
    """Let admins call this view, and programs that send the bearer token of `setting` (if set).

    For a metrics scraper: it gets a secret of its own that opens nothing else.
    """

    def mark(view):
        view.access = Role.ADMIN
        view.token_setting = setting
        return view

    return mark


def init_app(app: Flask) -> None:
    """Load principals from sessions and tokens, and check every request's right to run."""
    login_manager.init_app(app)
    login_manager.anonymous_user = Anonymous
    app.before_request(enforce)


def as_nobody() -> None:
    """Take this request as nobody's from here on: who it is cannot be read (the database is
    away), and the error page's navigation would ask again. Flask-Login's own way to set it."""
    login_manager._update_request_context_with_user()


@login_manager.user_loader
def _load_session(user_id: str) -> Principal | None:
    account_id, _, key = user_id.partition(":")
    user = db.session.get(User, int(account_id)) if account_id.isdigit() else None
    if user is None or not user.active or not service.session_alive(db.session, user.id, key):
        return None  # signed out, deactivated, or its password changed since: sign in again
    if not _note_seen():  # last_seen_at, at most once a minute
        return None
    return Principal(user, Role(user.role), "session", key)


@login_manager.request_loader
def _load_token(req) -> Principal | None:
    scheme, _, secret = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret:
        return None
    token = service.resolve_token(db.session, secret.strip())
    if token is None:
        g.bad_token = True
        return None
    principal = Principal(
        token.owner,
        token.acting_role,
        "token",
        expires_at=token.expires_at,
        token_id=token.id,
    )
    # its last_used_at moved on: keep that even when the request only reads
    if db.session.dirty and not _note_seen():
        g.bad_token = True
        return None
    return principal


def _note_seen() -> bool:
    """Commit when a session or token was last seen, unless an import holds SQLite's one
    writer: the request (a Cancel, say) would wait for its merge or plan to end just to say
    so. It is said by a later request then.

    False when the row is gone since it was read: the session ended, or the token was revoked
    (its account deactivated, say) by a request served meanwhile. The caller is nobody then.
    """
    if db.session.dirty and _writer_taken():
        db.session.rollback()
        return True
    try:
        with bookkeeping():
            db.session.commit()
    except StaleDataError:  # the UPDATE of last_seen_at or last_used_at found no row
        db.session.rollback()
        return False
    return True


def _writer_taken() -> bool:
    """Whether an import holds SQLite's one writer, or may take it at any moment: a run of
    this process that merges, plans or undoes (a plan holds it from its first write of the
    change record to its end, without the apply lock), or a merge elsewhere (the apply lock)."""
    from ..imports import runner  # here: the imports' modules import this one

    seam = database.of(db.session)
    return seam.one_writer and (runner.may_hold_writer() or seam.applying(db.session))


def access_of(endpoint: str | None) -> str | None:
    """What the view of `endpoint` declared: PUBLIC, a role, or None (nothing)."""
    if endpoint == "static":
        return PUBLIC
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "access", None)


def enforce():
    """Refuse a request its caller may not make: 401 (who are you?) or 403 (not you)."""
    if request.endpoint is None:
        return None  # no such route: the 404 follows
    needed = access_of(request.endpoint)
    if needed == PUBLIC or _holds_setting_token(request.endpoint):
        return None
    if needed is None:
        log.error("view %s declares no access rule; only admins may call it", request.endpoint)
        needed = Role.ADMIN
    if not current_user.is_authenticated:
        return _unauthorized()
    if not current_user.can(needed):
        raise Forbidden(
            _role_too_low(needed),
            details={"required_role": str(needed), "role": str(current_user.role)},
        )
    if (
        current_user.via == "session"
        and request.method not in SAFE_METHODS
        and request.path.startswith("/api/")  # pages' forms: CSRFProtect checks their field
    ):
        _require_csrf_header()
    return None


def _role_too_low(needed: Role) -> str:
    """Why the caller may not: the role of its token, when the token acts below an account that
    may (a token made with a lower role); else its account's, which only an admin raises."""
    account_role = Role(current_user.user.role)
    if current_user.via == "token" and at_least(account_role, needed):
        return (
            f"This needs the {needed} role; this token acts as {current_user.role} (its account "
            f"{current_user.email} is {account_role}). Use a token made with the {needed} role."
        )
    return (
        f"This needs the {needed} role; your account ({current_user.email}) is "
        f"{account_role}. Ask an admin."
    )


def allowance() -> Callable[[], bool]:
    """A check of whether the caller may still make this request, for a response that lasts
    beyond its view (a progress stream): signing out, a revoked token or a deactivated account
    end it too. Made in the view: the principal's rows leave with the view's database session."""
    needed = access_of(request.endpoint)
    if current_user.via == "session":
        cookie = current_user.get_id()

        def load() -> Principal | None:
            return _load_session(cookie)
    else:
        asked = request._get_current_object()  # the request itself: its Authorization header

        def load() -> Principal | None:
            return _load_token(asked)

    def allowed() -> bool:
        fresh = load()
        return fresh is not None and fresh.can(needed)

    return allowed


def _holds_setting_token(endpoint: str) -> bool:
    """Whether the request sends the token of the setting its view accepts (`admin_or_token`)."""
    setting = getattr(current_app.view_functions.get(endpoint), "token_setting", None)
    expected = current_app.config.get(setting) if setting else None
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(secret.strip().encode(), expected.encode())


def _require_csrf_header() -> None:
    """A cookie rides along on any request a browser makes: ask for the page's CSRF token too.

    Pages' forms are checked by CSRFProtect; the JSON API reads the token from its header only,
    so an upload's body is not parsed before the view has checked quotas and disk space.
    """
    try:
        validate_csrf(request.headers.get("X-CSRFToken"))
    except ValidationError as error:
        raise StaleCsrfToken(str(error)) from None


def token_revoked_meanwhile():
    """The answer to a request whose token or sign-in was ended while it was served: the 401
    it would have had a moment later."""
    if current_user.is_authenticated and current_user.via == "session":
        g.ended_session = True  # a browser: its sign-in ended, there is no token to blame
    else:
        g.bad_token = True
    return _unauthorized()


def _unauthorized():
    if request.path.startswith("/api/") or request.path == "/metrics":  # programs: no redirect
        return jsonify(_unauthorized_body()), 401, {"WWW-Authenticate": BEARER_REALM}
    login = url_for("accounts.login_page")
    if request.method not in SAFE_METHODS:
        return redirect(login)  # a form posted while signed out cannot be sent again after
    target = request.full_path.rstrip("?") if request.query_string else request.path
    return redirect(login + "?" + urlencode({"next": target}))


def _unauthorized_body() -> dict:
    """The API's 401: what ended the request's proof, and what to do."""
    if g.get("bad_token"):
        message = "That token is not valid (unknown, expired, revoked, or its account deactivated)."
    elif g.get("ended_session"):
        message = (
            "Your sign-in ended as this was sent (signed out, password reset, or account "
            "deactivated): sign in again."
        )
    else:
        message = "Sign in, or send a personal access token: Authorization: Bearer pit_..."
    return {"error": {"code": Unauthorized.code, "message": message, "details": None}}


def sign_in(user: User) -> None:
    """Start a sign-in session of `user` in this browser (the caller commits), ending the one
    it held: signed in over it, that session stayed open on the server, and a copy of its
    cookie kept working after the browser signed out."""
    sign_out()
    login_user(Principal(user, Role(user.role), "session", service.open_session(db.session, user)))


def sign_out() -> None:
    """End this browser's sign-in session, for good: a copied cookie stops working too."""
    if current_user.is_authenticated and current_user.session_key:
        service.close_session(db.session, current_user.session_key)
    logout_user()
    _forget_csrf_secret()


def _forget_csrf_secret() -> None:
    """Drop the session's CSRF secret: a token a page read before the sign-in (or by the one
    signed out) must not be good for the next account. The next page makes a new one."""
    field = current_app.config["WTF_CSRF_FIELD_NAME"]
    session.pop(field, None)
    g.pop(field, None)


def current_actor() -> dict | None:
    """`{"id", "email"}` of the account making this request; None for the system."""
    if has_request_context() and current_user.is_authenticated:
        return {"id": current_user.id, "email": current_user.email}
    return None


def client_address() -> str:
    """The client's address (as the trusted proxies, if any, report it)."""
    return request.remote_addr or "unknown"


def client_network() -> str:
    """Where a client signs in from, for the limit of failed tries: its IPv4 address, or its
    IPv6 /64 network, which one household or server holds whole (each of its 2**64 addresses
    would get tries of its own)."""
    address = client_address()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped:  # ::ffff:192.0.2.1 is the IPv4 client it names
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))
