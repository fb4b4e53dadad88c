"""Account pages: sign in and out, first-run setup, one's account, accounts and audit (admins)."""

from urllib.parse import urlsplit

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError, generate_csrf
from werkzeug.exceptions import NotFound

from ..errors import (
    AppError,
    Forbidden,
    handle_csrf_error,
    handle_http_error,
    protocol_headers,
    wants_json,
)
from ..extensions import db, limiter
from ..security import refuse_cross_site_requests
from . import audit, service, tries
from .auth import client_network, public, requires, sign_in, sign_out
from .roles import ROLES, Role

bp = Blueprint("accounts", __name__, template_folder="templates")
# The audit details the server fills with a moment (webhook.recovered's `since`), shown in the
# reader's time zone; the others quote what people sent (a file name) as written.
MOMENT_DETAILS = frozenset({"since"})
# The only pages that take forms (sign in, sign out, setup): a page of another site, or of
# none (`Origin: null`), posts none of them, whatever token it holds.
bp.before_request(refuse_cross_site_requests)
bp.add_app_template_filter(audit.readable_detail, "readable_detail")

SIGN_IN_LIMIT = tries.TRIES_LIMIT
TOO_MANY = "Too many failed sign-ins from here or for this account. Wait a minute and try again."
AUDIT_FILTERS = ("actor", "action")  # the audit page's
SETUP_LINK_DEAD = (
    "This setup link is not valid: an account exists already, or the link was "
    "replaced when the server restarted. Sign in, or use the newest link."
)
# A form's CSRF token goes stale when its browser signs in or out in another tab (each sign-in
# has a token of its own): what each form says then, shown again with a fresh token.
SIGN_IN_FORM_STALE = (
    "The sign-in form had gone out of date (this browser signed in or out in another tab since "
    "it opened), so no one was signed in. Type the password again and sign in."
)
SETUP_FORM_STALE = (
    "This form had gone out of date (this browser's session changed since it opened), so no "
    "account was made. Type the password in both fields again."
)


def _account_key() -> str:
    # as the account's email is found: one account, one count, in any case or Unicode form
    return tries.account_key(request.form.get("email") or "")


def _audit_refusal(per: str):
    """Return an on_breach callback that records a sign-in refused for too many failures, the
    first a minute per address (or account)."""

    def record(limit) -> None:
        # Refused, the try checks no password: it counts against no limit. Counted against the
        # account it names while its address was over the limit, one client could lock every
        # account out by naming each in turn.
        tries.give_back()
        if tries.first_refusal_this_minute(limit):
            account, details = _typed_account(request.form.get("email", ""))
            limit_said = f"{SIGN_IN_LIMIT} per {per}"
            audit.record(db.session, "auth.sign_in_refused", account, limit=limit_said, **details)
            db.session.commit()

    return record


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    SIGN_IN_LIMIT,
    key_func=client_network,
    methods=["POST"],
    scope="sign-in-address",
    error_message=TOO_MANY,
    on_breach=_audit_refusal("address"),
)
@limiter.shared_limit(  # shared with the password change's current password
    SIGN_IN_LIMIT,
    key_func=_account_key,
    methods=["POST"],
    scope=tries.ACCOUNT_SCOPE,
    error_message=TOO_MANY,
    on_breach=_audit_refusal("account"),
)
@public
def login_page():
    """Sign in with email and password; failed tries are limited per account and address."""
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(target)
        return _login_page(next=target, email="", error=None)
    email = request.form.get("email", "")
    user = service.authenticate(db.session, email, request.form.get("password", ""))
    if user is None:
        account, details = _typed_account(email)
        audit.record(db.session, "auth.sign_in_failed", account, **details)
        db.session.commit()
        error = "That email and password do not match an active account."
        return _login_page(next=target, email=email, error=error), 401
    sign_in(user)
    tries.give_back()
    audit.record(db.session, "auth.signed_in", user.email)
    db.session.commit()
    return redirect(target)


@bp.errorhandler(429)
def sign_in_refused(error):
    """Too many failed sign-ins: the sign-in form again, with the email typed and what to do,
    rather than an error page in place of the form."""
    if request.endpoint != "accounts.login_page":
        return handle_http_error(error)
    target = _safe_next(request.values.get("next"))
    email = request.form.get("email", "")
    return _login_page(next=target, email=email, error=TOO_MANY), 429, protocol_headers(error)


def _typed_account(email: str) -> tuple[str | None, dict]:
    """The audit entry's target for a sign-in tried with `email`: as typed when it names an
    account; else none, and the details say so. Text that names no account may be a password
    typed in the wrong box, and the log must not keep it for every admin to read."""
    typed = email.strip()
    if not typed:
        return None, {}
    if service.find_user(db.session, typed) is None:
        return None, {"account": "none has the email typed"}
    return typed[:254], {}


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this site only, never another site.

    Browsers drop tabs and line breaks from an address and read a backslash as a slash, so
    `/<tab>/evil.example` would lead away: any such character refuses the value.
    """
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and value.isprintable()
        and not any(char.isspace() for char in value)
    ):
        return value
    return url_for("imports.upload_page")


def _login_page(**fields) -> str:
    """The sign-in page; on a fresh install it points to the setup link, not to an admin."""
    first_run = not service.any_account(db.session)
    return render_template("accounts/login.html", first_run=first_run, **fields)


@bp.errorhandler(CSRFError)
def form_gone_stale(error: CSRFError):
    """A sign-in, sign-out or setup form sent with a stale CSRF token: the form again, with a
    fresh token and what to do, rather than an error page. Nothing was done: CSRFProtect
    refuses the request before its view runs."""
    show_again = STALE_FORMS.get(request.endpoint)
    if show_again is None or wants_json():
        return handle_csrf_error(error)  # the API's 403, which a page's script acts on
    return show_again()


def _sign_in_again():
    """The sign-in form again, with the email typed; or on to `next` when this browser signed
    in as that very account meanwhile, as the sign-in page leads a signed-in browser on."""
    target = _safe_next(request.form.get("next"))
    email = request.form.get("email", "")
    if current_user.is_authenticated:
        account = service.find_user(db.session, email)
        if account is not None and account.id == current_user.id:
            return redirect(target)
    return _login_page(next=target, email=email, error=SIGN_IN_FORM_STALE), 403


def _sign_out_again():
    """A page to sign out from once more. The sign-in the button's page was made for has ended,
    and this browser signed in again in another tab: that sign-in is not ended unasked. (Signed
    out alone, the browser is led to sign in before its token is checked.)"""
    return render_template("accounts/sign_out_again.html", back=_page_it_came_from()), 403


def _set_up_again():
    """The setup form again, with the email typed, while its link may still make the admin."""
    secret = request.form.get("token")
    if not service.setup_token_valid(db.session, secret):
        return handle_http_error(NotFound(SETUP_LINK_DEAD))
    email = request.form.get("email", "")
    problems = {"password": SETUP_FORM_STALE}
    return render_template("accounts/setup.html", token=secret, email=email, problems=problems), 403


def _page_it_came_from() -> str:
    """The path of the page whose form was sent (its Referer, of this site only), or the
    start page."""
    referer = urlsplit(request.headers.get("Referer", ""))
    if referer.netloc != request.host:
        return url_for("imports.upload_page")
    return _safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))


STALE_FORMS = {
    "accounts.login_page": _sign_in_again,
    "accounts.logout": _sign_out_again,
    "accounts.setup_page": _set_up_again,
}


@bp.get("/csrf-token")
@requires(Role.VIEWER)
def csrf_token():
    """This browser session's CSRF token, for a page whose token went stale.

    Signing in again in another tab starts a new session with a new token: the open page fetches
    it and sends its request again, instead of being reloaded and losing what was typed. Another
    site cannot read the answer (same-origin policy).
    """
    return jsonify(csrf_token=generate_csrf()), 200, {"Cache-Control": "no-store"}


@bp.post("/logout")
@requires(Role.VIEWER)
def logout():
    """Sign out of this session."""
    audit.record(db.session, "auth.signed_out", current_user.email)
    sign_out()
    db.session.commit()
    return redirect(url_for("accounts.login_page"))


@bp.route("/setup", methods=["GET", "POST"])
@public
def setup_page():
    """Create the first admin through the one-time link `serve` printed."""
    secret = request.values.get("token")
    if not service.setup_token_valid(db.session, secret):
        abort(404, SETUP_LINK_DEAD)
    if request.method == "GET":
        return render_template("accounts/setup.html", token=secret, email="", problems={})
    email = request.form.get("email", "")
    password = request.form.get("password", "")
    try:
        if password != request.form.get("confirm", ""):
            # said at the first of the two fields, where the page opens: both come back empty,
            # and said at the second, it sent the person typing there alone, refused again
            differ = "The two passwords differed: type the password in both fields."
            raise AppError("The two passwords differ.", details={"password": differ})
        user = service.create_first_admin(db.session, secret=secret, email=email, password=password)
    except Forbidden:  # another form sent through the link made the admin meanwhile
        abort(404, SETUP_LINK_DEAD)
    except AppError as error:
        db.session.rollback()
        problems = error.details or {"email": error.message}
        return render_template(
            "accounts/setup.html", token=secret, email=email, problems=problems
        ), 422
    sign_in(user)
    audit.record(db.session, "user.created", user.email, role=user.role)
    audit.record(db.session, "auth.signed_in", user.email)  # every sign-in is in the log
    db.session.commit()
    return redirect(url_for("imports.upload_page"))


@bp.get("/account")
@requires(Role.VIEWER)
def account_page():
    """One's password and personal access tokens."""
    return render_template("accounts/account.html", roles=ROLES)


@bp.get("/users")
@requires(Role.ADMIN)
def users_page():
    """Accounts: add, change role, deactivate, reset a password."""
    return render_template("accounts/users.html", roles=ROLES)


@bp.get("/audit")
@requires(Role.ADMIN)
def audit_page():
    """The audit log, newest first, filtered by actor and action."""
    # without control characters (a NUL in a link), which the API refuses: the page shows what
    # it searched for in its form, rather than an error page in place of the log
    actor, action = (
        audit.CONTROL.sub("", request.args.get(name, "")).strip() for name in AUDIT_FILTERS
    )
    asked = request.args.get("page", "").strip()
    wanted = _page_wanted(asked)
    found = audit.list_entries(db.session, actor=actor, action=action, page=wanted)
    if wanted > found.pages:  # an old link, or the log filtered since: the last page, not none
        found = audit.list_entries(db.session, actor=actor, action=action, page=found.pages)
    return render_template(
        "accounts/audit.html",
        found=found.to_dict(),
        actor=actor,
        action=action,
        asked=asked if asked.lstrip("0") != str(found.page) else None,  # said when not shown
        nearest="first" if wanted == 1 else "last",
        moment_details=MOMENT_DETAILS,
    )


def _page_wanted(asked: str) -> int:
    """The page to show for the `page` a person typed or kept in a link, never an error:
    the first page for none, 0, a negative number or words; at most the API's last one."""
    if not (asked.isascii() and asked.isdigit()):  # "-3", "first", "": before the first
        return 1
    return max(1, min(int(asked.lstrip("0")[:7] or 0), audit.MAX_PAGE))  # 7 digits: past it
