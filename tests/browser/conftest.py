"""Browser fixtures: Playwright driving Debian's Chromium against the live server."""

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The reports of each test's phases (setup, call), kept for its page's teardown.
REPORTS = pytest.StashKey[dict]()

# Imports run in a real worker, on a machine that may be busy: expectations wait for a state,
# and only fail if it never comes.
expect.set_options(timeout=30_000)


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item):
    """Keep each phase's report on the test, for `signed_out_page` to see whether it failed."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def signed_out_page(browser, live_server, live_worker, artifacts, request):
    """A fresh page on the live server, signed in as no one; if the test fails, a screenshot
    of the page as it failed is saved (artifacts/<test>.png)."""
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    # Only then: a full-page screenshot costs ~0.3 s of a core, ~190 browser tests a run.
    if any(report.failed for report in request.node.stash.get(REPORTS, {}).values()):
        name = request.node.name.replace("/", "_")
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    context.close()


@pytest.fixture(scope="session")
def admin_sign_in() -> dict:
    """The admin's sign-in made through the sign-in page by the first test that asks: its
    cookies, and the rows it wrote (each test's reset deletes them)."""
    return {}


@pytest.fixture
def page(signed_out_page, accounts, admin_sign_in, sql):
    """A fresh page, signed in as the admin: through the sign-in page once per test process,
    then with that sign-in's cookies and rows (a second less each; the tests of signing in
    use the page). It may be blank: each test opens the page it tests, so the re-used sign-in
    is checked through the API (loading a page for it was ~9% of the browser tests' CPU)."""
    context, email = signed_out_page.context, accounts["admin"].email
    if not admin_sign_in:
        sign_in(signed_out_page, email)
        rows = {"session": sql(SIGN_IN_ROW, email=email)[0], "audit": sql(SIGN_IN_AUDIT)[0]}
        admin_sign_in.update(cookies=context.cookies(), **rows)
    else:
        sql(KEEP_SIGN_IN, **admin_sign_in["session"]._asdict())
        sql(KEEP_SIGN_IN_AUDIT, **admin_sign_in["audit"]._asdict())
        context.add_cookies(admin_sign_in["cookies"])
        account = context.request.get("/api/account")
        assert account.ok and account.json()["account"]["email"] == email, account.text()
    return signed_out_page


# What a sign-in writes: its session, the account's last sign-in, the audit log's entry.
SIGN_IN_ROW = (
    "SELECT s.user_id, s.key_hash FROM sign_in_sessions AS s JOIN users AS u ON u.id = s.user_id "
    "WHERE u.email = :email"
)
KEEP_SIGN_IN = """
WITH signed_in AS (UPDATE users SET last_sign_in_at = now() WHERE id = :user_id)
INSERT INTO sign_in_sessions (user_id, key_hash, created_at, last_seen_at)
VALUES (:user_id, :key_hash, now(), now())
"""
SIGN_IN_AUDIT = (
    "SELECT actor_id, actor_email, client_address, action, target, details::text AS details "
    "FROM audit_log WHERE action = 'auth.signed_in' ORDER BY id DESC LIMIT 1"
)
KEEP_SIGN_IN_AUDIT = """
INSERT INTO audit_log (at, actor_id, actor_email, client_address, action, target, details)
VALUES (now(), :actor_id, :actor_email, :client_address, :action, :target, CAST(:details AS json))
"""


WIDTHS = {"desktop": 1366, "phone": 390}
NO_SIDEWAYS_SCROLL = "document.scrollingElement.scrollWidth <= window.innerWidth"


def shoot(page, artifacts, name: str) -> None:
    """Screenshot the page at a desktop's and a phone's width (artifacts/<name>-<width>.png);
    it must not scroll sideways. The page is left at its usual size."""
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_load_state("networkidle")
        assert page.evaluate(NO_SIDEWAYS_SCROLL), f"{name} scrolls sideways at {width} px"
        page.screenshot(path=str(artifacts / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def sign_in(page, email: str, password: str = PASSWORD) -> None:
    """Sign in through the page, as a person does; wait until the app shows who it is."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signed-in-as")).to_contain_text(email)
