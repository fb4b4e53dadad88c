"""Accounts test helpers: signing in through the form as a browser does, fresh apps, SQL.

A browser here is an httpx client keeping cookies: it reads the sign-in form's CSRF token,
posts the form, and sends the page's CSRF token on state-changing API requests, as app.js does.
"""

import re
import subprocess

import httpx
import pytest
import redis

from tests.conftest import BIN, PASSWORD, REDIS_URL, ROOT, TLS

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def form_token(html: str) -> str:
    """The CSRF token of the page's form."""
    found = CSRF_FIELD.search(html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


def post_sign_in(browser, email: str, password: str = PASSWORD, **more):
    """Post the sign-in form as a person does (with its CSRF token); return the response."""
    token = form_token(browser.get("/login").text)
    data = {"csrf_token": token, "email": email, "password": password, **more}
    return browser.post("/login", data=data)


def signed_in(url: str, email: str, password: str = PASSWORD) -> httpx.Client:
    """A browser signed in through /login, sending the page's CSRF token as app.js does."""
    browser = httpx.Client(base_url=url, timeout=30, verify=TLS)
    response = post_sign_in(browser, email, password)
    assert response.status_code == 302, response.text
    page = browser.get("/account")
    assert page.status_code == 200 and email in page.text
    browser.headers["X-CSRFToken"] = CSRF_META.search(page.text).group(1)
    return browser


def is_signed_in(browser: httpx.Client) -> bool:
    """Whether the browser's session still opens a page (else it is sent to /login)."""
    response = browser.get("/account")
    if response.status_code == 302:
        assert response.headers["location"].startswith("/login?next=")
        return False
    assert response.status_code == 200
    return True


@pytest.fixture
def browsers(live_server):
    """Return a function that signs a new browser in on the live server; all closed after."""
    opened: list[httpx.Client] = []

    def open_as(email: str, password: str = PASSWORD) -> httpx.Client:
        browser = signed_in(live_server, email, password)
        opened.append(browser)
        return browser

    yield open_as
    for browser in opened:
        browser.close()


def clear_sign_in_limits() -> None:
    """Forget every failed sign-in counted in Redis (by the live server and in-process apps)."""
    store = redis.Redis.from_url(REDIS_URL)
    for key in store.scan_iter("*product-importer-limits/*"):
        store.delete(key)


@pytest.fixture(autouse=True)
def _fresh_sign_in_limits(app):
    """Failed sign-ins of one test must not lock another out: reset the limits after each."""
    from product_importer.extensions import limiter

    yield
    with app.app_context():
        limiter.reset()
    clear_sign_in_limits()


@pytest.fixture
def make_app(app):
    """Return a function that makes another app on the test database with some settings."""
    from product_importer import create_app

    def make(**settings):
        return create_app({"TESTING": True, **settings})

    yield make
    # create_app makes its own Celery current and binds the shared limiter to its settings.
    from product_importer.extensions import limiter

    app.extensions["celery"].set_default()
    limiter.init_app(app)


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run `product-importer ARGS` with the test environment, as an operator would."""
    return subprocess.run(
        [str(BIN / "product-importer"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
