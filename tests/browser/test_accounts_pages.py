"""The account pages as a person uses them: sign in and out, first-run setup, one's tokens,
the users page, the audit log, and a 403 that says which role is needed."""

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.accounts.conftest import post_sign_in
from tests.conftest import PASSWORD, http_client

from .conftest import shoot, sign_in


@pytest.fixture(autouse=True)
def _fresh_sign_in_limits(app):
    from tests.accounts.conftest import clear_sign_in_limits

    yield
    clear_sign_in_limits()


def test_sign_in_leads_back_to_the_page_and_sign_out_ends_it(signed_out_page: Page, accounts):
    page = signed_out_page
    page.goto("/products?name=pen")
    expect(page).to_have_url(re.compile(r"/login\?next="))

    page.get_by_label("Email").fill(accounts["editor"].email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(
        "That email and password do not match an active account."
    )
    page.get_by_label("Password").fill(PASSWORD)  # the form shown again keeps email and next
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/products\?name=pen$"))
    expect(page.locator("#signed-in-as")).to_contain_text("editor")

    page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/products")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fproducts$"))


def test_sign_out_in_a_tab_older_than_a_sign_in_says_so_and_signs_out_when_pressed_again(
    signed_out_page: Page, accounts
):
    email = accounts["editor"].email
    old_tab = signed_out_page
    sign_in(old_tab, email)
    old_tab.goto("/products")
    other_tab = old_tab.context.new_page()  # the same browser: the same cookies
    other_tab.goto("/products")
    other_tab.get_by_role("button", name="Sign out").click()
    expect(other_tab).to_have_url(re.compile(r"/login$"))
    sign_in(other_tab, email)

    old_tab.get_by_role("button", name="Sign out").click()

    page_said = old_tab.get_by_role("main")
    expect(page_said).to_contain_text("Your sign-in changed in another tab")
    expect(old_tab.locator("#signed-in-as")).to_contain_text(email)  # still, as it says
    page_said.get_by_role("button", name="Sign out").click()
    expect(old_tab).to_have_url(re.compile(r"/login$"))
    other_tab.goto("/products")
    expect(other_tab).to_have_url(re.compile(r"/login\?next=%2Fproducts$"))


def test_a_sign_in_tab_older_than_another_tabs_sign_in_shows_its_form_again(
    signed_out_page: Page, accounts
):
    first_tab = signed_out_page
    second_tab = first_tab.context.new_page()
    second_tab.goto("/login?next=%2Fproducts")
    sign_in(first_tab, accounts["viewer"].email)
    second_tab.get_by_label("Email").fill(accounts["editor"].email)
    second_tab.get_by_label("Password").fill(PASSWORD)

    second_tab.get_by_role("button", name="Sign in").click()

    expect(second_tab.get_by_role("alert")).to_contain_text("The sign-in form had gone out of date")
    expect(second_tab.get_by_label("Email")).to_have_value(accounts["editor"].email)
    second_tab.get_by_label("Password").fill(PASSWORD)
    second_tab.get_by_role("button", name="Sign in").click()
    expect(second_tab).to_have_url(re.compile(r"/products$"))
    expect(second_tab.locator("#signed-in-as")).to_contain_text(accounts["editor"].email)


def test_the_setup_page_creates_the_first_admin(signed_out_page: Page, app, sql_runner):
    from product_importer.accounts import service
    from product_importer.extensions import db

    sql_runner("TRUNCATE users CASCADE")
    with app.app_context():
        token = service.new_setup_link_token(db.session)
        db.session.commit()
    page = signed_out_page
    page.goto(f"/setup?token={token}")

    page.get_by_label("Email").fill("first@example.test")
    page.get_by_label("Password (at least 10 characters)").fill("the first password")
    page.get_by_label("Password again").fill("the first password")
    page.get_by_role("button", name="Create the admin account").click()

    expect(page.locator("#signed-in-as")).to_contain_text("first@example.test")
    expect(page.get_by_role("link", name="Users")).to_be_visible()
    page.goto(f"/setup?token={token}")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()


@pytest.fixture
def sql_runner(app):
    from sqlalchemy import text

    from product_importer.extensions import db

    def run(statement: str) -> None:
        with app.app_context(), db.engine.begin() as conn:
            conn.execute(text(statement))

    return run


def test_a_new_token_is_shown_once(page: Page, live_server):
    page.goto("/account")
    page.get_by_label("Name").fill("ERP sync")
    page.get_by_label("Role").select_option("viewer")

    page.get_by_role("button", name="Create token").click()

    secret = page.locator("#new-token-value")
    expect(secret).to_have_text(re.compile(r"^pit_"))
    value = secret.text_content()
    row = page.locator("#tokens-body tr", has_text="ERP sync")
    expect(row).to_contain_text(value[:12])
    expect(row).to_contain_text("viewer")
    with httpx.Client(base_url=live_server, headers={"Authorization": f"Bearer {value}"}) as api:
        assert api.get("/api/account").json()["role"] == "viewer"
    page.reload()
    expect(page.locator("#tokens-body tr", has_text="ERP sync")).to_be_visible()
    expect(page.locator("#new-token")).to_be_hidden()
    assert value not in page.content()


def test_revoking_the_token_just_made_takes_its_secret_off_the_page(page: Page, http):
    # "Copy your new token now" stayed on screen, with the secret, for a token that no
    # longer works; revoking another token leaves it.
    assert http.post("/api/tokens", json={"name": "Shop feed"}).status_code == 201
    page.goto("/account")
    page.get_by_label("Name").fill("ERP sync")
    page.get_by_role("button", name="Create token").click()
    shown = page.locator("#new-token")
    expect(shown).to_contain_text("pit_")
    page.on("dialog", lambda dialog: dialog.accept())

    page.locator("#tokens-body tr", has_text="Shop feed").get_by_role(
        "button", name="Revoke"
    ).click()
    expect(page.locator("#notices")).to_contain_text('Token "Shop feed" revoked.')
    expect(shown).to_be_visible()

    page.locator("#tokens-body tr", has_text="ERP sync").get_by_role(
        "button", name="Revoke"
    ).click()
    expect(page.locator("#notices")).to_contain_text('Token "ERP sync" revoked.')
    expect(shown).to_be_hidden()
    expect(page.locator("#new-token-value")).to_have_text("")


def test_revoking_a_token_with_the_keyboard_keeps_the_focus_in_the_list(page: Page, http):
    for name in ("ERP sync", "Shop feed"):
        assert http.post("/api/tokens", json={"name": name}).status_code == 201
    page.goto("/account")
    row = page.locator("#tokens-body tr", has_text="ERP sync")
    row.get_by_role("button", name="Revoke").focus()
    page.once("dialog", lambda dialog: dialog.accept())

    page.keyboard.press("Enter")

    expect(page.locator("#notices")).to_contain_text('Token "ERP sync" revoked.')
    expect(row).to_have_count(0)
    # the row that took its place: the next Tab does not start again from the page's top
    expect(
        page.locator("#tokens-body tr", has_text="Shop feed").get_by_role("button", name="Revoke")
    ).to_be_focused()


def test_revoking_a_token_says_the_tokens_made_with_it_go_too(page: Page, live_server, artifacts):
    page.goto("/account")
    page.get_by_label("Name").fill("Deploy")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token-value")
    expect(secret).to_have_text(re.compile(r"^pit_"))
    with http_client(live_server, secret.text_content()) as deploy:  # a script's own helper
        assert deploy.post("/api/tokens", json={"name": "Deploy helper"}).status_code == 201
    page.reload()
    helper = page.locator("#tokens-body tr", has_text="Deploy helper")
    expect(helper.locator("td[data-label=Name]")).to_have_text('Deploy helper (made with "Deploy")')
    shoot(page, artifacts, "accounts-account-made-with")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))

    parent = page.locator("#tokens-body tr").filter(has=page.get_by_text("Deploy", exact=True))
    parent.get_by_role("button", name="Revoke").click()

    expect(page.locator("#notices")).to_contain_text('Token "Deploy" revoked, with 1 made with it.')
    expect(helper).to_have_count(0)
    assert asked == [
        'Revoke the token "Deploy"? Scripts using it stop working at once. "Deploy helper", '
        "made with it, is revoked too."
    ]


def revoked_token_notice(page: Page, http):
    """Revoke a token on /account, the page's timers held (they run when the test says, not
    with the clock); return the notice that says so."""
    assert http.post("/api/tokens", json={"name": "ERP sync"}).status_code == 201
    page.clock.install()
    page.goto("/account")
    page.once("dialog", lambda dialog: dialog.accept())
    row = page.locator("#tokens-body tr", has_text="ERP sync")
    row.get_by_role("button", name="Revoke").click()
    notice = page.locator(".notice", has_text='Token "ERP sync" revoked.')
    expect(notice).to_be_visible()
    return notice


def test_a_notice_stays_while_it_is_pointed_at_or_focused(page: Page, http):
    # Notices went after 6 s (errors 12 s) whatever the reader did: one read slowly, or
    # reached with Tab to be read by a screen reader, was gone mid-sentence (WCAG 2.2.1).
    notice = revoked_token_notice(page, http)

    notice.hover()
    page.clock.run_for(60_000)  # a minute of reading
    expect(notice).to_be_visible()
    notice.get_by_role("button", name="Dismiss notice").focus()
    page.mouse.move(0, 0)
    page.clock.run_for(60_000)
    expect(notice).to_be_visible()

    page.keyboard.press("Shift+Tab")  # the focus leaves it too
    page.clock.run_for(6_100)
    expect(notice).to_have_count(0)


def test_a_tapped_notice_goes_in_its_time_on_a_touch_screen(
    browser, live_server, live_worker, accounts, http
):
    # A tap counts as a pointer resting on the notice (touch screens keep :hover after a
    # tap): a notice once tapped stayed until something else was tapped.
    context = browser.new_context(
        base_url=live_server, viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    try:
        page = context.new_page()
        sign_in(page, accounts["admin"].email)
        notice = revoked_token_notice(page, http)

        notice.locator(".notice-text").tap()
        page.clock.run_for(6_100)
        expect(notice).to_have_count(0)
    finally:
        context.close()


def test_a_demoted_owners_token_shows_the_role_it_acts_with(page: Page, client_as, client):
    made = client_as("editor").post("/api/tokens", json={"name": "Nightly sync"}).get_json()
    assert made["role"] == "editor"
    assert client.patch("/api/users/2", json={"role": "viewer"}).status_code == 200

    page.goto("/account")

    row = page.locator("#tokens-body tr", has_text="Nightly sync")
    expect(row.locator("td[data-label=Role]")).to_have_text("viewer (made as editor)")


def test_the_users_page_adds_an_account_changes_its_role_and_deactivates_it(
    page: Page, live_server, client
):
    page.goto("/users")
    page.get_by_label("Email").fill("ana@example.test")
    page.get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_role("button", name="Add account").click()

    expect(page.locator("#new-password-for")).to_contain_text("ana@example.test")
    password = page.locator("#new-password-value").text_content()
    with httpx.Client(base_url=live_server) as browser:
        assert post_sign_in(browser, "ana@example.test", password).status_code == 302
    row = page.locator("#users-body tr", has_text="ana@example.test")
    expect(row).to_contain_text("Active")

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_label("Role of ana@example.test").select_option("editor")
    expect(page.locator("#notices")).to_contain_text("ana@example.test is now editor.")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    row.get_by_role("button", name="Deactivate").click()

    expect(row).to_contain_text("Deactivated")
    assert asked == [
        "Deactivate ana@example.test? Their sessions end and their tokens are revoked at once, "
        "for good."
    ]
    expect(page.locator("#notices")).to_contain_text("signed out, tokens revoked.")
    expect(page.locator("#deactivation-note")).to_contain_text("makes new tokens")
    (ana,) = [u for u in client.get("/api/users").get_json()["items"] if u["id"] == 4]
    assert (ana["role"], ana["active"]) == ("editor", False)
    expect(page.locator("#users-body tr", has_text="admin@example.test")).to_contain_text("(you)")


@pytest.mark.parametrize("revoke", [False, True], ids=["keeps-tokens", "revokes-tokens"])
def test_a_password_reset_may_revoke_the_accounts_tokens_too(
    page: Page, live_server, accounts, artifacts, revoke
):
    page.goto("/users")
    row = page.locator("#users-body tr", has_text=accounts["viewer"].email)
    row.get_by_role("button", name="Reset password").click()
    dialog = page.get_by_role("dialog", name="Reset password")
    expect(dialog).to_contain_text(f"Give {accounts['viewer'].email} a new password?")
    box = dialog.get_by_label("Also revoke their tokens")
    expect(box).not_to_be_checked()
    if revoke:
        box.check()
        shoot(page, artifacts, "accounts-reset-dialog")
    dialog.get_by_role("button", name="Reset password").click()

    shown = page.locator("#new-password-box")
    expect(shown).to_be_focused()
    said = f"New password for {accounts['viewer'].email} (shown only once; it works until changed):"
    expect(page.locator("#new-password-for")).to_have_text(
        said + (" Their tokens are revoked (1)." if revoke else "")
    )
    password = page.locator("#new-password-value").text_content()
    with httpx.Client(base_url=live_server) as browser:
        assert post_sign_in(browser, accounts["viewer"].email, password).status_code == 302
    with http_client(live_server, accounts["viewer"].token) as script:
        assert script.get("/api/account").status_code == (401 if revoke else 200)


def test_an_account_whose_email_is_not_ascii_is_added_and_signs_in(
    page: Page, browser, live_server, client
):
    # Chromium's type=email refused to send jörg@… ("should not contain the symbol 'ö'") and
    # spelled a domain such as exämple.test in punycode, which no account holds.
    page.goto("/users")
    page.get_by_label("Email").fill("  Jörg.Müller@Exämple.test ")  # pasted, spaces and all
    page.get_by_role("button", name="Add account").click()
    expect(page.locator("#new-password-for")).to_contain_text("Account Jörg.Müller@Exämple.test")
    password = page.locator("#new-password-value").text_content()
    emails = [user["email"] for user in client.get("/api/users").get_json()["items"]]
    assert "Jörg.Müller@Exämple.test" in emails

    context = browser.new_context(base_url=live_server)
    try:
        sign_in(context.new_page(), "Jörg.Müller@Exämple.test", password)
    finally:
        context.close()


def test_a_page_above_ones_role_says_which_role_is_needed(signed_out_page: Page, accounts):
    sign_in(signed_out_page, accounts["viewer"].email)

    response = signed_out_page.goto("/users")

    assert response.status == 403
    expect(signed_out_page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(signed_out_page.locator("main")).to_contain_text("This needs the admin role")


def test_the_audit_page_lists_entries_and_filters_them(signed_out_page: Page, client_as, accounts):
    page = signed_out_page
    sign_in(page, accounts["admin"].email)  # through the page: its entry is listed
    editor = client_as("editor")
    for sku in ("A-1", "B-2"):
        editor.post("/api/products", json={"sku": sku, "name": sku})
    editor.delete("/api/products/1")

    page.goto("/audit")
    rows = page.locator("#audit-table tbody tr")
    expect(rows.first).to_contain_text("product.deleted")  # newest first
    expect(page.get_by_text("auth.signed_in")).to_be_visible()  # this page's own sign-in

    page.get_by_label("Action").fill("product.created")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)
    expect(page.get_by_role("status")).to_contain_text("2 entries")
    page.get_by_label("Account (email)").fill("admin@example.test")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_text(["Nothing recorded matches these filters."])


def test_the_users_list_keeps_the_focus_on_the_control_just_used(page: Page):
    page.goto("/users")
    row = page.locator("#users-body tr", has_text="editor@example.test")
    role = row.get_by_label("Role of editor@example.test")
    role.focus()
    page.once("dialog", lambda dialog: dialog.accept())
    page.keyboard.press("ArrowDown")  # a closed select takes the next option at once: admin

    expect(page.locator("#notices")).to_contain_text("editor@example.test is now admin.")
    expect(role).to_have_value("admin")
    expect(role).to_be_focused()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Deactivate").focus()
    page.keyboard.press("Enter")

    expect(row).to_contain_text("Deactivated")
    expect(row.get_by_role("button", name="Reactivate")).to_be_focused()


def test_a_role_changes_only_once_the_admin_confirms_it(page: Page, client):
    page.goto("/users")
    role = page.locator("#users-body tr", has_text="editor@example.test").get_by_label(
        "Role of editor@example.test"
    )
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))

    role.focus()
    page.keyboard.press("ArrowDown")  # the next option, admin, a key press away

    expect(role).to_have_value("editor")
    assert asked == ["Change the role of editor@example.test from editor to admin?"]
    (editor,) = [u for u in client.get("/api/users").get_json()["items"] if u["id"] == 2]
    assert editor["role"] == "editor"
