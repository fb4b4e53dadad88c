"""Values without spaces as long as the API allows (a SKU, a URL, an email) wrap inside their
table cells: no page grows wider than the screen, and every row keeps its buttons in view."""

import pytest
from playwright.sync_api import Page, expect

from .conftest import WIDTHS, sign_in

LONG_SKU = "SKU-" + "9" * 120
LONG_URL = "http://127.0.0.1:9/hooks/" + "x" * 120
LONG_EMAIL = "a.rather.long.address.without.any.space.at.all@subdomain.example.test"
# Neither the page nor a table in it scrolls sideways.
FITS = """() => document.scrollingElement.scrollWidth <= innerWidth
  && [...document.querySelectorAll(".table-wrap")]
    .every((wrap) => wrap.scrollWidth <= wrap.clientWidth)"""


@pytest.fixture
def long_values(http):
    """A product, a webhook and an account whose values have no space to wrap at."""
    product = {"sku": LONG_SKU, "name": "Pen", "description": "Blue"}
    assert http.post("/api/products", json=product).status_code == 201
    hook = {"url": LONG_URL, "events": ["product.created"], "description": "The ERP"}
    assert http.post("/api/webhooks", json=hook).status_code == 201
    assert http.post("/api/users", json={"email": LONG_EMAIL, "role": "viewer"}).status_code == 201


def test_long_values_wrap_inside_their_cells(page: Page, long_values):
    wide = []
    for path in ["/products", "/webhooks", "/users", "/audit"]:
        for width in WIDTHS.values():
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(path)
            page.wait_for_load_state("networkidle")
            expect(page.locator("[aria-busy=true]")).to_have_count(0)
            if not page.evaluate(FITS):
                wide.append(f"{path} at {width} px")
    assert wide == []


# Each select in a table is as wide as its longest option, as it would be on its own.
SELECTS_WHOLE = """() => [...document.querySelectorAll(".table select")].every((select) => {
  const alone = select.cloneNode(true);
  alone.style.position = "absolute";
  alone.style.width = "auto";
  document.body.append(alone);
  const natural = alone.getBoundingClientRect().width;
  alone.remove();
  return select.getBoundingClientRect().width >= natural - 0.5;
})"""


def test_a_long_email_leaves_the_role_beside_it_readable(page: Page, long_values):
    # The email's column took the width and squeezed the role's select to "a…" and "vi…".
    page.goto("/users")
    expect(page.locator("#users-body select")).to_have_count(4)
    for width in WIDTHS.values():
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate(SELECTS_WHOLE), f"a role is cut short at {width} px"


def test_a_webhooks_description_sits_below_its_url_on_a_phone(page: Page, long_values):
    page.set_viewport_size({"width": WIDTHS["phone"], "height": 900})
    page.goto("/webhooks")
    url_cell = page.locator('#webhooks-body td[data-label="URL"]')
    url_box = url_cell.locator(".sku").bounding_box()
    description_box = url_cell.get_by_text("The ERP").bounding_box()
    assert description_box["y"] >= url_box["y"] + url_box["height"]


def test_a_long_url_wraps_above_its_deliveries_on_a_phone(page: Page, long_values):
    page.set_viewport_size({"width": WIDTHS["phone"], "height": 900})
    page.goto("/webhooks")
    page.get_by_role("button", name="Deliveries of").click()
    expect(page.locator("#deliveries-url")).to_have_text(LONG_URL)
    expect(page.get_by_text("No deliveries yet.")).to_be_visible()
    assert page.evaluate(FITS)


ROLE_SHOWN = """() => {
  const badge = document.querySelector("#signed-in-as .badge").getBoundingClientRect();
  const link = document.querySelector("#signed-in-as").getBoundingClientRect();
  return badge.width > 0 && badge.right <= link.right + 0.5;
}"""


def test_pages_that_name_a_long_email_fit_and_still_show_its_role(signed_out_page: Page, http):
    # The account page's header and the upload page's note quote the email: one of 254
    # characters without a space pushed the page wider than a phone; the navigation cut off
    # the role beside it.
    email = "x" * 230 + "@subdomain.example.test"
    made = http.post("/api/users", json={"email": email, "role": "viewer"}).json()
    page = signed_out_page
    sign_in(page, email, made["password"])
    wide = []
    for path in ["/account", "/", "/users"]:  # /users: the 403 that names the account
        for width in WIDTHS.values():
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(path)
            page.wait_for_load_state("networkidle")
            if not page.evaluate(FITS) or not page.evaluate(ROLE_SHOWN):
                wide.append(f"{path} at {width} px")
    assert wide == []


def test_a_webhooks_description_without_spaces_wraps_below_its_url(page: Page, http):
    hook = {"url": LONG_URL, "events": ["product.created"], "description": "D" * 255}
    assert http.post("/api/webhooks", json=hook).status_code == 201
    wide = []
    for width in WIDTHS.values():
        page.set_viewport_size({"width": width, "height": 900})
        page.goto("/webhooks")
        expect(page.locator("#webhooks-body tr")).to_have_count(1)
        if not page.evaluate(FITS):
            wide.append(f"{width} px")
    assert wide == []
