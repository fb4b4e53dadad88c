"""Accounts changed by admins: at least one active admin always remains, even when two or three
admins demote or deactivate each other at the same moment."""

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
from sqlalchemy import event, insert, text

from tests.conftest import http_client

# The standard editor (id 2) made a second admin, and its token one that acts as admin.
SECOND_ADMIN = (
    "UPDATE users SET role = 'admin', active = true WHERE id IN (1, 2)",
    "UPDATE access_tokens SET role = 'admin' WHERE user_id = 2",
)
# Each change, and how the admin it locks out is refused once it has: demoted, its token acts
# as an editor (403); deactivated, its token stops working (401).
LOCKOUTS = [({"role": "editor"}, 403), ({"active": False}, 401)]
IDS = ["demote", "deactivate"]
MUST_REMAIN = "An admin must remain"
# Every standard account an admin (1 admin, 2 editor, 3 viewer), each token acting as one.
THREE_ADMINS = (
    "UPDATE users SET role = 'admin', active = true",
    "UPDATE access_tokens SET role = 'admin'",
)
# The accounts by id, in the order of RING: 1 changes 2, 2 changes 3, 3 changes 1.
RING = ("admin", "editor", "viewer")
DEMOTE, DEACTIVATE = LOCKOUTS[0][0], LOCKOUTS[1][0]
# What each admin of RING does to the next, all at once.
RING_CHANGES = {
    "demote": [DEMOTE, DEMOTE, DEMOTE],
    "deactivate": [DEACTIVATE, DEACTIVATE, DEACTIVATE],
    "mixed": [DEMOTE, DEACTIVATE, DEACTIVATE],
    "mixed-other": [DEACTIVATE, DEMOTE, DEMOTE],
}


def standard_tokens(conn, account_rows) -> None:
    """Give the standard accounts their tokens again: a deactivation before revoked some."""
    from product_importer.accounts.models import Token

    conn.execute(text("DELETE FROM access_tokens"))
    conn.execute(insert(Token), account_rows[1])


def two_admins(engine, account_rows) -> None:
    with engine.begin() as conn:
        standard_tokens(conn, account_rows)
        for statement in SECOND_ADMIN:
            conn.execute(text(statement))


def three_admins(engine, account_rows) -> None:
    with engine.begin() as conn:
        standard_tokens(conn, account_rows)
        for statement in THREE_ADMINS:
            conn.execute(text(statement))


def active_admins(engine) -> list[str]:
    with engine.connect() as conn:
        found = "SELECT email FROM users WHERE role = 'admin' AND active ORDER BY id"
        return [row[0] for row in conn.execute(text(found))]


def each_other(url: str, accounts, change: dict) -> list:
    """The admin changes the second admin (2), and the second admin the admin (1), at once."""
    first, second = (
        http_client(url, accounts["admin"].token),
        http_client(url, accounts["editor"].token),
    )
    with first, second, ThreadPoolExecutor(2) as pool:
        asked = [
            pool.submit(first.patch, "/api/users/2", json=change),
            pool.submit(second.patch, "/api/users/1", json=change),
        ]
        return [answer.result() for answer in asked]


def around(url: str, accounts, changes: list[dict]) -> list:
    """Each admin of RING changes the next one, at once (1 changes 2, 2 changes 3, 3 changes 1)."""
    with ExitStack() as stack, ThreadPoolExecutor(len(RING)) as pool:
        asked = []
        for number, (role, change) in enumerate(zip(RING, changes, strict=True)):
            client = stack.enter_context(http_client(url, accounts[role].token))
            target = (number + 1) % len(RING) + 1  # the next account's id
            asked.append(pool.submit(client.patch, f"/api/users/{target}", json=change))
        return [answer.result() for answer in asked]


@pytest.mark.parametrize("change", [change for change, _ in LOCKOUTS], ids=IDS)
def test_two_admins_locking_each_other_out_at_once_leave_one_admin(
    live_server, accounts, account_rows, holding, app, change
):
    from product_importer.extensions import db

    with app.app_context():
        engine = db.engine
    two_admins(engine, account_rows)
    # Both requests past their sign-in check, each about to change the other: neither can see
    # the other's change until the held lock goes (reads of the accounts go on; writes wait).
    accounts_written = "LOCK TABLE users IN EXCLUSIVE MODE"
    with holding(accounts_written) as held, ThreadPoolExecutor(1) as waiter:
        answers = waiter.submit(each_other, live_server, accounts, change)
        held.wait_until_blocking(sessions=2)
        held.release()
        first, second = answers.result()

    assert sorted([first.status_code, second.status_code]) == [200, 409], (first, second)
    refused = first if first.status_code == 409 else second
    error = refused.json()["error"]
    assert error["code"] == "conflict"
    assert error["message"].startswith(MUST_REMAIN), error
    assert len(active_admins(engine)) == 1


@pytest.mark.parametrize("changes", RING_CHANGES.values(), ids=RING_CHANGES.keys())
def test_three_admins_locking_each_other_out_in_a_ring_at_once_leave_one_admin(
    live_server, accounts, account_rows, holding, app, changes
):
    from product_importer.extensions import db

    with app.app_context():
        engine = db.engine
    three_admins(engine, account_rows)
    # The three requests past their sign-in check, each about to change the next admin: they
    # are served one after the other once the held lock goes. Two changes leave one admin, the
    # one the last request is about to change: that request alone is refused.
    with holding("LOCK TABLE users IN EXCLUSIVE MODE") as held, ThreadPoolExecutor(1) as waiter:
        asked = waiter.submit(around, live_server, accounts, changes)
        held.wait_until_blocking(sessions=len(RING))
        held.release()
        answers = asked.result()

    codes = [answer.status_code for answer in answers]
    assert sorted(codes) == [200, 200, 409], [answer.text for answer in answers]
    refused = codes.index(409)
    error = answers[refused].json()["error"]
    assert error["code"] == "conflict"
    assert error["message"].startswith(MUST_REMAIN), error
    its_target = accounts[RING[(refused + 1) % len(RING)]].email
    assert active_admins(engine) == [its_target]


@pytest.mark.parametrize(("change", "locked_out"), LOCKOUTS, ids=IDS)
def test_admins_locking_each_other_out_leave_an_admin_in_either_mode(
    served, accounts, account_rows, change, locked_out
):
    # Whichever order the two requests take, one admin stays: the other request is refused,
    # with 409 (it was signed in before the first change) or as locked out (after it).
    for _ in range(5):
        two_admins(served.engine, account_rows)
        answers = each_other(served.url, accounts, change)
        codes = sorted(answer.status_code for answer in answers)
        assert codes in ([200, 409], sorted([200, locked_out])), [a.text for a in answers]
        assert len(active_admins(served.engine)) == 1


@pytest.mark.parametrize("changes", RING_CHANGES.values(), ids=RING_CHANGES.keys())
def test_three_admins_in_a_ring_leave_one_admin_in_either_mode(
    served, accounts, account_rows, changes
):
    # Whichever order the requests take, two changes succeed and one admin stays: the third
    # request is refused, with 409 or as locked out (its admin was changed before it).
    for _ in range(3):
        three_admins(served.engine, account_rows)
        answers = around(served.url, accounts, changes)
        codes = [answer.status_code for answer in answers]
        assert codes.count(200) == 2, [answer.text for answer in answers]
        assert {code for code in codes if code != 200} <= {409, 403, 401}, codes
        assert len(active_admins(served.engine)) == 1


# An admin's change of an account (the viewer, or a new one): the audit entry it commits with,
# and the role it leaves the account with.
ACCOUNT_CHANGES = [
    (
        "POST",
        "/api/users",
        {"email": "new@example.test", "role": "editor"},
        "user.created",
        "editor",
    ),
    ("PATCH", "/api/users/3", {"role": "editor"}, "user.changed", "editor"),
    ("POST", "/api/users/3/password", {"revoke_tokens": True}, "user.password_reset", "viewer"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "audited", "role"),
    ACCOUNT_CHANGES,
    ids=["create", "change", "reset"],
)
def test_an_account_change_answers_the_account_as_it_left_it(
    client, sql, method, path, body, audited, role
):
    # Another admin promotes and deactivates the account the moment this change commits: the
    # answer says what this change made, not the account as that one left it right after.
    from product_importer.extensions import db

    changed_after = []

    def change_once_committed(_session) -> None:
        # once this change's own commit is made (not the commit of the token's last use)
        if not changed_after and sql("SELECT 1 FROM audit_log WHERE action = :a", a=audited):
            promoted = "UPDATE users SET role = 'admin', active = false WHERE email IN (:a, :b)"
            changed_after.append(sql(promoted, a="new@example.test", b="viewer@example.test"))

    event.listen(db.session, "after_commit", change_once_committed)
    try:
        answer = client.open(path, method=method, json=body)
    finally:
        event.remove(db.session, "after_commit", change_once_committed)

    assert changed_after, "the account was never changed after the commit"
    assert answer.status_code in (200, 201), answer.get_data(as_text=True)
    assert (answer.get_json()["role"], answer.get_json()["active"]) == (role, True)


def test_one_email_added_twice_at_once_makes_one_account_and_a_409(
    live_server, accounts, holding, sql
):
    # Both requests past their look for the email, each about to add the account: the second
    # finds the first's at the unique index (a 500 before), not at the look.
    accounts_written = "LOCK TABLE users IN EXCLUSIVE MODE"
    new = {"email": "Ana@example.test", "role": "viewer"}
    with ExitStack() as stack, ThreadPoolExecutor(2) as pool:
        held = stack.enter_context(holding(accounts_written))
        admins = [stack.enter_context(http_client(live_server, accounts["admin"].token))] * 2
        asked = [pool.submit(admin.post, "/api/users", json=new) for admin in admins]
        held.wait_until_blocking(sessions=2)
        held.release()
        answers = sorted((answer.result() for answer in asked), key=lambda a: a.status_code)

    assert [answer.status_code for answer in answers] == [201, 409], answers
    assert answers[1].json()["error"]["details"] == {"email": "Already taken."}
    assert sql("SELECT count(*) FROM users WHERE lower(email) = 'ana@example.test'") == [(1,)]
