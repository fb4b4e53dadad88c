"""A token that expires cannot make one that outlives it: else a stolen token, or a script's,
would make itself a token that lasts for good, and its expiry would protect nothing."""

from tests.conftest import client_with_token


def make_token(caller, **fields):
    return caller.post("/api/tokens", json={"name": "made by a token", **fields})


def test_a_token_made_by_an_expiring_token_expires_with_it_by_default(app, client_as):
    made = make_token(client_as("editor"), expires_days=7).get_json()
    expiring = client_with_token(app, made["token"])

    child = make_token(expiring)

    assert child.status_code == 201
    assert child.get_json()["expires_at"] == made["expires_at"]


def test_a_token_cannot_make_one_that_expires_later_than_itself(app, client_as):
    made = make_token(client_as("editor"), expires_days=7).get_json()
    expiring = client_with_token(app, made["token"])

    refused = make_token(expiring, expires_days=30)

    assert refused.status_code == 422
    said = refused.get_json()["error"]["details"]["expires_days"]
    assert said.startswith(f"At most until {made['expires_at']}")
    sooner = make_token(expiring, expires_days=1)
    assert sooner.status_code == 201 and sooner.get_json()["expires_at"] < made["expires_at"]


def test_a_person_and_a_lasting_token_still_make_tokens_that_never_expire(
    client_as, browsers, accounts
):
    assert make_token(client_as("viewer")).get_json()["expires_at"] is None
    assert make_token(browsers(accounts["viewer"].email)).json()["expires_at"] is None
