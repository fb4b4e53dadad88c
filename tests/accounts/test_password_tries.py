"""The current password asked by a password change cannot be guessed past the sign-in's limit.

Else whoever holds a session or a token of the account, even a viewer's token an admin made
for a script, could try passwords without end, and on the right one set their own.
"""

from tests.conftest import PASSWORD, client_with_token

from .conftest import clear_sign_in_limits, post_sign_in

LIMIT = 10  # wrong current passwords a minute, per account
NEW_PASSWORD = "the guesser's own password"


def change(client, current: str):
    body = {"current_password": current, "new_password": NEW_PASSWORD}
    return client.post("/api/account/password", json=body)


def test_past_ten_wrong_current_passwords_even_the_right_one_is_refused(app, client, accounts):
    made = client.post("/api/tokens", json={"name": "a script", "role": "viewer"})
    script = client_with_token(app, made.get_json()["token"])  # the admin's, as a viewer
    for n in range(LIMIT):
        assert change(script, f"guess number {n}").status_code == 422

    refused = change(script, PASSWORD)

    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert error["code"] == "too_many" and "Too many wrong passwords" in error["message"]
    clear_sign_in_limits()  # the guesses count at sign-in too: a minute later
    assert post_sign_in(app.test_client(), accounts["admin"].email).status_code == 302
    signed_in_as_guesser = post_sign_in(app.test_client(), accounts["admin"].email, NEW_PASSWORD)
    assert signed_in_as_guesser.status_code == 401


def test_wrong_current_passwords_and_failed_sign_ins_are_one_count(app, client, accounts):
    # Counted apart, whoever held a session or token could guess 20 passwords a minute.
    made = client.post("/api/tokens", json={"name": "a script", "role": "viewer"})
    script = client_with_token(app, made.get_json()["token"])
    email = accounts["admin"].email
    for n in range(LIMIT // 2):
        assert post_sign_in(app.test_client(), email, f"sign-in guess {n}").status_code == 401
        assert change(script, f"guess number {n}").status_code == 422

    assert change(script, "one more").status_code == 429
    assert post_sign_in(app.test_client(), email.upper(), "and one more").status_code == 429


def test_wrong_current_passwords_are_audited_with_the_token_and_one_refusal(app, client, accounts):
    # The same guesses at /login are audited; here an admin saw nothing until the password
    # had changed.
    made = client.post("/api/tokens", json={"name": "a script", "role": "viewer"}).get_json()
    script = client_with_token(app, made["token"])
    for n in range(LIMIT):
        assert change(script, f"guess number {n}").status_code == 422
    for _ in range(3):  # an attacker keeps trying: one entry, not three
        assert change(script, "more").status_code == 429

    entries = client.get("/api/audit?action=account.").get_json()["items"]
    found = [(e["action"], e["actor"], e["target"], e["details"]) for e in entries]
    email, token = accounts["admin"].email, {"token": made["id"]}
    refused = ("account.password_change_refused", email, email, token)
    failed = ("account.password_change_failed", email, email, token)
    assert found == [refused] + [failed] * LIMIT


def test_the_limit_is_per_account_and_a_right_password_is_not_counted(browsers, accounts):
    editor, viewer = browsers(accounts["editor"].email), browsers(accounts["viewer"].email)
    for n in range(LIMIT):
        assert change(editor, f"guess number {n}").status_code == 422
    for _ in range(LIMIT + 1):  # given back each time: a person may change it again and again
        body = {"current_password": PASSWORD, "new_password": PASSWORD}
        assert viewer.post("/api/account/password", json=body).status_code == 204


def test_new_passwords_refused_as_too_weak_are_not_wrong_guesses(browsers, accounts):
    # Counted until the change succeeded, eleven weak new passwords in a minute were told
    # "Too many wrong current passwords" though the current one was right each time.
    viewer = browsers(accounts["viewer"].email)
    for _ in range(LIMIT + 1):
        weak = viewer.post(
            "/api/account/password", json={"current_password": PASSWORD, "new_password": "short"}
        )
        assert weak.status_code == 422
        assert "new_password" in weak.json()["error"]["details"]

    body = {"current_password": PASSWORD, "new_password": PASSWORD}
    assert viewer.post("/api/account/password", json=body).status_code == 204
