"""First run: while no account exists, the one-time /setup link creates the first admin."""

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import form_token, is_signed_in

ADMIN = {"email": "first@example.test", "password": "the first password", "confirm": ""}


@pytest.fixture
def no_accounts(app, sql):
    """No account at all, as on a fresh install; return a new setup link's token."""
    from product_importer.accounts import service
    from product_importer.extensions import db

    sql("TRUNCATE users CASCADE")
    with app.app_context():
        token = service.new_setup_link_token(db.session)
        db.session.commit()
    assert token
    return token


@pytest.fixture
def browser(live_server):
    with httpx.Client(base_url=live_server, timeout=30) as client:
        yield client


def post_setup(browser, token: str, **fields):
    page = browser.get("/setup", params={"token": token})
    assert page.status_code == 200, page.text
    data = {**ADMIN, "confirm": ADMIN["password"], **fields}
    return browser.post(
        "/setup", data={"csrf_token": form_token(page.text), "token": token, **data}
    )


def test_the_setup_link_creates_the_first_admin_signed_in(browser, no_accounts, sql):
    response = post_setup(browser, no_accounts)

    assert response.status_code == 302 and response.headers["location"] == "/"
    assert is_signed_in(browser)
    account = browser.get("/api/account").json()
    assert (account["account"]["email"], account["role"]) == ("first@example.test", "admin")
    assert sql("SELECT email, role FROM users") == [("first@example.test", "admin")]
    # The link is spent: it is not there any more, for anyone.
    assert browser.get("/setup", params={"token": no_accounts}).status_code == 404
    with httpx.Client(base_url=str(browser.base_url)) as other:
        assert other.get("/setup", params={"token": no_accounts}).status_code == 404


def test_the_first_admins_sign_in_by_the_setup_link_is_in_the_audit_log(browser, no_accounts, sql):
    assert post_setup(browser, no_accounts).status_code == 302

    log = sql("SELECT actor_email, action, target FROM audit_log ORDER BY id")
    assert [tuple(row) for row in log] == [
        ("first@example.test", "user.created", "first@example.test"),
        ("first@example.test", "auth.signed_in", "first@example.test"),
    ]


def test_the_first_admins_sign_in_by_the_setup_link_shows_as_their_last_sign_in(
    browser, no_accounts
):
    # The Users page said "never" beside an admin the audit log showed signed in.
    assert post_setup(browser, no_accounts).status_code == 302

    [admin] = browser.get("/api/users").json()["items"]
    assert admin["last_sign_in_at"] is not None


def test_the_sign_in_page_of_a_fresh_install_points_to_the_setup_link(browser, no_accounts):
    # It said "Ask an admin of this Product Importer to add you" while there was no one.
    page = browser.get("/login")

    assert page.status_code == 200
    assert "No account exists yet" in page.text and "setup link" in page.text
    assert "Ask an admin" not in page.text
    assert no_accounts not in page.text  # the link itself is for whoever reads the terminal


def test_the_sign_in_page_sends_newcomers_to_an_admin_once_one_exists(browser, accounts):
    page = browser.get("/login")

    assert "Ask an admin of this Product Importer to add you." in page.text
    assert "No account exists yet" not in page.text


def test_a_wrong_setup_token_finds_nothing(browser, no_accounts, sql):
    assert browser.get("/setup", params={"token": "setup_wrong"}).status_code == 404
    assert browser.get("/setup").status_code == 404
    page = browser.get("/setup", params={"token": no_accounts})
    data = {"csrf_token": form_token(page.text), "token": "setup_wrong", **ADMIN}
    assert browser.post("/setup", data=data).status_code == 404
    assert sql("SELECT count(*) FROM users") == [(0,)]


def test_setup_shows_what_is_wrong_and_creates_nothing(browser, no_accounts, sql):
    differ = post_setup(browser, no_accounts, confirm="another password")
    assert differ.status_code == 422
    # on the first field, where the page opens: both come back empty, and focused on the
    # second a person typed there alone and was refused again
    said = "The two passwords differed: type the password in both fields."
    assert f'<p class="field-error" id="setup-password-error">{said}</p>' in differ.text
    assert re.search(r'id="setup-password"[^>]* autofocus', differ.text)
    short = post_setup(browser, no_accounts, password="short", confirm="short")
    assert short.status_code == 422 and "Use at least 10 characters." in short.text
    assert sql("SELECT count(*) FROM users") == [(0,)]
    assert post_setup(browser, no_accounts).status_code == 302  # the link still works


def test_setup_trims_the_spaces_around_a_pasted_email(browser, no_accounts, sql):
    # The page's email field is text (type=email refused jörg@…): it sends what was pasted.
    response = post_setup(browser, no_accounts, email="  First@example.test ")

    assert response.status_code == 302, response.text
    assert sql("SELECT email FROM users") == [("First@example.test",)]


def test_the_setup_link_is_dead_once_an_account_exists(browser, no_accounts, client, app):
    from product_importer.accounts import service
    from product_importer.extensions import db

    with app.app_context():
        service.create_user(db.session, email="ops@example.test", role="admin", password="x" * 12)
        db.session.commit()
        assert service.new_setup_link_token(db.session) is None

    assert browser.get("/setup", params={"token": no_accounts}).status_code == 404


def test_two_forms_sent_through_the_setup_link_at_once_make_one_admin(
    live_server, no_accounts, holding, sql
):
    # A double click, or the link opened twice: both forms are past the link's check when the
    # held lock goes. The link made two admins before.
    people = [httpx.Client(base_url=live_server, timeout=30) for _ in range(2)]
    forms = []
    for number, person in enumerate(people):
        page = person.get("/setup", params={"token": no_accounts})
        email = f"first{number}@example.test"
        fields = {**ADMIN, "email": email, "confirm": ADMIN["password"]}
        forms.append({"csrf_token": form_token(page.text), "token": no_accounts, **fields})
    with (
        holding("LOCK TABLE setup_tokens IN EXCLUSIVE MODE") as held,
        ThreadPoolExecutor(2) as pool,
    ):
        asked = [pool.submit(p.post, "/setup", data=f) for p, f in zip(people, forms, strict=True)]
        held.wait_until_blocking(sessions=2)
        held.release()
        answers = sorted((answer.result() for answer in asked), key=lambda a: a.status_code)
    for person in people:
        person.close()

    assert [answer.status_code for answer in answers] == [302, 404], answers
    assert "This setup link is not valid" in answers[1].text
    assert len(sql("SELECT email FROM users")) == 1


def test_a_setup_form_with_a_stale_token_is_shown_again_and_makes_no_account(
    browser, no_accounts, sql
):
    browser.get("/setup", params={"token": no_accounts})
    form = {**ADMIN, "confirm": ADMIN["password"], "token": no_accounts}
    as_a_page = {"Accept": "text/html"}

    refused = browser.post("/setup", data=form | {"csrf_token": "stale"}, headers=as_a_page)

    assert refused.status_code == 403
    assert "so no account was made" in refused.text
    assert f'value="{ADMIN["email"]}"' in refused.text  # the email stays filled in
    assert sql("SELECT count(*) FROM users") == [(0,)]
    made = browser.post("/setup", data=form | {"csrf_token": form_token(refused.text)})
    assert made.status_code == 302
    assert sql("SELECT email FROM users") == [(ADMIN["email"],)]


def test_a_stale_setup_form_of_a_spent_link_says_the_link_is_spent(
    browser, live_server, no_accounts
):
    stale = form_token(browser.get("/setup", params={"token": no_accounts}).text)
    with httpx.Client(base_url=live_server) as other_browser:  # the admin made elsewhere
        assert post_setup(other_browser, no_accounts).status_code == 302
    browser.cookies.clear()  # and this browser's session gone (its cookies cleared, say)
    form = {**ADMIN, "confirm": ADMIN["password"], "token": no_accounts, "csrf_token": stale}

    refused = browser.post("/setup", data=form, headers={"Accept": "text/html"})

    assert refused.status_code == 404
    assert "This setup link is not valid" in refused.text
