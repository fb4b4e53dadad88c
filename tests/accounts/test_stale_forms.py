"""The sign-in and sign-out forms of a page opened before this browser signed in or out
in another tab: their CSRF token is stale. Nothing is done, and the answer says what to do."""

import httpx
import pytest

from tests.conftest import PASSWORD, TLS

from .conftest import form_token, is_signed_in, post_sign_in

AS_A_PAGE = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends
AS_A_SCRIPT = {"Accept": "application/json"}


@pytest.fixture
def browser(live_server):
    with httpx.Client(base_url=live_server, timeout=30, verify=TLS) as client:
        yield client


def signed_out_and_in_again(browser, email: str) -> None:
    """What another tab of the same browser does: sign out, then sign in again."""
    browser.post("/logout", data={"csrf_token": form_token(browser.get("/account").text)})
    assert post_sign_in(browser, email).status_code == 302


def sign_outs(sql, email: str) -> int:
    query = "SELECT count(*) FROM audit_log WHERE action = 'auth.signed_out' AND target = :email"
    return sql(query, email=email)[0][0]


def test_signing_out_from_a_page_older_than_the_sign_in_asks_to_press_sign_out_again(
    browser, accounts, sql
):
    email = accounts["editor"].email
    post_sign_in(browser, email)
    old_page = browser.get("/products").text  # tab A
    signed_out_and_in_again(browser, email)  # tab B

    refused = browser.post("/logout", data={"csrf_token": form_token(old_page)}, headers=AS_A_PAGE)

    assert refused.status_code == 403
    assert "Your sign-in changed in another tab" in refused.text
    assert f"still signed in as <strong>{email}</strong>" in refused.text
    assert is_signed_in(browser)
    assert sign_outs(sql, email) == 1  # tab B's alone
    again = browser.post("/logout", data={"csrf_token": form_token(refused.text)})
    assert again.status_code == 302 and again.headers["location"] == "/login"
    assert not is_signed_in(browser)


def test_the_sign_out_page_leads_back_to_the_page_it_came_from(browser, accounts, live_server):
    post_sign_in(browser, accounts["editor"].email)
    old_page = browser.get("/products?name=pen").text
    signed_out_and_in_again(browser, accounts["editor"].email)
    came_from = {"Referer": f"{live_server}/products?name=pen", **AS_A_PAGE}

    refused = browser.post("/logout", data={"csrf_token": form_token(old_page)}, headers=came_from)

    assert 'href="/products?name=pen">Stay signed in</a>' in refused.text


def test_a_sign_in_form_older_than_another_tabs_sign_in_shows_the_form_again(browser, accounts):
    second_tab = form_token(browser.get("/login").text)
    assert post_sign_in(browser, accounts["viewer"].email).status_code == 302  # the first tab
    form = {"email": accounts["editor"].email, "password": PASSWORD, "next": "/products"}

    refused = browser.post("/login", data=form | {"csrf_token": second_tab}, headers=AS_A_PAGE)

    assert refused.status_code == 403
    assert "The sign-in form had gone out of date" in refused.text
    assert f'value="{accounts["editor"].email}"' in refused.text  # the email stays filled in
    assert 'name="next" value="/products"' in refused.text
    assert browser.get("/api/account").json()["account"]["email"] == accounts["viewer"].email
    sent_again = browser.post("/login", data=form | {"csrf_token": form_token(refused.text)})
    assert sent_again.status_code == 302 and sent_again.headers["location"] == "/products"
    assert browser.get("/api/account").json()["account"]["email"] == accounts["editor"].email


def test_a_stale_sign_in_form_of_the_account_signed_in_meanwhile_leads_on(browser, accounts):
    stale = form_token(browser.get("/login").text)
    assert post_sign_in(browser, accounts["editor"].email).status_code == 302
    form = {"email": "Editor@Example.test", "password": "not even checked", "next": "/products"}

    response = browser.post("/login", data=form | {"csrf_token": stale}, headers=AS_A_PAGE)

    assert response.status_code == 302 and response.headers["location"] == "/products"
    assert browser.get("/api/account").json()["account"]["email"] == accounts["editor"].email


def test_a_sign_in_form_without_its_token_signs_no_one_in(browser, accounts):
    browser.get("/login")
    form = {"email": accounts["admin"].email, "password": PASSWORD}

    refused = browser.post("/login", data=form, headers=AS_A_PAGE)

    assert refused.status_code == 403
    assert "The sign-in form had gone out of date" in refused.text
    assert not is_signed_in(browser)


@pytest.mark.parametrize("path", ["/login", "/logout"])
def test_a_script_is_answered_as_the_api_answers_a_stale_token(browser, accounts, path):
    post_sign_in(browser, accounts["editor"].email)
    form = {"csrf_token": "a token of an earlier session", "email": "x", "password": "y"}

    refused = browser.post(path, data=form, headers=AS_A_SCRIPT)

    assert refused.status_code == 403
    error = refused.json()["error"]
    assert (error["code"], error["details"]) == ("forbidden", {"reason": "csrf_token"})
    assert "CSRF token is missing or stale" in error["message"]
    assert is_signed_in(browser)
