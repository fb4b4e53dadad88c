"""Guesses of a password, limited: at sign-in, and where a signed-in caller gives the current one.

Every try is counted before its password is checked: counted after (flask-limiter's
`deduct_when`), tries sent at once were all checked against a count none had raised yet, and a
burst of them got past the limit. A try that succeeds is given back, so only failures count.
"""

import hashlib
import logging

from flask import g
from limits import parse
from limits.storage import RedisStorage

from ..database import lower_letters
from ..extensions import limiter
from . import service

log = logging.getLogger(__name__)

TRIES_LIMIT = "10 per minute"
# Failed sign-ins and wrong current passwords of one account are one count: counted apart, whoever
# held a session or token of it could guess 20 passwords a minute.
ACCOUNT_SCOPE = "sign-in-account"
REFUSALS_AUDITED = parse("1 per minute")  # per address, and per account
# A try is given back only while the count of its minute is there. Gone (the minute ended while
# the try was served), limits' own way, a hit of cost -1, would start the next minute's count
# at -1, and that minute would let 11 wrong passwords through.
TAKE_OFF_IF_COUNTED = """
if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end
return 0
"""


def account_key(email: str) -> str:
    """The key an account's tries are counted under: its email as the database finds it (in
    NFC, lowered), hashed, so that what a client types is never kept in the store of counts
    (an email field of 400 KB was kept whole, for every try)."""
    email = lower_letters(service.normal_email(email))
    return "account:" + hashlib.sha256(email.encode("utf-8", "surrogatepass")).hexdigest()


def first_refusal_this_minute(limit) -> bool:
    """Whether this refusal by `limit` (flask-limiter's on_breach) is the first this minute for
    its key: only that one is audited, or an attacker who goes on trying would add an entry a
    try and fill the log without bound."""
    *prefix, key, scope = limit.request_args
    return limit.limiter.hit(REFUSALS_AUDITED, *prefix, "refusal-audited", key, scope)


def give_back() -> None:
    """Take this request's try off the counts of every limit it was under: it succeeded, or it
    was refused before its password was checked. Once a request: given back twice, a try
    would take one off the count of the next."""
    if g.get("try_given_back"):
        return
    g.try_given_back = True
    try:
        for counted in limiter.current_limits:
            _take_off(counted.limit.key_for(*counted.request_args))
    except Exception:  # the store of the counts is down: the request goes on, unlimited
        log.exception("could not take a try off the failed tries")


def _take_off(key: str) -> None:
    """Take one try off the count at `key`, unless that count is gone (its minute is over)."""
    storage = limiter.limiter.storage
    if isinstance(storage, RedisStorage):
        storage.get_connection().eval(TAKE_OFF_IF_COUNTED, 1, storage.prefixed_key(key))
    else:  # memory://, one process's: its decrement never goes below 0
        storage.decr(key)
