"""Guesses of a password, limited: at sign-in, and where a signed-in caller gives the current one.

Every try is counted before its password is checked: counted after (flask-limiter's
`deduct_when`), tries sent at once were all checked against a count none had raised yet, and a
burst of them got past the limit. A try that succeeds is given back, so only failures count.
"""

import logging

from flask import g

from ..extensions import limiter

log = logging.getLogger(__name__)

TRIES_LIMIT = "10 per minute"


def give_back() -> None:
    """Take this request's try off the counts of every limit it was under: it succeeded, or it
    was refused before its password was checked. Once a request: given back twice, a try
    would take one off the count of the next."""
    if g.get("try_given_back"):
        return
    g.try_given_back = True
    try:
        for counted in limiter.current_limits:
            limiter.limiter.hit(counted.limit, *counted.request_args, cost=-1)
    except Exception:  # the store of the counts is down: the request goes on, unlimited
        log.exception("could not take a try off the failed tries")
