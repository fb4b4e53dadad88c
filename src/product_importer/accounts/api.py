"""The accounts JSON API: one's own account and tokens; accounts and the audit log (admins)."""

from flask import Blueprint, jsonify, request
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from ..apiutil import json_object, json_object_or_none_sent, refuse_unknown, whole_number
from ..errors import AppError, Invalid
from ..extensions import db, limiter
from ..security import refuse_cross_site_requests
from . import audit, credentials, service, tries
from .auth import requires, token_revoked_meanwhile
from .roles import Role

bp = Blueprint("accounts_api", __name__, url_prefix="/api")
bp.before_request(refuse_cross_site_requests)
TOO_MANY_WRONG = (
    "Too many wrong passwords for this account, here or at sign-in. Wait a minute and try again."
)


def _own_account() -> str:
    # none for a caller not signed in: the limit is skipped, and the request refused (401)
    return tries.account_key(current_user.email) if current_user.is_authenticated else ""


def _audit_refusal(limit) -> None:
    """Record a password change refused for too many wrong current passwords (the first a
    minute per account); the refused try checked no password, so it is not counted."""
    tries.give_back()
    if tries.first_refusal_this_minute(limit):
        audit.record(db.session, "account.password_change_refused", current_user.email, **_how())
        db.session.commit()


def _how() -> dict:
    """An audit entry's details naming the token a request was made with, if any."""
    return {"token": current_user.token_id} if current_user.token_id else {}


@bp.get("/account")
@requires(Role.VIEWER)
def get_account():
    """The signed-in account, with the role this request acts with."""
    return jsonify(
        account=current_user.user.to_dict(), role=current_user.role, via=current_user.via
    )


@bp.post("/account/password")
@limiter.shared_limit(
    tries.TRIES_LIMIT,
    key_func=_own_account,
    scope=tries.ACCOUNT_SCOPE,  # the sign-in's count of the account
    error_message=TOO_MANY_WRONG,
    on_breach=_audit_refusal,
)
@requires(Role.VIEWER)
def change_password():
    """Change one's own password: 204; every other session of the account ends.

    The current password is asked, so it could be guessed here past the sign-in's limit (with
    a token of a lower role, say): wrong ones count as failed sign-ins of the account, and are
    audited as they are.
    """
    user = current_user.user
    guessed = False
    try:
        fields = json_object("passwords")
        guessed = isinstance(fields.get("current_password"), str)
        refuse_unknown(fields, {"current_password", "new_password"})
        service.change_password(
            db.session,
            user,
            current=fields.get("current_password"),
            new=fields.get("new_password"),
            keep=current_user.session_key,  # this session goes on; the others end
        )
    except AppError as error:
        # Only a wrong current password counts: a weak new one, or a malformed body, is not
        # a guess (the person would be told of wrong passwords they never typed).
        if not guessed or "current_password" not in (error.details or {}):
            tries.give_back()
        else:
            audit.record(db.session, "account.password_change_failed", user.email, **_how())
            db.session.commit()
        raise
    tries.give_back()
    audit.record(db.session, "account.password_changed", user.email)
    db.session.commit()
    return "", 204


@bp.get("/tokens")
@requires(Role.VIEWER)
def list_tokens():
    """One's own tokens (every token, for an admin), without their secrets."""
    tokens = service.list_tokens(db.session, current_user.user, acting=current_user.role)
    return jsonify(items=[token.to_dict() for token in tokens])


@bp.post("/tokens")
@requires(Role.VIEWER)
def create_token():
    """Create a token for oneself: 201 with its secret, shown this once.

    Its role is at most the one this request acts with (a token's, which may be below its
    owner's), and that by default; made by a token that expires, it expires no later, and
    revoking that token revokes it.
    """
    fields = json_object("token")
    refuse_unknown(fields, {"name", "role", "expires_days"})
    if not service.hold_account(db.session, current_user.user) or not _still_signed_in():
        return token_revoked_meanwhile()  # a reset or deactivation ended it as this began
    try:
        token, secret = service.create_token(
            db.session,
            current_user.user,
            name=fields.get("name"),
            role=fields.get("role", current_user.role),
            expires_days=fields.get("expires_days"),
            acting=current_user.role,
            expires_by=current_user.expires_at,
            made_by=current_user.token_id,
        )
    except IntegrityError:  # the token asking (`made_by`) was revoked since it was read
        db.session.rollback()
        return token_revoked_meanwhile()
    made_by = {"made_by_token": token.made_by_token_id} if token.made_by_token_id else {}
    details = {"role": token.role, "owner": token.owner.email, **made_by}
    audit.record(db.session, "token.created", token.name, **details)
    db.session.commit()
    return jsonify(token.to_dict() | {"token": secret}), 201


def _still_signed_in() -> bool:
    """Whether the caller's session or token still stands, read again under the account's lock."""
    if current_user.via == "session":
        return service.session_alive(db.session, current_user.id, current_user.session_key)
    return service.token_exists(db.session, current_user.token_id)


@bp.delete("/tokens/<int:token_id>")
@requires(Role.VIEWER)
def revoke_token(token_id: int):
    """Revoke a token, and every token made with it: 204; they stop working at once."""
    token, made_with = service.revoke_token(
        db.session, token_id, current_user.user, acting=current_user.role
    )
    with_it = {"revoked_with": made_with} if made_with else {}
    audit.record(db.session, "token.revoked", token.name, owner=token.owner.email, **with_it)
    db.session.commit()
    return "", 204


@bp.get("/users")
@requires(Role.ADMIN)
def list_users():
    """Every account."""
    return jsonify(items=[user.to_dict() for user in service.list_users(db.session)])


@bp.post("/users")
@requires(Role.ADMIN)
def create_user():
    """Add an account: 201 with a new password, shown this once."""
    fields = json_object("account")
    refuse_unknown(fields, {"email", "role"})
    password = credentials.new_password()
    user = service.create_user(
        db.session, email=fields.get("email"), role=fields.get("role"), password=password
    )
    audit.record(db.session, "user.created", user.email, role=user.role)
    db.session.commit()
    return jsonify(user.to_dict() | {"password": password}), 201


@bp.patch("/users/<int:user_id>")
@requires(Role.ADMIN)
def change_user(user_id: int):
    """Change an account's role, or deactivate it: its sessions end and its tokens are revoked
    at once (the audit entry says how many, `tokens_revoked`)."""
    fields = json_object("change")
    user, revoked = service.change_user(
        db.session, user_id, fields=fields, acting=current_user.user
    )
    counted = {} if revoked is None else {"tokens_revoked": revoked}
    audit.record(db.session, "user.changed", user.email, **fields, **counted)
    db.session.commit()
    return jsonify(user.to_dict())


@bp.post("/users/<int:user_id>/password")
@requires(Role.ADMIN)
def reset_password(user_id: int):
    """Give an account a new password (shown this once); its sessions end, and its
    tokens too with `{"revoke_tokens": true}`."""
    fields = json_object_or_none_sent("reset")
    refuse_unknown(fields, {"revoke_tokens"})
    revoke_tokens = fields.get("revoke_tokens", False)
    if not isinstance(revoke_tokens, bool):
        raise Invalid(
            "revoke_tokens must be true or false.", details={"revoke_tokens": "true or false."}
        )
    user, password, revoked = service.reset_password(
        db.session, user_id, revoke_tokens=revoke_tokens
    )
    counted = {} if revoked is None else {"tokens_revoked": revoked}
    audit.record(db.session, "user.password_reset", user.email, **counted)
    db.session.commit()
    return jsonify(user.to_dict() | {"password": password, "tokens_revoked": revoked or 0})


@bp.get("/audit")
@requires(Role.ADMIN)
def list_audit():
    """The audit log, newest first: `actor` (email), `action` (exact, or `import.`), `page`."""
    found = audit.list_entries(
        db.session,
        actor=request.args.get("actor", ""),
        action=request.args.get("action", ""),
        page=whole_number("page", 1),
    )
    return jsonify(found.to_dict())
