"""Each role sees only what it may do; every page works under the Content-Security-Policy and
fits a phone and a desktop screen."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.helpers import import_csv

from .conftest import shoot, sign_in

NAV = {
    "viewer": ["Imports", "Products", "Webhooks"],
    "editor": ["Upload", "Imports", "Products", "Webhooks"],
    "admin": ["Upload", "Imports", "Products", "Webhooks", "Users", "Audit"],
}


HOOK_URL = "http://ops:hunter2@127.0.0.1:9/hook"


@pytest.fixture
def catalog_with_everything(http):
    """A product, a webhook with a delivery, and a failed import: something to act on."""
    hook = {"url": HOOK_URL, "events": ["product.created"]}
    assert http.post("/api/webhooks", json=hook).status_code == 201
    assert http.post("/api/products", json={"sku": "P-1", "name": "Pen"}).status_code == 201
    # a file without a sku column: editors may choose its columns and retry
    assert import_csv(http, "name\nNo SKU column\n")["status"] == "failed"


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
def test_each_role_sees_only_the_actions_it_may_take(
    signed_out_page: Page, accounts, role, catalog_with_everything, artifacts
):
    page = signed_out_page
    sign_in(page, accounts[role].email)
    editor, admin = role != "viewer", role == "admin"

    links = page.get_by_role("navigation", name="Main").locator(".nav-links a")
    expect(links).to_have_text(NAV[role])
    expect(page.locator("#signed-in-as")).to_have_text(f"{accounts[role].email} {role}")

    page.goto("/products")
    expect(page.locator("#products-body tr")).to_have_count(1)
    row = page.locator("#products-body tr").first
    expect(row.get_by_role("button", name="Edit P-1")).to_have_count(int(editor))
    expect(row.get_by_role("button", name="Delete P-1")).to_have_count(int(editor))
    expect(page.get_by_role("button", name="New product")).to_have_count(int(editor))
    expect(page.get_by_role("button", name="Delete all products")).to_have_count(int(admin))

    page.goto("/webhooks")
    hook_row = page.locator("#webhooks-body tr").first
    expect(hook_row.get_by_role("button", name="Deliveries of")).to_be_visible()
    # the password in the URL is the admin's to see
    expect(hook_row).to_contain_text(HOOK_URL if admin else "http://***@127.0.0.1:9/hook")
    if not admin:
        expect(hook_row).not_to_contain_text("hunter2")
    shoot(page, artifacts, f"webhooks-as-{role}")
    for action in ("Test", "Edit", "Delete"):
        expect(hook_row.get_by_role("button", name=f"{action} http")).to_have_count(int(admin))
    expect(page.get_by_role("button", name="Add webhook")).to_have_count(int(admin))
    switch = hook_row.get_by_role("switch")
    expect(switch).to_be_enabled() if admin else expect(switch).to_be_disabled()
    hook_row.get_by_role("button", name="Deliveries of").click()
    expect(page.locator("#deliveries-body tr")).to_have_count(1)
    redeliver = page.locator("#deliveries-body").get_by_role("button", name="Redeliver")
    expect(redeliver).to_have_count(int(admin))

    page.goto("/imports")
    expect(page.locator("#imports-body tr")).to_have_count(1)
    expect(page.get_by_role("link", name="Choose the columns of import")).to_have_count(int(editor))
    expect(page.get_by_role("link", name="Import a file")).to_have_count(int(editor))

    page.goto("/")
    expect(page.locator("#file-input")).to_have_count(int(editor))
    not_allowed = page.get_by_text("Uploading needs the editor role")
    expect(not_allowed).to_have_count(int(not editor))


PAGES = ["/", "/imports", "/products", "/webhooks", "/account", "/users", "/audit", "/nowhere"]
WATCH_CSP = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) =>
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`));
"""


def test_every_page_works_under_the_content_security_policy(
    signed_out_page: Page, accounts, catalog_with_everything
):
    page = signed_out_page
    page.add_init_script(WATCH_CSP)
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto("/login")
    assert page.evaluate("window.__violations") == []

    sign_in(page, accounts["admin"].email)
    for path in PAGES:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        violations = page.evaluate("window.__violations")
        assert violations == [], (path, violations)
    page.goto("/products")
    page.get_by_role("button", name="New product").click()  # a dialog, styled by the sheet
    expect(page.get_by_role("dialog", name="New product")).to_be_visible()
    assert page.evaluate("window.__violations") == []
    # The 404 page's own status is the one console error a browser reports.
    assert [p for p in problems if "404" not in p] == []


def test_the_signed_out_pages_fit_a_phone_and_a_desktop(signed_out_page: Page, app, artifacts):
    from product_importer.accounts import service
    from product_importer.extensions import db

    page = signed_out_page
    page.add_init_script(WATCH_CSP)
    page.goto("/login")
    page.get_by_label("Email").fill("someone@example.test")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    shoot(page, artifacts, "accounts-login-failed")
    with app.app_context():
        db.session.execute(db.text("TRUNCATE users CASCADE"))
        token = service.new_setup_link_token(db.session)
        db.session.commit()
    page.goto(f"/setup?token={token}")
    page.get_by_label("Email").fill("first@example.test")
    page.get_by_label("Password (at least 10 characters)").fill("short")
    page.get_by_label("Password again").fill("short")
    page.get_by_role("button", name="Create the admin account").click()
    expect(page.get_by_text("Use at least 10 characters.")).to_be_visible()
    shoot(page, artifacts, "accounts-setup-invalid")
    assert page.evaluate("window.__violations") == []  # the CSP lets these pages work too


def test_the_signed_in_account_pages_fit_a_phone_and_a_desktop(
    signed_out_page: Page, accounts, artifacts, client_as, catalog_with_everything
):
    page = signed_out_page
    client_as("admin").post("/api/users", json={"email": "ana@example.test", "role": "editor"})
    sign_in(page, accounts["admin"].email)
    page.goto("/account")
    page.get_by_label("Name").fill("A token with a long name for the nightly ERP sync")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#new-token-value")).to_have_text(re.compile("^pit_"))
    shoot(page, artifacts, "accounts-account")
    page.goto("/users")
    expect(page.locator("#users-body tr")).to_have_count(4)
    shoot(page, artifacts, "accounts-users")
    page.goto("/audit")
    shoot(page, artifacts, "accounts-audit")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, accounts["viewer"].email)
    page.goto("/products")
    expect(page.locator("#products-body tr")).to_have_count(1)
    shoot(page, artifacts, "accounts-products-as-viewer")
    page.goto("/")
    shoot(page, artifacts, "accounts-upload-as-viewer")
    page.goto("/users")
    shoot(page, artifacts, "accounts-forbidden")
