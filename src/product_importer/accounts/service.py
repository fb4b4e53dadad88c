"""Accounts and tokens: create, find, change role, deactivate, sign in, first admin."""

import re
import unicodedata
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import database
from ..apidoc import LINE
from ..errors import Conflict, Forbidden, Invalid, NotFound
from ..timeutil import aware, iso, utcnow
from . import credentials
from .models import SetupToken, SignInSession, Token, User
from .roles import ROLES, Role, at_least

# Something@something, without spaces or control characters, between spaces that are trimmed
# (pasted with the address); the same in every regex dialect, so the OpenAPI document can
# state it exactly.
EMAIL = re.compile(r"^ *[^@\x00-\x20\x7f-\x9f]+@[^@\x00-\x20\x7f-\x9f]+ *$")
TOKEN_NAME = re.compile(LINE)
MAX_TOKEN_DAYS = 3650
SETUP_USED = "This setup link is no longer valid: an account exists already. Sign in."


# --- accounts -------------------------------------------------------------------------------


def any_account(session: Session) -> bool:
    """Whether at least one account exists (the setup link then stops working)."""
    return session.scalar(select(User.id).limit(1)) is not None


def get_user(session: Session, user_id: int) -> User:
    """Return the account, or raise NotFound."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"Account {user_id} does not exist.")
    return user


def normal_email(email: str) -> str:
    """An email as accounts keep it: trimmed, in Unicode NFC (`jörg` pasted from macOS is often
    `o` and a combining mark: the same address, typed, is one character)."""
    return unicodedata.normalize("NFC", email.strip())


def find_user(session: Session, email: str) -> User | None:
    """The account with this email, in any case or Unicode form."""
    if "\x00" in email:  # PostgreSQL's text holds no NUL: no account's email has one
        return None
    # Both lowered by the database: Python lowers some letters otherwise (a final 'Σ', 'İ').
    query = select(User).where(func.lower(User.email) == func.lower(normal_email(email)))
    return session.scalars(query).first()


def list_users(session: Session) -> list[User]:
    """Every account, oldest first."""
    return list(session.scalars(select(User).order_by(User.id)))


def create_user(session: Session, *, email, role, password: str | None = None) -> User:
    """Create an account; raise Invalid naming bad fields, Conflict when the email is taken."""
    problems = {}
    if isinstance(email, str):  # measured as kept: NFC writes a few letters longer
        email = normal_email(email)
    if not isinstance(email, str) or not EMAIL.match(email) or len(email) > 254:
        problems["email"] = "Give an email address, such as ana@example.com."
    if role not in ROLES:
        problems["role"] = f"One of {', '.join(ROLES)}."
    if password is not None and (problem := credentials.password_problem(password)):
        problems["password"] = problem
    if problems:
        raise Invalid("The account is not valid; see details.", details=problems)
    if find_user(session, email) is not None:
        raise Conflict(
            f"An account with email {email!r} already exists.",
            details={"email": "Already taken."},
        )
    user = User(
        email=email,
        role=role,
        password_hash=credentials.hash_password(password or credentials.new_password()),
    )
    session.add(user)
    try:
        with session.begin_nested():  # an account of the same email added since the look
            session.flush()
    except IntegrityError:
        raise Conflict(
            f"An account with email {email!r} already exists.",
            details={"email": "Already taken."},
        ) from None
    return user


def change_user(
    session: Session, user_id: int, *, fields: dict, acting: User
) -> tuple[User, int | None]:
    """Change an account's role or deactivate it; an admin cannot demote or lock out itself.

    Deactivating ends the account's sessions and revokes (deletes) its tokens: reactivated, it
    signs in again and makes new tokens, and a token that leaked stays dead. Returns the
    account and how many tokens were revoked (None when no token was to be revoked).
    """
    user = get_user(session, user_id)
    unknown = set(fields) - {"role", "active"}
    if unknown:
        raise Invalid(
            "Only role and active can be changed.", details={n: "Unknown field." for n in unknown}
        )
    if "role" in fields and fields["role"] not in ROLES:
        raise Invalid("Unknown role.", details={"role": f"One of {', '.join(ROLES)}."})
    if "active" in fields and not isinstance(fields["active"], bool):
        raise Invalid("active must be true or false.", details={"active": "true or false."})
    locks_out = fields.get("active") is False or fields.get("role", Role.ADMIN) != Role.ADMIN
    if user.id == acting.id and locks_out:
        raise Conflict("You cannot demote or deactivate your own account; ask another admin.")
    if locks_out:
        _keep_an_admin(session, user)
    if "active" in fields:
        hold_account(session, user)  # after the admins': all lock those first, in id order
    revoked = None
    if fields.get("active") is False:
        close_sessions(session, user)
        revoked = revoke_tokens_of(session, user)
    elif fields.get("active") is True and not user.active:
        # Deactivated before tokens were revoked with the account, it may hold some still:
        # they must not come back to life with it.
        revoked = revoke_tokens_of(session, user) or None
    for name, value in fields.items():
        setattr(user, name, value)
    session.flush()
    return user, revoked


def _keep_an_admin(session: Session, user: User) -> None:
    """Refuse to demote or deactivate the last active admin.

    The admins' rows stay locked until the commit (all of them, in id order): admins demoting
    each other at once (two, or three in a ring) are served one after the other, and each finds
    the changes before it.
    """
    admin = (User.role == Role.ADMIN, User.active.is_(True))
    if database.of(session).locked_ids(session, User, *admin) == [user.id]:
        raise Conflict(
            f"An admin must remain: {user.email} is the only active admin now. "
            "Make another account an admin first."
        )
    session.refresh(user)  # as the change before this one left it


def change_password(session: Session, user: User, *, current, new, keep: str | None) -> None:
    """Change one's own password (the current one is asked again); sessions but `keep` end."""
    matches = isinstance(current, str) and credentials.password_matches(user.password_hash, current)
    if not matches:
        raise Invalid(
            "The current password is not right.", details={"current_password": "Not right."}
        )
    if problem := credentials.password_problem(new):
        raise Invalid("Choose another password.", details={"new_password": problem})
    user.password_hash = credentials.hash_password(new)
    close_sessions(session, user, keep=keep)
    session.flush()


def reset_password(
    session: Session, user_id: int, *, revoke_tokens: bool = False
) -> tuple[User, str, int | None]:
    """Give an account a new random password; its sessions end, and its tokens too when
    `revoke_tokens` (a password that may have been stolen: whoever signed in with it may have
    made one). Returns the account, the password and how many tokens were revoked (None when
    not asked)."""
    user = get_user(session, user_id)
    hold_account(session, user)
    password = credentials.new_password()
    user.password_hash = credentials.hash_password(password)
    close_sessions(session, user)
    revoked = revoke_tokens_of(session, user) if revoke_tokens else None
    session.flush()
    return user, password, revoked


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active account these credentials sign in to, or None."""
    user = find_user(session, email or "")
    hashed = user.password_hash if user is not None and user.active else None
    if not credentials.password_matches(hashed, password or ""):
        return None
    return user


# --- sign-in sessions ------------------------------------------------------------------------


def open_session(session: Session, user: User) -> str:
    """Record a new sign-in of `user`; return the key its cookie will hold."""
    user.last_sign_in_at = utcnow()  # the sign-in page's, and the setup link's for the first admin
    key = credentials.new_token(credentials.SESSION_PREFIX)
    session.add(SignInSession(user_id=user.id, key_hash=credentials.token_hash(key)))
    session.flush()
    return key


def session_alive(session: Session, user_id: int, key: str) -> bool:
    """Whether this sign-in still stands (not signed out, nor ended by its account's admin)."""
    found = session.scalars(
        select(SignInSession).where(
            SignInSession.key_hash == credentials.token_hash(key), SignInSession.user_id == user_id
        )
    ).first()
    if found is None:
        return False
    now = utcnow()
    if now - aware(found.last_seen_at) > timedelta(minutes=1):
        found.last_seen_at = now  # once a minute at most
    return True


def close_session(session: Session, key: str) -> None:
    """Sign out: the cookie holding this key stops working, even if someone copied it."""
    session.execute(
        delete(SignInSession).where(SignInSession.key_hash == credentials.token_hash(key))
    )


def close_sessions(session: Session, user: User, *, keep: str | None = None) -> None:
    """End every sign-in of `user` (but the one holding `keep`)."""
    query = delete(SignInSession).where(SignInSession.user_id == user.id)
    if keep:
        query = query.where(SignInSession.key_hash != credentials.token_hash(keep))
    session.execute(query)


# --- personal access tokens -------------------------------------------------------------------


def create_token(
    session: Session,
    owner: User,
    *,
    name,
    role=None,
    expires_days=None,
    acting=None,
    expires_by: datetime | None = None,
    made_by: int | None = None,
) -> tuple[Token, str]:
    """Make a token for `owner` with `role` (at most the owner's, and at most `acting`, the
    role of the request asking for it), expiring by `expires_by` (when the token asking for it
    does); return it and its secret. `made_by` is the id of the token asking for it, if one
    does: revoking that token revokes this one. Refused (Conflict) when the owner is
    deactivated, read under its row lock: a deactivation, or a reset that revokes the account's
    tokens, then either comes first and is seen, or waits for this one and revokes it.

    The secret is never shown again: only its hash is kept.
    """
    problems = {}
    if not isinstance(name, str) or not TOKEN_NAME.match(name) or len(name) > 100:
        problems["name"] = "Give the token a name: one line of at most 100 characters."
    if role not in ROLES:
        problems["role"] = f"One of {', '.join(ROLES)}."
    elif not at_least(owner.role, role):
        problems["role"] = f"At most {owner.role}, the role of {owner.email}."
    elif acting is not None and not at_least(acting, role):
        # A token of a lower role than its owner's must not make itself a stronger one.
        problems["role"] = f"At most {acting}, the role this request acts with."
    expires, problem = _token_expiry(expires_days, expires_by)
    if problem:
        problems["expires_days"] = problem
    if problems:
        raise Invalid("The token is not valid; see details.", details=problems)
    if not hold_account(session, owner):
        raise Conflict(
            f"The account {owner.email} is deactivated: an admin reactivates it on the Users page."
        )
    secret = credentials.new_token()
    token = Token(
        owner=owner,
        name=name.strip(),
        role=role,
        token_hash=credentials.token_hash(secret),
        prefix=secret[:12],
        expires_at=expires,
        made_by_token_id=made_by,
    )
    session.add(token)
    session.flush()
    return token, secret


def _token_expiry(expires_days, expires_by: datetime | None) -> tuple[datetime | None, str | None]:
    """When a new token expires, or why `expires_days` is refused.

    A token made by a token that expires expires no later (by default, with it): else a stolen
    token, or a script's, would make itself one that lasts for good.
    """
    if expires_days is not None and (
        isinstance(expires_days, bool)
        or not isinstance(expires_days, int)
        or not 1 <= expires_days <= MAX_TOKEN_DAYS
    ):
        return None, f"A whole number of days from 1 to {MAX_TOKEN_DAYS}, or none."
    if expires_days is None:
        return expires_by, None
    expires = utcnow() + timedelta(days=expires_days)
    if expires_by is not None and expires > aware(expires_by):
        return None, (
            f"At most until {iso(expires_by)}, when the token this request acts with expires; "
            "or none, to expire with it."
        )
    return expires, None


def list_tokens(session: Session, viewer: User, *, acting: str) -> list[Token]:
    """The viewer's own tokens; every token when acting as an admin (not with a lesser token)."""
    query = select(Token).order_by(Token.id)
    if acting != Role.ADMIN:
        query = query.where(Token.user_id == viewer.id)
    return list(session.scalars(query))


def revoke_token(
    session: Session, token_id: int, viewer: User, *, acting: str
) -> tuple[Token, list[int]]:
    """Delete a token: one's own, or any when acting as an admin; and with it every token made
    with it, and with those, and so on. Returns it and the ids of those.

    The database deletes them (ON DELETE CASCADE), also one made with them while this runs,
    which the ids returned may then miss.
    """
    token = session.get(Token, token_id)
    if token is None or (token.user_id != viewer.id and acting != Role.ADMIN):
        raise NotFound(f"Token {token_id} does not exist.")
    made_with = tokens_made_with(session, token.id)
    session.delete(token)
    session.flush()
    return token, made_with


def tokens_made_with(session: Session, token_id: int) -> list[int]:
    """The ids of the tokens made with this token, and with those, and so on; oldest first."""
    tree = select(Token.id).where(Token.made_by_token_id == token_id).cte(recursive=True)
    tree = tree.union_all(select(Token.id).where(Token.made_by_token_id == tree.c.id))
    return list(session.scalars(select(tree.c.id).order_by(tree.c.id)))


def hold_account(session: Session, user: User) -> bool:
    """Lock the account's row until the commit; tell whether it is still active.

    A deactivation, or a reset that revokes tokens, holds it while it ends sessions and
    revokes tokens; a token made meanwhile holds it too, and so comes after them and sees
    that its caller's session or token has ended, or before them and is revoked with them."""
    active = database.of(session).locked_ids(session, User, User.id == user.id, User.active)
    return active == [user.id]


def revoke_tokens_of(session: Session, user: User) -> int:
    """Delete every token of `user`; return how many there were."""
    # Counted first: SQLite counts no row its cascade deleted (a token made with another).
    held = session.scalar(select(func.count()).where(Token.user_id == user.id))
    session.execute(delete(Token).where(Token.user_id == user.id))
    return held


def token_exists(session: Session, token_id: int) -> bool:
    """Whether the token is still there (not revoked)."""
    return session.scalar(select(Token.id).where(Token.id == token_id)) is not None


def resolve_token(session: Session, secret: str) -> Token | None:
    """The token of a bearer secret, while it opens its active account; else None."""
    if not secret.startswith(credentials.TOKEN_PREFIX):
        return None
    token = session.scalars(
        select(Token).where(Token.token_hash == credentials.token_hash(secret))
    ).first()
    if token is None or not token.owner.active:
        return None
    if token.expires_at is not None and aware(token.expires_at) <= utcnow():
        return None
    now = utcnow()
    if token.last_used_at is None or now - aware(token.last_used_at) > timedelta(minutes=1):
        token.last_used_at = now  # once a minute at most: a busy script writes little
    return token


# --- first run --------------------------------------------------------------------------------


def new_setup_link_token(session: Session) -> str | None:
    """While no account exists, replace the setup token and return it; else None."""
    if any_account(session):
        return None
    secret = credentials.new_token(credentials.SETUP_PREFIX)
    session.execute(delete(SetupToken))
    session.add(SetupToken(token_hash=credentials.token_hash(secret)))
    session.flush()
    return secret


def setup_token_valid(session: Session, secret: str | None) -> bool:
    """Whether the setup link may still create the first admin."""
    if not secret or any_account(session):
        return False
    digest = credentials.token_hash(secret)
    return session.scalar(select(SetupToken.id).where(SetupToken.token_hash == digest)) is not None


def create_first_admin(session: Session, *, secret, email, password) -> User:
    """Create the first admin through the setup link; the link stops working."""
    if problem := credentials.password_problem(password):
        raise Invalid("Choose another password.", details={"password": problem})
    # The token taken before the account is made: of two forms sent at once, the second waits
    # for the first's commit here and then finds no token, so the link makes one admin.
    if not secret or any_account(session):
        raise Forbidden(SETUP_USED)
    digest = credentials.token_hash(secret)
    taken = session.execute(delete(SetupToken).where(SetupToken.token_hash == digest))
    if taken.rowcount != 1:
        raise Forbidden(SETUP_USED)
    return create_user(session, email=email, role=Role.ADMIN, password=password)
