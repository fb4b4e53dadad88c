"""Signing in and out at /login: the session cookie, where it leads, and failed tries limited."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from tests.conftest import PASSWORD, REDIS_URL, http_client
from tests.helpers import import_csv
from tests.imports.conftest import read_events

from .conftest import CSRF_META, clear_sign_in_limits, form_token, is_signed_in, post_sign_in


@pytest.fixture
def browser(live_server):
    with httpx.Client(base_url=live_server, timeout=30) as client:
        yield client


def session_cookie(response) -> str:
    headers = response.headers
    cookies = (
        headers.get_list("set-cookie")
        if hasattr(headers, "get_list")
        else headers.getlist("set-cookie")
    )
    (cookie,) = [c for c in cookies if c.startswith("session=")]
    return cookie


def test_signing_in_through_the_form_opens_the_pages_and_the_api(browser, accounts):
    assert browser.get("/products").headers["location"] == "/login?next=%2Fproducts"

    response = post_sign_in(browser, "Editor@Example.test", next="/products")

    assert response.status_code == 302
    assert response.headers["location"] == "/products"
    attributes = {part.strip().lower() for part in session_cookie(response).split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= attributes
    assert "secure" not in attributes  # SESSION_COOKIE_SECURE is not set here
    page = browser.get("/products")
    assert page.status_code == 200 and "editor@example.test" in page.text
    assert browser.get("/api/account").json()["account"]["email"] == "editor@example.test"


def test_a_wrong_password_is_401_with_the_form_again_and_no_session(browser, accounts):
    response = post_sign_in(browser, accounts["admin"].email, "not the password")

    assert response.status_code == 401
    assert "That email and password do not match an active account." in response.text
    assert accounts["admin"].email in response.text  # the email stays filled in
    assert not is_signed_in(browser)
    assert browser.get("/api/account").status_code == 401


def test_an_unknown_email_is_refused_like_a_wrong_password(browser):
    response = post_sign_in(browser, "nobody@example.test", PASSWORD)
    assert response.status_code == 401
    assert not is_signed_in(browser)


def test_a_deactivated_account_cannot_sign_in(browser, client, accounts):
    assert client.patch("/api/users/3", json={"active": False}).status_code == 200
    assert post_sign_in(browser, accounts["viewer"].email).status_code == 401


def test_the_sign_in_form_needs_its_csrf_token(browser, accounts):
    browser.get("/login")
    data = {"email": accounts["admin"].email, "password": PASSWORD}

    assert browser.post("/login", data=data).status_code == 403
    assert not is_signed_in(browser)


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "/\t/evil.example", " //x.io"],
)
def test_after_signing_in_only_a_page_of_this_site_is_next(browser, accounts, target):
    response = post_sign_in(browser, accounts["admin"].email, next=target)

    assert response.status_code == 302
    assert response.headers["location"] == "/"


def test_signing_out_ends_the_session(browser, accounts):
    post_sign_in(browser, accounts["admin"].email)
    token = form_token(browser.get("/products").text)  # the Sign out form of the navigation

    response = browser.post("/logout", data={"csrf_token": token})

    assert response.status_code == 302 and response.headers["location"] == "/login"
    assert not is_signed_in(browser)
    assert browser.get("/api/products").status_code == 401


def test_a_cookie_copied_before_signing_out_stops_working_too(browser, live_server, accounts):
    post_sign_in(browser, accounts["admin"].email)
    copied = dict(browser.cookies)  # what a thief on the same computer would take
    token = form_token(browser.get("/products").text)

    browser.post("/logout", data={"csrf_token": token})

    with httpx.Client(base_url=live_server, cookies=copied, timeout=30) as thief:
        assert thief.get("/api/account").status_code == 401
        assert thief.get("/products").status_code == 302


def test_signing_in_over_another_account_ends_its_session_and_its_csrf_token(
    browser, live_server, accounts
):
    post_sign_in(browser, accounts["viewer"].email)
    copied = dict(browser.cookies)
    page = browser.get("/account").text
    viewers_token = CSRF_META.search(page).group(1)

    # the same browser signs in as someone else without signing out (the form of a page
    # open from before: /login itself leads a signed-in browser on)
    form = {"csrf_token": form_token(page), "email": accounts["editor"].email}
    assert browser.post("/login", data=form | {"password": PASSWORD}).status_code == 302

    assert browser.get("/api/account").json()["account"]["email"] == accounts["editor"].email
    with httpx.Client(base_url=live_server, cookies=copied, timeout=30) as thief:
        assert thief.get("/api/account").status_code == 401
    made = {"name": "a script", "role": "viewer"}
    stale = browser.post("/api/tokens", json=made, headers={"X-CSRFToken": viewers_token})
    assert stale.status_code == 403 and stale.json()["error"]["details"]["reason"] == "csrf_token"
    editors_token = CSRF_META.search(browser.get("/account").text).group(1)
    assert editors_token != viewers_token
    made_by_editor = browser.post("/api/tokens", json=made, headers={"X-CSRFToken": editors_token})
    assert made_by_editor.status_code == 201


def test_two_browsers_have_sessions_of_their_own(browser, live_server, accounts):
    post_sign_in(browser, accounts["editor"].email)
    with httpx.Client(base_url=live_server, timeout=30) as other:
        post_sign_in(other, accounts["editor"].email)
        token = form_token(other.get("/products").text)
        other.post("/logout", data={"csrf_token": token})

        assert other.get("/api/account").status_code == 401
    assert browser.get("/api/account").json()["account"]["email"] == accounts["editor"].email


def test_progress_events_and_csv_downloads_work_with_a_session_and_a_token(
    live_server, live_worker, http, browsers, accounts
):
    job = import_csv(http, "sku,name\nA-1,Apple\n,No SKU\n")
    session = browsers(accounts["viewer"].email)
    with http_client(live_server, accounts["viewer"].token) as token:
        for caller in (session, token):
            events = read_events(caller, job["id"])
            assert events[-1][0] == "done" and events[-1][1]["status"] == job["status"]
            rejected = caller.get(f"/api/imports/{job['id']}/errors.csv").text
            assert rejected.splitlines() == ["line,sku,reason", "3,,sku is empty"]
            exported = caller.get("/api/products/export.csv").text
            assert exported.splitlines()[1] == "A-1,Apple,,true"


def test_a_signed_in_page_names_the_account_and_its_role(browser, accounts):
    post_sign_in(browser, accounts["viewer"].email)
    page = browser.get("/products").text
    assert 'id="signed-in-as"' in page and "viewer@example.test" in page
    assert 'data-role="viewer"' in page


def test_with_session_cookie_secure_the_cookie_is_secure(make_app, accounts, monkeypatch):
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "true")
    app = make_app()
    browser = app.test_client()

    response = post_sign_in(browser, accounts["admin"].email)

    assert response.status_code == 302
    assert "; Secure" in session_cookie(response)


# --- failed sign-ins limited ------------------------------------------------------------------


def sign_in_from(browser, address: str, email: str, password: str = "wrong password"):
    """Post the sign-in form (in process) as if from `address`."""
    token = form_token(browser.get("/login").get_data(as_text=True))
    data = {"csrf_token": token, "email": email, "password": password}
    return browser.post("/login", data=data, environ_base={"REMOTE_ADDR": address})


def test_ten_failed_sign_ins_a_minute_for_one_account_then_429(app, accounts):
    browser = app.test_client()
    email = accounts["editor"].email
    for n in range(10):  # from ten addresses, so only the account's limit is reached
        assert sign_in_from(browser, f"198.51.100.{n}", email).status_code == 401

    refused = sign_in_from(browser, "198.51.100.99", email, PASSWORD)

    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.get_data(as_text=True)
    assert (
        sign_in_from(browser, "198.51.100.99", accounts["viewer"].email, PASSWORD).status_code
        == 302
    )


def test_a_sign_in_served_as_its_minute_ends_leaves_the_next_minute_ten_tries(
    app, holding, accounts
):
    # A try is counted as it comes and given back once it succeeds. Given back after its
    # minute's count had expired, it started the next minute's count at -1: that minute let
    # eleven wrong passwords through.
    email = accounts["editor"].email
    holding_the_account = holding("SELECT id FROM users WHERE id = 2 FOR UPDATE")
    with holding_the_account as held, ThreadPoolExecutor(1) as pool:
        signing_in = pool.submit(sign_in_from, app.test_client(), "198.51.100.1", email, PASSWORD)
        held.wait_until_blocking()  # counted, and noting the sign-in on the account
        clear_sign_in_limits()  # the minute is over: its counts expire
        held.release()
        assert signing_in.result().status_code == 302
    browser = app.test_client()
    for n in range(10):
        assert sign_in_from(browser, f"198.51.100.{n}", email).status_code == 401, n

    refused = sign_in_from(browser, "198.51.100.99", email)

    assert refused.status_code == 429
    said = refused.get_data(as_text=True)
    assert "Too many failed sign-ins" in said and "Wait a minute and try again." in said


def test_ten_failed_sign_ins_a_minute_from_one_address_then_429(app, accounts):
    browser = app.test_client()
    for n in range(10):  # ten accounts, so only the address's limit is reached
        assert sign_in_from(browser, "203.0.113.5", f"guess{n}@example.test").status_code == 401

    assert (
        sign_in_from(browser, "203.0.113.5", accounts["admin"].email, PASSWORD).status_code == 429
    )
    assert (
        sign_in_from(browser, "203.0.113.6", accounts["admin"].email, PASSWORD).status_code == 302
    )


def test_tries_refused_at_an_address_over_its_limit_lock_no_account_out(app, accounts):
    # Refused tries were counted against the account they named: one client over its own
    # limit could then lock every account out, from everywhere, by naming each in turn.
    browser = app.test_client()
    for n in range(10):
        assert sign_in_from(browser, "203.0.113.7", f"guess{n}@example.test").status_code == 401
    victim = accounts["editor"].email
    for _ in range(12):
        assert sign_in_from(browser, "203.0.113.7", victim).status_code == 429

    assert sign_in_from(browser, "203.0.113.8", victim, PASSWORD).status_code == 302


def test_failed_sign_ins_from_one_ipv6_network_share_its_limit(app, accounts):
    # Counted per address, an IPv6 client, who holds a /64 of them, got ten tries a minute
    # from each of its 2**64 addresses.
    browser = app.test_client()
    for n in range(10):
        assert (
            sign_in_from(browser, f"2001:db8:5:7::{n + 1:x}", "guess@example.test").status_code
            == 401
        )
    admin = accounts["admin"].email

    assert sign_in_from(browser, "2001:db8:5:7:ffff::99", admin, PASSWORD).status_code == 429
    assert sign_in_from(browser, "2001:db8:5:8::1", admin, PASSWORD).status_code == 302


def test_successful_sign_ins_are_not_counted(app, accounts):
    browser = app.test_client()
    for _ in range(12):
        response = sign_in_from(browser, "192.0.2.10", accounts["viewer"].email, PASSWORD)
        assert response.status_code == 302
        browser.post("/logout", data={"csrf_token": form_token(browser.get("/account").text)})


def test_the_live_server_counts_failed_sign_ins_in_redis(browser):
    from product_importer.accounts.tries import account_key

    store = redis.Redis.from_url(REDIS_URL)
    email = "counted-in-redis@example.test"

    for _ in range(2):
        assert post_sign_in(browser, email, "wrong").status_code == 401

    counted = f"*product-importer-limits/*{account_key(email)}*"
    keys = [key.decode() for key in store.scan_iter(counted)]
    assert len(keys) == 1, keys
    assert int(store.get(keys[0])) == 2  # every web process reads and adds to this count
    # under a hash: an email field of 400 KB was kept whole in Redis for each try
    assert list(store.scan_iter(f"*product-importer-limits/*{email}*")) == []


def refusals(client) -> list[tuple]:
    found = client.get("/api/audit?action=auth.sign_in_refused").get_json()["items"][::-1]
    return [(e["actor"], e["target"], e["client_address"], e["details"]) for e in found]


def test_a_sign_in_refused_for_too_many_failures_is_audited_once_per_account(app, accounts, client):
    browser, email = app.test_client(), accounts["editor"].email
    for n in range(10):
        assert sign_in_from(browser, f"198.51.100.{n}", email).status_code == 401

    for n in range(5):  # an attacker keeps trying, from wherever: one entry, not five
        assert sign_in_from(browser, f"198.51.100.{50 + n}", email.upper()).status_code == 429

    limit = {"limit": "10 per minute per account"}
    assert refusals(client) == [(None, email.upper(), "198.51.100.50", limit)]
    failed = client.get("/api/audit?action=auth.sign_in_failed").get_json()["total"]
    assert failed == 10  # refused tries are not counted as failed ones


def test_a_sign_in_refused_for_too_many_failures_is_audited_once_per_address(app, client):
    browser = app.test_client()
    for n in range(10):
        assert sign_in_from(browser, "203.0.113.5", f"guess{n}@example.test").status_code == 401

    for n in range(5):
        refused = sign_in_from(browser, "203.0.113.5", f"more{n}@example.test")
        assert refused.status_code == 429

    limit = {"limit": "10 per minute per address", "account": "none has the email typed"}
    assert refusals(client) == [(None, None, "203.0.113.5", limit)]


def test_text_that_names_no_account_is_not_kept_in_the_audit_log(app, accounts, client):
    # A password typed in the Email box was kept as the failed sign-in's target, for every
    # admin to read.
    browser = app.test_client()
    password = "correct horse battery staple"
    assert sign_in_from(browser, "192.0.2.77", password, "").status_code == 401
    assert sign_in_from(browser, "192.0.2.77", accounts["viewer"].email.upper()).status_code == 401

    entries = client.get("/api/audit?action=auth.sign_in_failed").get_json()["items"][::-1]

    assert [(e["target"], e["details"]) for e in entries] == [
        (None, {"account": "none has the email typed"}),
        (accounts["viewer"].email.upper(), None),  # an account's, as typed
    ]
    assert password not in client.get("/api/audit").text


def test_an_email_holding_a_nul_is_refused_like_a_wrong_password(browser, accounts):
    # PostgreSQL's text holds no NUL: looking the account up with one answered a 500.
    response = post_sign_in(browser, accounts["admin"].email + "\x00", PASSWORD)

    assert response.status_code == 401
    assert "That email and password do not match an active account." in response.text
    assert not is_signed_in(browser)


def test_a_sign_in_refused_for_too_many_tries_shows_the_form_with_the_email_typed(app, accounts):
    # An error page took the form's place, and the email typed was lost.
    browser = app.test_client()
    email = accounts["editor"].email
    for n in range(10):
        assert sign_in_from(browser, f"198.51.100.{n}", email).status_code == 401

    refused = sign_in_from(browser, "198.51.100.99", email, PASSWORD)

    page = refused.get_data(as_text=True)
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in page
    assert f'value="{email}"' in page and 'name="password"' in page
