"""An email is one account in any case, beyond ASCII too, in both modes (`api`): on PostgreSQL,
and on SQLite, whose own lower() folds ASCII only and the app's once lowered some letters as
Python does, not as PostgreSQL (a final 'Σ', 'İ')."""

import pytest

from .conftest import post_sign_in

# (as the account was made, as it is typed later): one account, whichever comes first
SPELLINGS = [
    ("JÖRG@example.test", "jörg@example.test"),
    ("ΟΔΥΣΣΕΥΣ@example.test", "οδυσσευσ@example.test"),  # Python lowers the last Σ to ς
    ("İLKER@example.test", "ilker@example.test"),  # Python lowers İ to i and U+0307
]
IDS = ["umlaut", "final-sigma", "dotted-capital-i"]
BOTH_ORDERS = [pair for made, typed in SPELLINGS for pair in ((made, typed), (typed, made))]
BOTH_IDS = [f"{name}-{order}" for name in IDS for order in ("upper-first", "lower-first")]


def add(api, email: str):
    return api.post("/api/users", json={"email": email, "role": "viewer"})


@pytest.mark.parametrize(("made", "typed"), BOTH_ORDERS, ids=BOTH_IDS)
def test_an_email_in_another_case_signs_in_to_the_one_account(api, any_app, made, typed):
    added = add(api, made)
    assert added.status_code == 201, added.get_json()
    password = added.get_json()["password"]

    for email in (made, typed):
        response = post_sign_in(any_app.test_client(), email, password)
        assert response.status_code == 302, (email, response.get_data(as_text=True)[-300:])
    taken = add(api, typed)
    assert taken.status_code == 409, taken.get_json()
    assert taken.get_json()["error"]["details"] == {"email": "Already taken."}
    emails = [user["email"] for user in api.get("/api/users").get_json()["items"]]
    assert emails.count(made) == 1 and typed not in emails


@pytest.mark.parametrize(("made", "typed"), SPELLINGS, ids=IDS)
def test_the_audit_log_finds_an_actor_by_email_in_another_case(api, any_app, made, typed):
    password = add(api, made).get_json()["password"]
    assert post_sign_in(any_app.test_client(), made, password).status_code == 302

    found = api.get("/api/audit", query_string={"actor": typed}).get_json()["items"]

    assert [entry["action"] for entry in found] == ["auth.signed_in"]


def test_an_email_written_with_a_combining_mark_is_the_one_account_typed_without(api, any_app):
    # Pasted from macOS, `ö` is often `o` and U+0308 (NFD); typed, it is one character (NFC):
    # two accounts once, and the person could not sign in with the address as typed.
    pasted, typed = "jo\u0308rg@example.test", "jörg@example.test"
    added = add(api, pasted)
    assert added.status_code == 201, added.get_json()
    assert added.get_json()["email"] == typed  # kept as typed

    for email in (typed, pasted):
        response = post_sign_in(any_app.test_client(), email, added.get_json()["password"])
        assert response.status_code == 302, (email, response.get_data(as_text=True)[-300:])
    taken = add(api, typed)
    assert taken.status_code == 409, taken.get_json()
    found = api.get("/api/audit", query_string={"actor": pasted}).get_json()["items"]
    assert [entry["action"] for entry in found] == ["auth.signed_in", "auth.signed_in"]
