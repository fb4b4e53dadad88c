"""The products page: filter and page through the catalog, create, edit and delete products."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.helpers import import_csv


def catalog(count: int) -> str:
    """A CSV of `count` products: odd ones blue widgets, even ones red gadgets, every 4th inactive,
    every 3rd made of steel."""
    lines = ["sku,name,description,active"]
    for n in range(1, count + 1):
        name = f"Blue widget {n}" if n % 2 else f"Red gadget {n}"
        material = "steel" if n % 3 == 0 else "wood"
        lines.append(f"SKU-{n:03d},{name},Made of {material},{'no' if n % 4 == 0 else 'yes'}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def seed(http):
    """Import a CSV through the API; fail the test unless it imports cleanly."""

    def seed(content: str) -> dict:
        job = import_csv(http, content)
        assert job["status"] == "completed", job
        return job

    return seed


def rows(page: Page):
    return page.locator("#products-body tr")


def filters(page: Page):
    return page.get_by_role("search", name="Filter products")


def pager(page: Page, where: str = "Pages"):
    """The page controls below the table ("Pages") or above it ("Pages, above the table")."""
    return page.get_by_role("navigation", name=where, exact=True)


def skus(page: Page) -> list[str]:
    return page.locator('#products-body td[data-label="SKU"]').all_inner_texts()


def test_filter_sort_and_paginate(page: Page, seed):
    seed(catalog(120))
    page.goto("/products")
    expect(page.get_by_role("link", name="Products")).to_have_attribute("aria-current", "page")
    expect(page.locator("#list-summary")).to_have_text("120 products")
    expect(pager(page).get_by_text("Page 1 of 3")).to_be_visible()
    expect(rows(page)).to_have_count(50)
    first_page = skus(page)

    pager(page).get_by_role("link", name="Page 2", exact=True).click()
    expect(pager(page).get_by_text("Page 2 of 3")).to_be_visible()
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(pager(page).get_by_role("link", name="Page 2", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    expect(rows(page).first).not_to_have_text(first_page[0])
    assert not set(skus(page)) & set(first_page)
    pager(page).get_by_role("link", name="Next page").click()
    expect(pager(page).get_by_text("Page 3 of 3")).to_be_visible()
    expect(rows(page)).to_have_count(20)
    page.go_back()
    expect(pager(page).get_by_text("Page 2 of 3")).to_be_visible()

    filters(page).get_by_label("Name").fill("gadget")
    expect(page.locator("#list-summary")).to_have_text("60 products match the filters")
    expect(pager(page).get_by_text("Page 1 of 2")).to_be_visible()
    filters(page).get_by_label("Status").select_option("Inactive")
    expect(page.locator("#list-summary")).to_have_text("30 products match the filters")
    filters(page).get_by_label("SKU").fill("sku-00")
    expect(page.locator("#list-summary")).to_have_text("2 products match the filters")
    assert sorted(skus(page)) == ["SKU-004", "SKU-008"]
    expect(rows(page).first.get_by_text("Inactive")).to_be_visible()

    page.reload()  # the filters live in the address
    expect(filters(page).get_by_label("Name")).to_have_value("gadget")
    expect(page.locator("#list-summary")).to_have_text("2 products match the filters")

    filters(page).get_by_label("Description").fill("steel")
    expect(page.get_by_text("No products match these filters")).to_be_visible()
    page.get_by_role("button", name="Clear filters").click()
    expect(page.locator("#list-summary")).to_have_text("120 products")

    page.get_by_role("button", name="SKU", exact=True).click()
    expect(rows(page).first.locator('[data-label="SKU"]')).to_have_text("SKU-001")
    page.get_by_role("button", name="SKU", exact=True).click()
    expect(rows(page).first.locator('[data-label="SKU"]')).to_have_text("SKU-120")


def table_top(page: Page) -> float:
    """Where the page controls above the table are, from the top of the window (px)."""
    return page.evaluate("document.getElementById('pagination-top').getBoundingClientRect().top")


@pytest.mark.parametrize("width", [1366, 390])
def test_a_new_page_starts_at_the_table_top_with_the_focus_there(page: Page, seed, width):
    seed(catalog(120))
    page.set_viewport_size({"width": width, "height": 800})
    page.goto("/products")
    expect(pager(page, "Pages, above the table").get_by_text("Page 1 of 3")).to_be_visible()
    expect(pager(page).get_by_text("Page 1 of 3")).to_be_visible()
    pager(page).get_by_role("link", name="Page 2", exact=True).scroll_into_view_if_needed()
    assert table_top(page) < 0  # scrolled down to the controls below the table

    pager(page).get_by_role("link", name="Page 2", exact=True).click()

    expect(pager(page).get_by_text("Page 2 of 3")).to_be_visible()
    expect(page.locator("#products-table")).to_be_focused()
    assert 0 <= table_top(page) < 800 / 4, table_top(page)

    pager(page, "Pages, above the table").get_by_label("Go to page").fill("3")
    pager(page, "Pages, above the table").get_by_label("Go to page").press("Enter")
    expect(pager(page).get_by_text("Page 3 of 3")).to_be_visible()
    expect(page).to_have_url(re.compile(r"page=3"))
    expect(rows(page)).to_have_count(20)
    expect(page.locator("#products-table")).to_be_focused()


def test_a_page_past_the_last_shows_the_last(page: Page, seed):
    seed(catalog(120))
    page.goto("/products?page=999999")
    expect(pager(page).get_by_text("Page 3 of 3")).to_be_visible()
    expect(rows(page)).to_have_count(20)
    expect(page).to_have_url(re.compile(r"page=3$"))


def test_an_address_with_values_the_controls_do_not_offer_shows_the_products(page: Page, seed):
    seed(catalog(3))

    page.goto("/products?active=yes&sort=price&per_page=500&name=widget")

    expect(page.locator("#list-summary")).to_have_text("2 products match the filters")
    expect(filters(page).get_by_label("Status")).to_have_value("")
    expect(page.get_by_label("Per page")).to_have_value("50")
    expect(page.get_by_label("Sort")).to_have_value("-updated_at")
    expect(page).to_have_url(re.compile(r"/products\?name=widget$"))


def test_a_filter_the_api_refuses_is_named_with_the_reason(page: Page, seed):
    seed(catalog(3))

    page.goto("/products?description=a%01b")

    expect(page.locator("#notices")).to_contain_text(
        "Could not load the products. The Description filter must not hold control characters. "
        "Remove the invisible U+0001, character 2."
    )


def test_a_filter_too_long_for_an_address_says_to_shorten_it(page: Page, seed):
    """A pasted paragraph makes an address past the server's limit (414): not "try again"."""
    seed(catalog(3))
    page.goto("/products")
    expect(rows(page)).to_have_count(3)

    # 1,400 letters of two bytes each: 8,400 characters once escaped, past MAX_URL_BYTES (8,000)
    filters(page).get_by_label("Description").fill("ä" * 1400)
    filters(page).get_by_label("Description").press("Enter")

    expect(page.locator("#notices")).to_contain_text(
        "Could not load the products. The filters are too long: search for a shorter part"
    )
    expect(page.locator("#notices")).not_to_contain_text("Try again")


def test_a_list_that_could_not_be_loaded_neither_shows_nor_exports_the_one_before(page: Page, seed):
    """The form shows the filters that failed: rows and an Export CSV of the filters before
    would pass for theirs."""
    seed(catalog(3))
    page.goto("/products")
    filters(page).get_by_label("Name").fill("widget")
    filters(page).get_by_label("Name").press("Enter")
    expect(page.locator("#list-summary")).to_have_text("2 products match the filters")

    filters(page).get_by_label("Description").fill("ä" * 1400)  # too long for an address
    filters(page).get_by_label("Description").press("Enter")

    expect(page.locator("#list-summary")).to_have_text("The products could not be loaded.")
    expect(rows(page)).to_have_count(0)
    expect(pager(page)).to_be_hidden()
    export = page.locator("#export-link")
    expect(export).to_have_attribute("aria-disabled", "true")
    assert export.get_attribute("href") is None

    filters(page).get_by_label("Description").fill("")
    filters(page).get_by_label("Description").press("Enter")
    expect(rows(page)).to_have_count(2)
    expect(export).to_have_attribute("href", re.compile(r"name=widget"))
    expect(export).not_to_have_attribute("aria-disabled", "true")


def test_a_session_that_ended_asks_to_sign_in_again_not_for_a_token(page: Page, seed):
    seed(catalog(3))
    page.goto("/products")
    expect(rows(page)).to_have_count(3)
    page.context.clear_cookies()  # signed out in another tab, or the session expired

    filters(page).get_by_label("Name").fill("widget")
    filters(page).get_by_label("Name").press("Enter")

    notice = page.locator("#signed-out-notice")
    expect(notice).to_contain_text("You are signed out: your session has ended.")
    expect(page.locator("#notices")).not_to_contain_text("Bearer")
    expect(notice.get_by_role("link", name="Sign in again")).to_have_attribute(
        "href", "/login?next=%2Fproducts%3Fname%3Dwidget"
    )


def test_after_signing_in_again_in_a_new_tab_the_open_form_saves_what_was_typed(
    page: Page, seed, http, accounts, artifacts
):
    seed(catalog(1))
    page.goto("/products")
    page.get_by_role("button", name="New product").click()
    dialog = page.get_by_role("dialog", name="New product")
    dialog.get_by_label("SKU").fill("NEW-1")
    dialog.get_by_label("Name").fill("Typed before the session ended")
    page.context.clear_cookies()  # the session expired while the form was open
    dialog.get_by_role("button", name="Create product").click()
    notice = page.locator("#signed-out-notice")
    expect(notice).to_be_visible()

    with page.context.expect_page() as opened:
        notice.get_by_role("link", name="Sign in again").click()
    sign_in_tab = opened.value
    sign_in_tab.get_by_label("Email").fill(accounts["admin"].email)
    sign_in_tab.get_by_label("Password").fill(PASSWORD)
    sign_in_tab.get_by_role("button", name="Sign in").click()
    expect(sign_in_tab.locator("#signed-in-as")).to_contain_text(accounts["admin"].email)
    sign_in_tab.close()  # a new session: the old page's CSRF token is stale now

    dialog.get_by_role("button", name="Create product").click()

    expect(dialog).to_be_hidden()
    expect(page.get_by_text("Created NEW-1.")).to_be_visible()
    expect(notice).to_be_hidden()  # signed in again: the notice no longer holds
    page.screenshot(path=str(artifacts / "saved-after-signing-in-again.png"))
    created = http.get("/api/products", params={"sku": "NEW-1"}).json()["items"]
    assert [p["name"] for p in created] == ["Typed before the session ended"]


def test_a_slow_answer_sent_before_the_session_ended_leaves_the_sign_in_link(page: Page, seed):
    seed(catalog(3))
    page.goto("/products")
    expect(rows(page)).to_have_count(3)
    held = []  # the list's requests (typing may send one before Enter), answered while signed in
    holding = [True]

    def hold(route):
        if not holding[0]:
            return route.continue_()
        request = [route, None]
        held.append(request)
        request[1] = route.fetch()  # the answer, held back

    page.route("**/api/products?*", hold)
    filters(page).get_by_label("Name").fill("widget")
    filters(page).get_by_label("Name").press("Enter")
    while not held or any(answer is None for _, answer in held):
        page.wait_for_timeout(50)
    holding[0] = False
    page.context.clear_cookies()  # the session ends while that answer is on its way
    page.get_by_role("button", name="New product").click()
    dialog = page.get_by_role("dialog", name="New product")
    dialog.get_by_label("SKU").fill("NEW-1")
    dialog.get_by_label("Name").fill("Typed after the session ended")
    dialog.get_by_role("button", name="Create product").click()
    notice = page.locator("#signed-out-notice")
    expect(notice).to_be_visible()

    for route, answer in held:  # the list loads: it was asked for while signed in
        route.fulfill(response=answer)
    expect(page.locator("#products-table")).not_to_have_attribute("aria-busy", "true")
    expect(notice.get_by_role("link", name="Sign in again")).to_be_visible()


@pytest.mark.parametrize("current", [1, 6, 11])
def test_on_a_phone_the_pager_keeps_its_buttons_on_one_line(page: Page, seed, artifacts, current):
    seed(catalog(600))  # 12 pages
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"/products?page={current}")
    for where in ("Pages", "Pages, above the table"):
        expect(pager(page, where).get_by_text(f"Page {current} of 12")).to_be_visible()
        items = pager(page, where).locator(".page-links > li")
        tops = {round(item.bounding_box()["y"]) for item in items.all()}
        assert len(tops) == 1, f"{where}: the buttons wrap onto {len(tops)} lines"
        expect(pager(page, where).get_by_role("link", name="Next page")).to_be_visible()
        expect(
            pager(page, where).get_by_role("link", name=f"Page {current}", exact=True)
        ).to_be_visible()
    pager(page).screenshot(path=str(artifacts / f"pager-on-a-phone-page-{current}.png"))


def test_a_shortened_description_opens_in_place_on_a_phone(page: Page, seed):
    words = "Made of oak, oiled twice, with brass hinges and a lock that keeps the lid shut"
    seed(f'sku,name,description\nSKU-1,Chest,"{words}.\nCare: wipe dry."\nSKU-2,Box,Small\n')
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto("/products?sort=sku")
    expect(rows(page)).to_have_count(2)
    long, short = page.locator('td[data-label="Description"] > div').all()
    expect(long).to_have_attribute("aria-expanded", "false")
    expect(short).not_to_have_attribute("role", "button")  # nothing more to show
    closed = long.bounding_box()["height"]

    long.focus()
    page.keyboard.press("Enter")

    expect(long).to_have_attribute("aria-expanded", "true")
    assert long.bounding_box()["height"] > 3 * closed  # every word, on lines of their own
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    long.click()
    expect(long).to_have_attribute("aria-expanded", "false")


def test_export_downloads_what_the_filters_show_in_a_file_excel_reads_as_utf8(page: Page, seed):
    seed("sku,name\nÜ-1,Blue widget Ü\nSKU-2,Red gadget\n")
    page.goto("/products?name=widget")
    expect(rows(page)).to_have_count(1)

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()

    content = Path(download.value.path()).read_bytes()
    assert content == "\ufeffsku,name,description,active\r\nÜ-1,Blue widget Ü,,true\r\n".encode()


def test_the_cards_of_a_phone_sort_with_a_control_of_their_own(page: Page, seed):
    seed(catalog(12))
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto("/products")
    expect(page.locator("#products-table thead")).not_to_be_in_viewport()

    page.get_by_label("Sort").select_option("SKU A–Z")

    expect(rows(page).first.locator('[data-label="SKU"]')).to_have_text("SKU-001")
    expect(page).to_have_url(re.compile(r"sort=sku"))
    page.get_by_label("Sort").select_option("Name Z–A")
    expect(rows(page).first.locator('[data-label="Name"]')).to_have_text("Red gadget 8")
    filters(page).get_by_label("SKU").fill("SKU-012")
    expect(page.locator("#list-summary")).to_have_text("1 product matches the filters")


def test_a_filter_matching_many_products_shows_the_exact_total(page: Page, seed):
    seed(catalog(1100))
    page.goto("/products?description=made")
    expect(page.locator("#list-summary")).to_have_text("1,100 products match the filters")
    expect(pager(page).get_by_text("Page 1 of 22")).to_be_visible()
    pager(page).get_by_role("link", name="Page 22", exact=True).click()
    expect(rows(page)).to_have_count(50)
    expect(pager(page).get_by_text("Page 22 of 22")).to_be_visible()


def test_create_shows_field_errors_then_succeeds(page: Page, seed, http):
    seed("sku,name\nSKU-1,Existing\n")
    page.goto("/products")
    expect(rows(page)).to_have_count(1)

    page.get_by_role("button", name="New product").click()
    dialog = page.get_by_role("dialog", name="New product")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("SKU")).to_be_focused()
    dialog.get_by_label("SKU").fill("NEW-1")
    dialog.get_by_role("button", name="Create product").click()

    name = dialog.get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#product-name-error")).to_have_text(re.compile(r"\w"))
    expect(name).to_be_focused()

    dialog.get_by_label("SKU").fill("sku-1")  # another spelling of an existing SKU
    name.fill("A clash")
    dialog.get_by_role("button", name="Create product").click()
    expect(dialog.get_by_label("SKU")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#product-sku-error")).to_have_text(re.compile(r"\w"))

    dialog.get_by_label("SKU").fill("NEW-1")
    expect(dialog.get_by_label("SKU")).not_to_have_attribute("aria-invalid", "true")
    dialog.get_by_label("Description").fill("Made by hand")
    with page.expect_request(lambda r: r.method == "POST" and "/api/products" in r.url) as create:
        dialog.get_by_role("button", name="Create product").click()
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token and create.value.headers.get("x-csrftoken") == token

    expect(dialog).to_be_hidden()
    expect(page.get_by_text("Created NEW-1.")).to_be_visible()
    expect(rows(page)).to_have_count(2)
    expect(page.get_by_role("cell", name="NEW-1", exact=True)).to_be_visible()
    created = http.get("/api/products", params={"sku": "NEW-1"}).json()["items"]
    assert [(p["sku"], p["name"], p["description"], p["active"]) for p in created] == [
        ("NEW-1", "A clash", "Made by hand", True)
    ]


def test_a_pasted_value_too_long_is_kept_whole_and_refused_not_cut_short(page: Page, http):
    page.goto("/products")
    page.get_by_role("button", name="New product").click()
    dialog = page.get_by_role("dialog", name="New product")
    sku = "SKU-" + "9" * 260

    dialog.get_by_label("SKU").focus()
    page.keyboard.insert_text(sku)  # as a paste does
    dialog.get_by_label("Name").fill("Widget")
    dialog.get_by_role("button", name="Create product").click()

    expect(dialog.locator("#product-sku-error")).to_have_text("At most 255 characters.")
    expect(dialog.get_by_label("SKU")).to_have_value(sku)  # to be shortened knowingly
    assert http.get("/api/products").json()["total"] == 0


def test_edit_a_product(page: Page, seed, http):
    seed("sku,name,description\nSKU-1,Old name,Old description\nSKU-2,Other,\n")
    page.goto("/products")

    page.get_by_role("button", name="Edit SKU-1").click()
    dialog = page.get_by_role("dialog", name="Edit SKU-1")
    expect(dialog.get_by_label("SKU")).to_have_value("SKU-1")
    expect(dialog.get_by_label("Name")).to_have_value("Old name")
    expect(dialog.get_by_label("Name")).to_be_focused()
    dialog.get_by_label("Name").fill("New name")
    dialog.get_by_role("switch", name="Active").uncheck()
    dialog.get_by_role("button", name="Save changes").click()

    expect(dialog).to_be_hidden()
    expect(page.get_by_text("Saved SKU-1.")).to_be_visible()
    row = rows(page).filter(has_text="SKU-1")
    expect(row.locator('[data-label="Name"]')).to_have_text("New name")
    expect(row.locator('[data-label="Status"]')).to_have_text("Inactive")
    product = http.get("/api/products", params={"sku": "SKU-1"}).json()["items"][0]
    assert (product["name"], product["description"], product["active"]) == (
        "New name",
        "Old description",
        False,
    )


def test_an_edit_leaves_the_line_breaks_of_an_imported_description_alone(page: Page, seed, http):
    seed('sku,name,description\r\nSKU-1,Old name,"Line one\r\nLine two"\r\n')
    page.goto("/products")

    page.get_by_role("button", name="Edit SKU-1").click()
    page.get_by_role("dialog", name="Edit SKU-1").get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Nothing changed.")).to_be_visible()

    page.get_by_role("button", name="Edit SKU-1").click()
    dialog = page.get_by_role("dialog", name="Edit SKU-1")
    dialog.get_by_label("Name").fill("New name")
    dialog.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Saved SKU-1.")).to_be_visible()

    product = http.get("/api/products").json()["items"][0]
    assert (product["name"], product["description"]) == ("New name", "Line one\r\nLine two")


def test_an_untouched_edit_form_leaves_a_zero_width_no_break_space_alone(page: Page, http):
    """U+FEFF is no space to the API, which keeps it (a BOM of a second file pasted into a
    cell): the form must not trim what the API would not, and so change a SKU nobody touched."""
    created = http.post(
        "/api/products", json={"sku": "\ufeffBOM-1", "name": "Gadget\ufeff", "description": "x"}
    ).json()
    page.goto("/products")
    page.get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Name")).to_have_value("Gadget\ufeff")

    dialog.get_by_role("button", name="Save changes").click()

    expect(page.get_by_text("Nothing changed.")).to_be_visible()
    assert http.get(f"/api/products/{created['id']}").json() == created

    page.get_by_role("button", name="Edit").click()
    dialog.get_by_label("Description").fill("y")
    dialog.get_by_role("button", name="Save changes").click()

    expect(dialog).to_be_hidden()
    product = http.get(f"/api/products/{created['id']}").json()
    assert (product["sku"], product["name"], product["description"]) == (
        "\ufeffBOM-1",
        "Gadget\ufeff",
        "y",
    )


def test_the_edit_form_shows_the_product_as_it_is_now(page: Page, seed, http):
    seed("sku,name\nSKU-1,Old name\n")
    page.goto("/products")
    expect(rows(page)).to_have_count(1)
    product = http.get("/api/products").json()["items"][0]
    http.patch(f"/api/products/{product['id']}", json={"name": "Renamed meanwhile"})

    page.get_by_role("button", name="Edit SKU-1").click()

    dialog = page.get_by_role("dialog", name="Edit SKU-1")
    expect(dialog.get_by_label("Name")).to_have_value("Renamed meanwhile")


WITH_DESCRIPTION = "sku,name,description\nSKU-1,Old name,Old description\n"


def open_edit_form(page: Page, seed, http, csv: str):
    """Seed the catalog with `csv`, open SKU-1 ("Old name") in the edit form; return the dialog
    and SKU-1's API address, for a change made by someone else while the form is open."""
    seed(csv)
    page.goto("/products")
    page.get_by_role("button", name="Edit SKU-1").click()
    dialog = page.get_by_role("dialog", name="Edit SKU-1")
    expect(dialog.get_by_label("Name")).to_have_value("Old name")
    return dialog, f"/api/products/{http.get('/api/products').json()['items'][0]['id']}"


def test_an_edit_never_silently_undoes_a_change_made_while_the_form_was_open(
    page: Page, seed, http
):
    dialog, url = open_edit_form(page, seed, http, WITH_DESCRIPTION)
    http.patch(url, json={"name": "Their name", "description": "Their description"})

    dialog.get_by_label("Name").fill("My name")
    dialog.get_by_label("Name").press("Enter")

    # Their name is not lost unseen: the form says what it is now; theirs elsewhere is taken.
    expect(dialog.locator("#product-name-error")).to_contain_text(
        "Someone else changed this to “Their name”"
    )
    expect(dialog.get_by_label("Name")).to_be_focused()
    expect(dialog.get_by_label("Name")).to_have_value("My name")
    expect(dialog.get_by_label("Description")).to_have_value("Their description")
    assert http.get(url).json()["name"] == "Their name"

    dialog.get_by_role("button", name="Save changes").click()  # knowingly, this time

    expect(dialog).to_be_hidden()
    product = http.get(url).json()
    assert (product["name"], product["description"]) == ("My name", "Their description")


def test_a_sku_changed_meanwhile_renames_the_open_form(page: Page, seed, http):
    dialog, url = open_edit_form(page, seed, http, "sku,name\nSKU-1,Old name\n")
    http.patch(url, json={"sku": "SKU-9", "name": "Their name"})

    dialog.get_by_label("Name").fill("My name")
    dialog.get_by_label("Name").press("Enter")

    dialog = page.get_by_role("dialog", name="Edit SKU-9")
    expect(dialog.get_by_label("SKU")).to_have_value("SKU-9")
    expect(dialog.locator("#product-name-error")).to_contain_text("“Their name”")


def test_an_edit_of_another_field_than_the_one_changed_meanwhile_just_saves(page: Page, seed, http):
    dialog, url = open_edit_form(page, seed, http, WITH_DESCRIPTION)
    http.patch(url, json={"description": "Their description"})

    dialog.get_by_label("Name").fill("My name")
    dialog.get_by_role("button", name="Save changes").click()

    expect(dialog).to_be_hidden()
    expect(page.get_by_text("Saved SKU-1.")).to_be_visible()
    product = http.get(url).json()
    assert (product["name"], product["description"]) == ("My name", "Their description")


def test_an_edit_of_a_product_deleted_meanwhile_can_add_it_again(page: Page, seed, http):
    dialog, url = open_edit_form(page, seed, http, WITH_DESCRIPTION)
    http.delete(url)

    dialog.get_by_label("Name").fill("My name")
    dialog.get_by_role("button", name="Save changes").click()

    dialog = page.get_by_role("dialog", name="New product")
    expect(dialog.get_by_role("alert")).to_have_text(
        "SKU-1 was deleted while you were editing it. Create product adds it again with these "
        "values; Cancel leaves it deleted."
    )
    expect(dialog.get_by_label("Name")).to_have_value("My name")
    dialog.get_by_role("button", name="Create product").click()

    expect(dialog).to_be_hidden()
    product = http.get("/api/products").json()["items"][0]
    assert (product["sku"], product["name"], product["description"]) == (
        "SKU-1",
        "My name",
        "Old description",
    )


def test_delete_a_product_after_confirming(page: Page, seed):
    seed("sku,name\nSKU-1,First\nSKU-2,Second\n")
    page.goto("/products")
    expect(rows(page)).to_have_count(2)

    page.get_by_role("button", name="Delete SKU-1").click()
    dialog = page.get_by_role("dialog", name="Delete product")
    expect(dialog).to_contain_text("Delete SKU-1? This cannot be undone.")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(rows(page)).to_have_count(2)

    page.get_by_role("button", name="Delete SKU-1").click()
    dialog.get_by_role("button", name="Delete", exact=True).click()

    expect(dialog).to_be_hidden()
    expect(page.get_by_text("Deleted SKU-1.")).to_be_visible()
    expect(rows(page)).to_have_count(1)
    expect(page.locator("#list-summary")).to_have_text("1 product")


def test_the_delete_dialog_names_the_product_as_it_is_now(page: Page, seed, http):
    """The table may be older than a rename: the question names what will be deleted."""
    seed("sku,name\nSKU-1,First\n")
    page.goto("/products")
    expect(rows(page)).to_have_count(1)
    product = http.get("/api/products").json()["items"][0]
    http.patch(f"/api/products/{product['id']}", json={"sku": "SKU-9"})

    page.get_by_role("button", name="Delete SKU-1").click()

    dialog = page.get_by_role("dialog", name="Delete product")
    expect(dialog).to_contain_text("Delete SKU-9? This cannot be undone.")
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_text("Deleted SKU-9.")).to_be_visible()


def test_a_product_changed_while_its_delete_dialog_was_open_is_not_deleted_unseen(
    page: Page, seed, http
):
    seed("sku,name\nSKU-1,First\n")
    page.goto("/products")
    page.get_by_role("button", name="Delete SKU-1").click()
    dialog = page.get_by_role("dialog", name="Delete product")
    expect(dialog).to_contain_text("Delete SKU-1?")
    url = f"/api/products/{http.get('/api/products').json()['items'][0]['id']}"
    http.patch(url, json={"sku": "SKU-9", "name": "Their name"})

    dialog.get_by_role("button", name="Delete", exact=True).click()

    # Kept, and the dialog says what it is now; Delete again deletes it knowingly.
    expect(dialog.get_by_role("alert")).to_have_text(
        "Someone else changed this product while this dialog was open: it is now SKU-9, "
        "“Their name”. Delete it anyway, or Cancel to keep it."
    )
    expect(dialog).to_contain_text("Delete SKU-9? This cannot be undone.")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    assert http.get(url).json()["name"] == "Their name"

    dialog.get_by_role("button", name="Delete", exact=True).click()

    expect(dialog).to_be_hidden()
    expect(page.get_by_text("Deleted SKU-9.")).to_be_visible()
    assert http.get(url).status_code == 404


def test_delete_all_products_through_the_dialog(page: Page, seed, http):
    seed(catalog(3))
    page.goto("/products")
    expect(rows(page)).to_have_count(3)
    held = []  # the request is held to see the feedback while it runs
    page.route(re.compile(r"/api/products\?confirm=true$"), lambda route: held.append(route))

    page.get_by_role("button", name="Delete all products").click()
    dialog = page.get_by_role("dialog", name="Delete all products")
    expect(dialog).to_contain_text("Are you sure? This cannot be undone.")
    confirm = dialog.get_by_role("button", name="Delete all products")
    confirm.click()

    expect(dialog.get_by_role("button", name="Deleting…")).to_have_attribute("aria-busy", "true")
    expect(dialog).to_contain_text("Deleting every product")
    page.keyboard.press("Escape")  # a running delete keeps its dialog open
    expect(dialog).to_be_visible()
    held[0].continue_()

    expect(dialog).to_be_hidden()
    expect(page.get_by_text("Deleted 3 products.")).to_be_visible()
    expect(page.get_by_text("No products yet")).to_be_visible()
    assert http.get("/api/products").json()["total"] == 0


def test_delete_all_counts_the_catalog_as_it_is_now(page: Page, seed, http):
    """The table may be older than an import, or filtered: the question counts the catalog."""
    seed(catalog(1))
    page.goto("/products")
    expect(page.locator("#list-summary")).to_have_text("1 product")
    dialog = page.get_by_role("dialog", name="Delete all products")

    page.get_by_role("button", name="Delete all products").click()
    expect(dialog).to_contain_text("The one product in the catalog will be deleted.")
    dialog.get_by_role("button", name="Cancel").click()

    seed(catalog(5))  # imported from elsewhere while the page was open
    page.get_by_role("button", name="Delete all products").click()
    expect(dialog).to_contain_text("All 5 products in the catalog will be deleted.")
    dialog.get_by_role("button", name="Cancel").click()

    filters(page).get_by_label("SKU").fill("SKU-002")
    filters(page).get_by_label("SKU").press("Enter")
    expect(page.locator("#list-summary")).to_have_text("1 product matches the filters")
    page.get_by_role("button", name="Delete all products").click()
    expect(dialog).to_contain_text(
        "All 5 products in the catalog will be deleted, not only those the filters show."
    )
    dialog.get_by_role("button", name="Cancel").click()

    assert http.delete("/api/products?confirm=true").json() == {"deleted": 5}  # by another admin
    page.get_by_role("button", name="Delete all products").click()
    expect(dialog).to_contain_text("The catalog is empty now: nothing will be deleted.")


def test_delete_all_by_keyboard_leaves_the_focus_on_the_count(page: Page, seed):
    seed(catalog(3))
    page.goto("/products")
    expect(rows(page)).to_have_count(3)

    page.get_by_role("button", name="Delete all products").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")  # from Cancel to Delete all products
    page.keyboard.press("Enter")

    expect(page.get_by_text("No products yet")).to_be_visible()
    # The button that had the focus is disabled now (nothing to delete): not back to the top.
    expect(page.locator("#list-summary")).to_be_focused()
    expect(page.locator("#list-summary")).to_have_text("0 products")


def test_a_failed_delete_all_says_why(page: Page, seed):
    seed(catalog(2))
    page.goto("/products")
    refusal = {"error": {"code": "conflict", "message": "An import is being applied; try again."}}
    page.route(
        re.compile(r"/api/products\?confirm=true$"),
        lambda route: route.fulfill(status=409, json=refusal),
    )

    page.get_by_role("button", name="Delete all products").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete all products").click()

    expect(page.get_by_role("alert")).to_contain_text(
        "The products were not deleted: An import is being applied; try again."
    )
    expect(rows(page)).to_have_count(2)


def test_the_product_form_is_usable_with_the_keyboard(page: Page):
    page.goto("/products")
    opener = page.get_by_role("button", name="New product")
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="New product")
    expect(dialog.get_by_label("SKU")).to_be_focused()

    page.keyboard.press("Shift+Tab")
    expect(dialog.get_by_role("button", name="Close")).to_be_focused()
    page.keyboard.press("Shift+Tab")  # focus stays in the dialog: round to the last button
    expect(dialog.get_by_role("button", name="Create product")).to_be_focused()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Close")).to_be_focused()

    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()


@pytest.mark.parametrize("path", ["/", "/imports", "/products"])
def test_pages_fit_a_narrow_screen(page: Page, seed, path):
    seed(catalog(3))
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(path)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    if path == "/products":
        expect(rows(page)).to_have_count(3)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("width", [390, 1280])
def test_the_edit_form_of_a_long_sku_wraps_its_title_and_keeps_its_close_button(
    page: Page, http, width
):
    """A SKU of 255 characters without a space: the title wraps inside the dialog, and the
    Close button beside it stays on the screen, not pushed out past the dialog's edge."""
    sku = "L" * 255
    assert http.post("/api/products", json={"sku": sku, "name": "Long"}).status_code == 201
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/products")

    page.get_by_role("button", name=f"Edit {sku}").click()

    dialog = page.get_by_role("dialog", name=f"Edit {sku}")
    expect(dialog.get_by_label("Name")).to_have_value("Long")
    assert dialog.evaluate("box => box.scrollWidth <= box.clientWidth")
    close = dialog.get_by_role("button", name="Close").bounding_box()
    edge = dialog.bounding_box()
    assert close["x"] + close["width"] <= edge["x"] + edge["width"]
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def fits(box) -> bool:
    """Whether an element shows all of its text: nothing of it runs past its right edge."""
    return box.evaluate("node => node.scrollWidth <= node.clientWidth")


def test_a_long_sku_in_a_refusal_and_a_notice_wraps_inside_them(page: Page, http):
    """The 409 beside the SKU field and the "Saved …" notice quote a SKU of 255 characters
    without a space: both wrap, and the notice keeps its Dismiss button on the screen."""
    sku = "L" * 255
    assert http.post("/api/products", json={"sku": sku, "name": "Long"}).status_code == 201
    page.set_viewport_size({"width": 390, "height": 900})
    page.goto("/products")
    page.get_by_role("button", name="New product").click()
    dialog = page.get_by_role("dialog", name="New product")
    dialog.get_by_label("SKU").fill(sku.lower())
    dialog.get_by_label("Name").fill("Again")
    dialog.get_by_label("Name").press("Enter")

    refusal = dialog.locator("#product-sku-error")
    expect(refusal).to_contain_text("already exists")
    assert fits(refusal) and fits(dialog)
    dialog.get_by_role("button", name="Cancel").click()

    page.get_by_role("button", name=f"Edit {sku}").click()
    dialog = page.get_by_role("dialog", name=f"Edit {sku}")
    dialog.get_by_label("Name").fill("Renamed")
    dialog.get_by_label("Name").press("Enter")

    notice = page.locator(".notice", has_text="Saved")
    expect(notice).to_be_visible()
    assert fits(notice.locator(".notice-text")) and fits(notice)
    dismiss = notice.get_by_role("button", name="Dismiss notice").bounding_box()
    assert dismiss["x"] + dismiss["width"] <= 390
