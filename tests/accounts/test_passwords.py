"""Passwords: one's own change (other sessions end, this one goes on) and an admin's reset."""

import pytest

from tests.conftest import PASSWORD, client_with_token

from .conftest import is_signed_in, post_sign_in

NEW_PASSWORD = "a brand new password"


def change(browser, current: str, new: str = NEW_PASSWORD):
    body = {"current_password": current, "new_password": new}
    return browser.post("/api/account/password", json=body)


def test_a_wrong_current_password_is_422_and_changes_nothing(browsers, accounts, app):
    browser = browsers(accounts["editor"].email)

    response = change(browser, "not my password")

    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"current_password": "Not right."}
    assert is_signed_in(browser)
    assert post_sign_in(app.test_client(), accounts["editor"].email).status_code == 302


def test_a_new_password_too_short_is_422(browsers, accounts):
    response = change(browsers(accounts["editor"].email), PASSWORD, "short")
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"new_password": "Use at least 10 characters."}


def test_changing_it_ends_the_other_sessions_and_this_one_goes_on(
    browsers, accounts, client_as, app
):
    email = accounts["editor"].email
    here, elsewhere = browsers(email), browsers(email)

    assert change(here, PASSWORD).status_code == 204

    assert is_signed_in(here)
    assert here.post("/api/products", json={"sku": "P-1", "name": "Pen"}).status_code == 201
    assert not is_signed_in(elsewhere)
    assert client_as("editor").get("/api/products").status_code == 200  # tokens go on
    assert post_sign_in(app.test_client(), email, PASSWORD).status_code == 401
    assert post_sign_in(app.test_client(), email, NEW_PASSWORD).status_code == 302


def test_an_admin_reset_gives_a_one_time_password_that_signs_in(
    client, client_as, browsers, accounts, app
):
    session = browsers(accounts["viewer"].email)

    response = client.post("/api/users/3/password")

    assert response.status_code == 200
    reset = response.get_json()
    assert reset["email"] == accounts["viewer"].email and len(reset["password"]) >= 12
    assert not is_signed_in(session)  # its sessions end
    assert post_sign_in(app.test_client(), accounts["viewer"].email, PASSWORD).status_code == 401
    again = app.test_client()
    assert post_sign_in(again, accounts["viewer"].email, reset["password"]).status_code == 302
    assert again.get("/api/account").get_json()["account"]["email"] == accounts["viewer"].email
    assert reset["tokens_revoked"] == 0  # not asked to: a forgotten password stops no script
    assert client_as("viewer").get("/api/account").status_code == 200


def test_a_reset_asked_to_revokes_the_accounts_tokens_too(client, browsers, app, accounts):
    # A password that may have been stolen: whoever signed in with it may have made a token,
    # which a reset alone left working.
    thief = browsers(accounts["viewer"].email)
    made = thief.post("/api/tokens", json={"name": "mine now"})
    assert made.status_code == 201, made.text

    response = client.post("/api/users/3/password", json={"revoke_tokens": True})

    assert response.status_code == 200
    assert response.get_json()["tokens_revoked"] == 2  # the standard one and the thief's
    for secret in (made.json()["token"], accounts["viewer"].token):
        assert client_with_token(app, secret).get("/api/account").status_code == 401
    entry = client.get("/api/audit", query_string={"action": "user.password_reset"}).get_json()
    assert entry["items"][0]["details"] == {"tokens_revoked": 2}


@pytest.mark.parametrize("body", [{"revoke_tokens": "yes"}, {"revoke": True}])
def test_a_reset_with_a_wrong_field_changes_nothing(client, app, accounts, body):
    response = client.post("/api/users/3/password", json=body)

    assert response.status_code == 422
    assert post_sign_in(app.test_client(), accounts["viewer"].email, PASSWORD).status_code == 302


def test_an_admin_adds_an_account_with_a_one_time_password(client, app):
    response = client.post("/api/users", json={"email": "ana@example.test", "role": "editor"})

    assert response.status_code == 201
    added = response.get_json()
    assert (added["email"], added["role"], added["active"]) == ("ana@example.test", "editor", True)
    assert "password" not in client.get("/api/users").get_json()["items"][-1]
    browser = app.test_client()
    assert post_sign_in(browser, "ana@example.test", added["password"]).status_code == 302
    taken = client.post("/api/users", json={"email": "ANA@example.test", "role": "viewer"})
    assert taken.status_code == 409
    bad = client.post("/api/users", json={"email": "not an email", "role": "owner"}).get_json()
    assert set(bad["error"]["details"]) == {"email", "role"}
