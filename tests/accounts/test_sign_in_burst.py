"""Failed sign-ins sent all at once are limited as those sent one after another are."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from .conftest import form_token

BURST = 30
LIMIT = 10  # failed sign-ins a minute, per account and per address
MINUTE = 60


def test_wrong_passwords_sent_at_once_get_no_more_checked_than_the_limit(live_server, accounts):
    email = accounts["viewer"].email
    browsers = [httpx.Client(base_url=live_server, timeout=None) for _ in range(BURST)]
    tokens = [form_token(browser.get("/login").text) for browser in browsers]

    def guess(n: int) -> tuple[int, float]:
        data = {"csrf_token": tokens[n], "email": email, "password": f"guess number {n}"}
        return browsers[n].post("/login", data=data).status_code, time.monotonic()

    started = time.monotonic()
    with ThreadPoolExecutor(BURST) as pool:
        answers = list(pool.map(guess, range(BURST)))
    for browser in browsers:
        browser.close()

    assert {status for status, _ in answers} <= {401, 429}
    # The minute of the count begins with the first try, after `started`: a try answered
    # before started + 1 minute was counted in it, however slow the machine is.
    checked = [at for status, at in answers if status == 401 and at < started + MINUTE]
    assert len(checked) <= LIMIT
