"""Tokens that end for good: deactivating an account revokes its tokens, so reactivating it
brings none back. Through HTTP against a running server, in both modes."""

import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import text

from tests.conftest import BIN, ROOT, http_client
from tests.helpers import wait_until

from .conftest import signed_in

# The sessions that wait for a lock the session `pid` holds.
BLOCKED_BY = "SELECT pid FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"


def account_id(admin: httpx.Client, email: str) -> int:
    """The id of the account with this email, as GET /api/users lists it."""
    users = admin.get("/api/users").json()["items"]
    return next(user["id"] for user in users if user["email"] == email)


def make_token(caller: httpx.Client, name: str) -> dict:
    """Make a token through POST /api/tokens; return its JSON, with the secret."""
    response = caller.post("/api/tokens", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


def listed_ids(caller: httpx.Client) -> list[int]:
    return [token["id"] for token in caller.get("/api/tokens").json()["items"]]


def test_a_reactivated_account_gets_none_of_its_old_tokens_back(served, any_http, accounts):
    email = accounts["editor"].email
    editor = account_id(any_http, email)
    with http_client(served.url, accounts["editor"].token) as standard:
        made = make_token(standard, "leaked")
    with http_client(served.url, made["token"]) as leaked:
        assert leaked.get("/api/products").status_code == 200

        deactivated = any_http.patch(f"/api/users/{editor}", json={"active": False})
        reactivated = any_http.patch(f"/api/users/{editor}", json={"active": True})

        assert (deactivated.status_code, reactivated.status_code) == (200, 200)
        refused = leaked.get("/api/products")
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    with http_client(served.url, accounts["editor"].token) as standard:
        assert standard.get("/api/account").status_code == 401  # the one it had before too
    owners = {token["owner"] for token in any_http.get("/api/tokens").json()["items"]}
    assert email not in owners  # gone from the list, not merely refused
    changes = any_http.get("/api/audit", params={"action": "user.changed"}).json()["items"]
    assert [(entry["target"], entry["details"]) for entry in changes] == [
        (email, {"active": True}),  # newest first
        (email, {"active": False, "tokens_revoked": 2}),
    ]


def test_a_reactivated_account_signs_in_again_and_makes_new_tokens(served, any_http, accounts):
    email = accounts["editor"].email
    editor = account_id(any_http, email)
    assert any_http.patch(f"/api/users/{editor}", json={"active": False}).status_code == 200
    assert any_http.patch(f"/api/users/{editor}", json={"active": True}).status_code == 200

    browser = signed_in(served.url, email)
    try:
        made = make_token(browser, "after the reactivation")
    finally:
        browser.close()

    with http_client(served.url, made["token"]) as fresh:
        assert fresh.get("/api/account").json()["account"]["email"] == email
        assert listed_ids(fresh) == [made["id"]]


def test_tokens_an_account_kept_from_an_earlier_release_die_when_it_is_reactivated(
    served, any_http, accounts
):
    # An earlier release deactivated an account without revoking its tokens: they must not
    # come back to life.
    email = accounts["viewer"].email
    viewer = account_id(any_http, email)
    with served.engine.begin() as conn:
        conn.execute(text("UPDATE users SET active = false WHERE id = :id"), {"id": viewer})

    reactivated = any_http.patch(f"/api/users/{viewer}", json={"active": True})

    assert reactivated.status_code == 200
    with http_client(served.url, accounts["viewer"].token) as kept:
        assert kept.get("/api/account").status_code == 401
    changes = any_http.get("/api/audit", params={"action": "user.changed"}).json()["items"]
    assert [entry["details"] for entry in changes] == [{"active": True, "tokens_revoked": 1}]


def test_a_request_whose_token_is_revoked_while_it_is_served_is_refused(
    live_server, holding, accounts
):
    # Deactivating revokes tokens a script may be using that very moment: its request, which
    # found the token and notes when it was used, finds the row gone. Once a 500 (the note's
    # UPDATE matched no row); it is nobody now.
    def use_the_token():
        with http_client(live_server, accounts["viewer"].token) as script:
            return script.get("/api/account")

    revoking = "DELETE FROM access_tokens WHERE user_id = 3"  # the viewer's, as a deactivation
    with holding(revoking) as held, ThreadPoolExecutor(1) as pool:
        asked = pool.submit(use_the_token)
        held.wait_until_blocking()  # its note of last_used_at waits for the revocation
        held.conn.commit()
        answer = asked.result()

    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "unauthorized"


def test_revoking_a_token_revokes_the_tokens_made_with_it_and_with_those(
    served, any_http, accounts
):
    email = accounts["editor"].email
    browser = signed_in(served.url, email)
    try:
        parent = make_token(browser, "stolen")
        with http_client(served.url, parent["token"]) as thief:
            child = make_token(thief, "the thief's own")
        with http_client(served.url, child["token"]) as thief:
            grandchild = make_token(thief, "and another")
        sibling = make_token(browser, "nightly sync")  # made in the browser: no parent
        made_by = {t["id"]: t["made_by_token"] for t in any_http.get("/api/tokens").json()["items"]}
        assert [made_by[t["id"]] for t in (parent, child, grandchild, sibling)] == [
            None,
            parent["id"],
            child["id"],
            None,
        ]

        assert browser.delete(f"/api/tokens/{parent['id']}").status_code == 204
    finally:
        browser.close()

    for token in (parent, child, grandchild):
        with http_client(served.url, token["token"]) as revoked:
            assert revoked.get("/api/account").status_code == 401, token["name"]
    with http_client(served.url, sibling["token"]) as kept:
        assert kept.get("/api/account").status_code == 200
    listed = listed_ids(any_http)
    assert sibling["id"] in listed
    assert not {parent["id"], child["id"], grandchild["id"]} & set(listed)
    (revocation,) = any_http.get("/api/audit", params={"action": "token.revoked"}).json()["items"]
    assert (revocation["target"], revocation["details"]) == (
        "stolen",
        {"owner": email, "revoked_with": [child["id"], grandchild["id"]]},
    )
    made = any_http.get("/api/audit", params={"action": "token.created"}).json()["items"]
    assert {entry["target"]: entry["details"].get("made_by_token") for entry in made} == {
        "stolen": None,
        "the thief's own": parent["id"],
        "and another": child["id"],
        "nightly sync": None,
    }


def test_a_token_revoking_its_own_parent_goes_with_it(served, accounts):
    # The thief's child token cannot keep itself alive by being the one that revokes.
    with http_client(served.url, accounts["viewer"].token) as standard:
        parent = make_token(standard, "parent")
    with http_client(served.url, parent["token"]) as parent_client:
        child = make_token(parent_client, "child")
    with http_client(served.url, child["token"]) as child_client:
        assert child_client.delete(f"/api/tokens/{parent['id']}").status_code == 204
        assert child_client.get("/api/account").status_code == 401


def test_deactivating_counts_every_token_revoked_also_those_made_with_another(
    served, any_http, accounts
):
    email = accounts["editor"].email
    with http_client(served.url, accounts["editor"].token) as standard:
        child = make_token(standard, "child")
    with http_client(served.url, child["token"]) as parent:
        make_token(parent, "grandchild")

    editor = account_id(any_http, email)
    assert any_http.patch(f"/api/users/{editor}", json={"active": False}).status_code == 200

    (change,) = any_http.get("/api/audit", params={"action": "user.changed"}).json()["items"]
    assert change["details"] == {"active": False, "tokens_revoked": 3}


def test_a_token_revoked_while_it_makes_another_is_refused(live_server, holding, accounts):
    # The new token names the one asking for it as its maker; revoked in that very moment,
    # the maker is gone when the new row refers to it. Once a 500 (a foreign key violated).
    with http_client(live_server, accounts["viewer"].token) as standard:
        maker = make_token(standard, "maker")
    with http_client(live_server, maker["token"]) as script:
        assert script.get("/api/account").status_code == 200  # used: no note of it for a minute

        revoking = f"DELETE FROM access_tokens WHERE id = {maker['id']}"
        with holding(revoking) as held, ThreadPoolExecutor(1) as pool:
            asked = pool.submit(script.post, "/api/tokens", json={"name": "made meanwhile"})
            held.wait_until_blocking()  # the new row's reference waits for the revocation
            held.conn.commit()
            answer = asked.result()

    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "unauthorized"
    with http_client(live_server, accounts["viewer"].token) as standard:
        assert "made meanwhile" not in [
            t["name"] for t in standard.get("/api/tokens").json()["items"]
        ]


def test_a_token_made_while_a_reset_revokes_the_accounts_tokens_is_refused(
    live_server, holding, accounts
):
    # Someone signed in with a stolen password makes a token just as the admin resets the
    # password, revoking the account's tokens: made after the revocation read the table,
    # it was left working.
    thief = signed_in(live_server, accounts["viewer"].email)
    try:
        hold_account = "SELECT id FROM users WHERE id = 3 FOR NO KEY UPDATE"  # as a reset does
        with holding(hold_account) as held, ThreadPoolExecutor(1) as pool:
            asked = pool.submit(thief.post, "/api/tokens", json={"name": "mine now"})
            held.wait_until_blocking()  # the new token waits for the account
            held.conn.execute(text("DELETE FROM sign_in_sessions WHERE user_id = 3"))
            held.conn.execute(text("DELETE FROM access_tokens WHERE user_id = 3"))
            held.conn.commit()
            answer = asked.result()
    finally:
        thief.close()

    assert answer.status_code == 401, answer.text
    with http_client(live_server, accounts["admin"].token) as admin:
        names = [token["name"] for token in admin.get("/api/tokens").json()["items"]]
    assert "mine now" not in names


def test_a_token_the_command_line_makes_as_the_account_is_deactivated_is_refused(
    holding, sql, accounts
):
    # The command line read the account as active while an admin's deactivation, which had
    # revoked its tokens already, was about to commit: the new token was printed and kept, on
    # a deactivated account (its deactivation counting none of it), until a reactivation.
    email = accounts["viewer"].email
    command = [str(BIN / "product-importer"), "tokens", "create", email, "--name", "meanwhile"]
    with holding("DELETE FROM sign_in_sessions WHERE user_id = 3") as held:  # as PATCH does
        held.conn.execute(text("DELETE FROM access_tokens WHERE user_id = 3"))
        held.conn.execute(text("UPDATE users SET active = false WHERE id = 3"))
        making = subprocess.Popen(command, cwd=ROOT, text=True, stdout=-1, stderr=-1)
        # waiting for the account, or (without its row lock) done without waiting
        wait_until(
            lambda: making.poll() is not None or sql(BLOCKED_BY, pid=held.pid),
            "the command waiting for the account",
        )
        held.conn.commit()
        printed, said = making.communicate(timeout=120)

    assert making.returncode == 1, printed
    assert printed == ""
    assert f"The account {email} is deactivated" in said
    assert sql("SELECT name FROM access_tokens WHERE user_id = 3") == []


def test_a_browser_deactivated_as_it_makes_a_token_is_told_its_sign_in_ended(
    browsers, holding, sql, accounts
):
    # Refused as a token that is not valid, it read as if the browser had sent a token.
    browser = browsers(accounts["viewer"].email)
    with holding("DELETE FROM sign_in_sessions WHERE user_id = 3") as held:  # as PATCH does
        held.conn.execute(text("DELETE FROM access_tokens WHERE user_id = 3"))
        held.conn.execute(text("UPDATE users SET active = false WHERE id = 3"))
        with ThreadPoolExecutor(1) as pool:
            making = pool.submit(browser.post, "/api/tokens", json={"name": "meanwhile"})
            wait_until(
                lambda: making.done() or sql(BLOCKED_BY, pid=held.pid),
                "the request waiting for the account",
            )
            held.conn.commit()
            answer = making.result()

    assert answer.status_code == 401, answer.text
    message = answer.json()["error"]["message"]
    assert message.startswith("Your sign-in ended as this was sent"), message
    assert "sign in again" in message
    assert sql("SELECT name FROM access_tokens WHERE user_id = 3") == []
