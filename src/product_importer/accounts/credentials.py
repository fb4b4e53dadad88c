"""Passwords (argon2id, memory-hard) and random tokens (stored as SHA-256). Pure: no database."""

import functools
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "pit_"
SETUP_PREFIX = "setup_"
SESSION_PREFIX = "sess_"
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
# argon2-cffi's defaults (RFC 9106's second recommendation: 64 MiB, 3 passes) cost about
# 50 ms of one core per sign-in: cheap for a person, ruinous for a password guesser.
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Compared against when the account does not exist, so a guess takes as long either way.

    Made at the first such guess, not at import: every command and server start would pay it.
    """
    return _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    """The argon2id hash of a password, with its own salt and parameters."""
    return _hasher.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the one hashed; as slow for an unknown account as a known one."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password) -> str | None:
    """Why a new password is not acceptable, or None."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters."
    if len(password) > MAX_PASSWORD:
        return f"Use at most {MAX_PASSWORD} characters."
    return None


def new_password() -> str:
    """A random password for a new account, or a reset one (about 95 bits)."""
    return secrets.token_urlsafe(12)


def new_token(prefix: str = TOKEN_PREFIX) -> str:
    """A new secret token: the prefix, then 256 random bits."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256 (a random token needs no slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()
