"""The upload page: a CSV goes up, and its import is followed live until it finishes."""

import json
import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import sign_in
from tests.conftest import REJECTED_AT_ONCE


def csv_file(name: str, text: str) -> dict:
    return {"name": name, "mimeType": "text/csv", "buffer": text.encode()}


def drop_file(page: Page, selector: str, name: str, text: str) -> None:
    """Drop a file on an element the way a person dragging it from their desktop does."""
    data = page.evaluate_handle(
        """([name, text]) => {
            const data = new DataTransfer();
            data.items.add(new File([text], name, {type: "text/csv"}));
            return data;
        }""",
        [name, text],
    )
    page.dispatch_event(selector, "drop", {"dataTransfer": data})


def test_upload_shows_progress_until_the_import_is_complete(page: Page):
    rows = "".join(f"SKU-{n},Widget {n},Blue,red\n" for n in range(1, 2001))
    content = "sku,name,description,colour\n" + rows + "SKU-1,Widget one again,,\n,No SKU,,\n"
    page.goto("/")
    expect(page.get_by_role("link", name="Upload")).to_have_attribute("aria-current", "page")

    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/imports")) as up:
        page.get_by_label("Drop a CSV file here or choose a file").set_input_files(
            csv_file("widgets.csv", content)
        )
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token and up.value.headers.get("x-csrftoken") == token

    expect(page.locator("#job-message")).to_have_text("Import complete")
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#job-percent")).to_have_text("100%")
    expect(page.locator("#job-badge")).to_have_text("Completed with errors")
    expect(page.locator("#stat-rows")).to_have_text("2,002")
    expect(page.locator("#stat-created")).to_have_text("2,000")
    expect(page.locator("#stat-updated")).to_have_text("0")
    expect(page.locator("#stat-invalid")).to_have_text("1")
    expect(page.get_by_text("2,000 products imported")).to_be_visible()
    expect(
        page.get_by_text("1 row repeated an earlier SKU; the last one was kept.")
    ).to_be_visible()
    expect(page.get_by_text("1 row was rejected")).to_be_visible()
    expect(page.get_by_text("Unknown columns were ignored: colour.")).to_be_visible()
    job_id = re.search(r"\?job=(\d+)$", page.url).group(1)
    expect(page.get_by_role("link", name="Download rejected rows")).to_have_attribute(
        "href", f"/api/imports/{job_id}/rejected.csv?bom=true"
    )
    expect(page.get_by_role("link", name="View products")).to_have_attribute("href", "/products")
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()


@pytest.mark.parametrize("way", ["resumable", "one request"])
def test_after_signing_in_again_in_a_new_tab_the_open_page_uploads_the_file(
    page: Page, http, accounts, artifacts, way
):
    if way == "one request":  # a browser without tus-js-client sends one multipart POST
        page.route(re.compile(r"/vendor/tus-js-client/"), lambda route: route.abort())
    page.goto("/")
    stale = page.locator('meta[name="csrf-token"]').get_attribute("content")
    page.context.clear_cookies()  # the session expired while the page was open
    sign_in_tab = page.context.new_page()
    sign_in(sign_in_tab, accounts["admin"].email)
    sign_in_tab.close()  # a new session: the open page's CSRF token is stale now

    page.get_by_label("Drop a CSV file here or choose a file").set_input_files(
        csv_file("again.csv", "sku,name\nAGAIN-1,Uploaded after signing in again\n")
    )

    expect(page.locator("#job-message")).to_have_text("Import complete")
    page.screenshot(path=str(artifacts / f"uploaded-after-signing-in-again-{way}.png"))
    assert page.locator('meta[name="csrf-token"]').get_attribute("content") != stale
    created = http.get("/api/products", params={"sku": "AGAIN-1"}).json()["items"]
    assert [p["name"] for p in created] == ["Uploaded after signing in again"]


def test_a_file_without_a_sku_column_fails_with_its_reason_and_offers_the_mapping(page: Page):
    page.goto("/")
    drop_file(page, "#dropzone", "no-sku.csv", "name,description\nFoo,Bar\n")

    reason = page.get_by_role("alert").filter(has_text="Nothing was imported")
    expect(reason).to_contain_text("Missing required column: sku")
    expect(page.locator("#job-badge")).to_have_text("Failed")
    expect(page.get_by_role("link", name="View products")).to_be_hidden()
    # Retried as it was, it could only fail the same way: the columns are chosen instead.
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()
    expect(page.get_by_role("form", name="Column mapping")).to_be_visible()
    page.get_by_role("button", name="Import another file").click()
    expect(page.get_by_text("Drop a CSV file here")).to_be_visible()
    expect(page.get_by_role("form", name="Column mapping")).to_be_hidden()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("sku,name\nA-1," + "x" * (6 * 1024 * 1024) + "\n", "A line is longer than"),
        # blank, but not in the 8 KiB the upload's check reads (they end half a no-break space)
        (" " * 8191 + "\u00a0\r\n", "The file holds no header row"),
    ],
    ids=["line-too-long", "no-header"],
)
def test_a_file_whose_bytes_failed_it_is_not_offered_a_retry_nor_a_mapping(
    page: Page, content, reason
):
    page.goto("/")
    page.locator("#file-input").set_input_files(csv_file("broken.csv", content))

    alert = page.get_by_role("alert").filter(has_text="Nothing was imported")
    expect(alert).to_contain_text(reason)
    expect(page.locator("#job-badge")).to_have_text("Failed")
    # the same bytes would fail the same way, whatever the columns: upload a fixed file
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()
    expect(page.get_by_role("form", name="Column mapping")).to_be_hidden()
    expect(page.get_by_role("button", name="Import another file")).to_be_visible()


@pytest.mark.parametrize("text", ["", "  \n"], ids=["no-bytes", "blank"])
def test_an_empty_file_is_refused_with_the_reason(page: Page, text):
    page.goto("/")
    page.locator("#file-input").set_input_files(csv_file("empty.csv", text))

    expect(page.get_by_role("alert").filter(has_text="The file was not accepted")).to_be_visible()
    expect(page.locator("#job-badge")).to_have_text("Upload failed")
    expect(page.get_by_role("button", name="Import another file")).to_be_visible()
    # Retry sent the same empty file again, to be refused again.
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()


def test_reloading_the_page_resumes_following_the_import(page: Page):
    page.goto("/")
    page.locator("#file-input").set_input_files(csv_file("one.csv", "sku,name\nA-1,Apple\n"))
    expect(page.locator("#job-message")).to_have_text("Import complete")

    page.reload()

    expect(page.locator("#job-message")).to_have_text("Import complete")
    expect(page.locator("#stat-created")).to_have_text("1")
    expect(page.get_by_text("one.csv")).to_be_visible()
    # a small import takes milliseconds: never "Finished in 0.0 s"
    expect(page.locator("#job-detail")).to_have_text(re.compile(r"^Finished in (\d+ ms|\d\.\d s)$"))
    expect(page.locator("#job-detail")).not_to_have_text(re.compile(r"0\.0 s"))


def test_cancel_a_running_import(page: Page, http, holding_rejections):
    rows = [f"SKU-{n},Widget {n},A blue widget number {n}" for n in range(10_000)]
    nameless = [f"NONAME-{n},," for n in range(REJECTED_AT_ONCE)]
    content = "sku,name,description\n" + "\n".join(rows[:5000] + nameless + rows[5000:]) + "\n"
    with holding_rejections() as reading:  # the import stops half-way through the file
        page.goto("/")
        page.locator("#file-input").set_input_files(csv_file("big.csv", content))
        reading.wait_until_blocking()

        expect(page.locator("#job-badge")).to_have_text("Running")
        expect(page.locator("#stat-phase")).to_have_text(re.compile("Reading"))
        expect(page.locator("#stat-speed")).to_contain_text("rows/s")
        with page.expect_response(re.compile(r"/api/imports/\d+/cancel$")) as cancelled:
            page.get_by_role("button", name="Cancel").click()
        assert cancelled.value.status == 202

    expect(page.locator("#job-badge")).to_have_text("Cancelled")
    expect(page.locator("#job-message")).to_have_text("Import cancelled")
    expect(page.get_by_text("the catalog was not changed")).to_be_visible()
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    job_id = re.search(r"\?job=(\d+)$", page.url).group(1)
    assert http.get(f"/api/imports/{job_id}").json()["status"] == "cancelled"
    assert http.get("/api/products").json()["total"] == 0


def refuse_with_503(route) -> None:
    """Answer as the server does past its cap of open event streams."""
    body = '{"error": {"code": "too_many_streams", "message": "Poll.", "details": null}}'
    headers = {"Retry-After": "10"}
    route.fulfill(status=503, headers=headers, content_type="application/json", body=body)


def reset_connection(route) -> None:
    """Break the connection, as a proxy that does not pass streams on might."""
    route.abort("connectionreset")


@pytest.mark.parametrize("fail", [refuse_with_503, reset_connection], ids=["refused", "broken"])
def test_progress_is_polled_when_the_event_stream_is_refused_or_broken(page: Page, fail):
    streams = []
    page.route(re.compile(r"/api/imports/\d+/events$"), lambda route: streams.append(fail(route)))
    page.goto("/")
    page.locator("#file-input").set_input_files(csv_file("one.csv", "sku,name\nA-1,Apple\n"))

    expect(page.locator("#job-message")).to_have_text("Import complete")
    expect(page.locator("#stat-created")).to_have_text("1")
    assert streams  # the page did ask for the stream first


def test_an_upload_met_by_a_database_away_is_offered_a_retry_that_imports_it(page: Page):
    # Said as "The file was not accepted", as for a file refused for its bytes.
    answers = []

    def database_away(route) -> None:
        message = "The database is not answering. Nothing was changed: try again in a few seconds."
        error = {"code": "database_unavailable", "message": message, "details": None}
        body = json.dumps({"error": error})
        answers.append(503)
        route.fulfill(
            status=503, headers={"Retry-After": "5"}, content_type="application/json", body=body
        )

    page.route(re.compile(r"/api/imports$"), database_away)
    page.goto("/")
    page.locator("#file-input").set_input_files(csv_file("one.csv", "sku,name\nA-1,Apple\n"))

    alert = page.get_by_role("alert").filter(has_text="The upload did not go through")
    expect(alert).to_contain_text("Nothing was changed: try again in a few seconds.")
    expect(page.locator("#job-badge")).to_have_text("Upload failed")
    page.unroute(re.compile(r"/api/imports$"))
    page.get_by_role("button", name="Retry").click()

    expect(page.locator("#job-message")).to_have_text("Import complete")
    expect(page.locator("#stat-created")).to_have_text("1")
    assert answers == [503]


def test_on_a_phone_each_option_checkbox_sits_beside_its_words(page: Page):
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto("/")
    for label in ("Plan first", "Stop if more than"):
        option = page.locator("#upload-options label.check").filter(has_text=label)
        box = option.locator("input[type=checkbox]").bounding_box()
        words = option.get_by_text(label).bounding_box()
        # on one line: the words start beside the box, not on a line of their own below it
        assert words["y"] < box["y"] + box["height"], label
        assert words["x"] > box["x"] + box["width"], label


def test_on_a_phone_the_percent_sign_stays_beside_its_number(page: Page):
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto("/")
    box = page.locator("#max-invalid").bounding_box()
    percent = page.evaluate(
        """() => {
            let node = document.getElementById("max-invalid").nextSibling;
            while (node && !node.textContent.includes("%")) node = node.nextSibling;
            if (node.nodeType !== Node.TEXT_NODE) node = node.firstChild;
            const range = document.createRange();
            const at = node.textContent.indexOf("%");
            range.setStart(node, at);
            range.setEnd(node, at + 1);
            const rect = range.getBoundingClientRect();
            return { x: rect.x, y: rect.y, height: rect.height };
        }"""
    )
    # "more than [1] %" reads as one amount: the sign on the number's line, just after it
    assert percent["y"] < box["y"] + box["height"]
    assert percent["y"] + percent["height"] > box["y"]
    assert percent["x"] > box["x"] + box["width"]


def test_a_workbook_dropped_by_mistake_is_refused_before_it_is_sent(page: Page, http):
    # An .xlsx is a zip: NUL bytes at once. Sending all of it first only to hear it is not a
    # CSV would keep the person waiting for nothing, and leave a failed import behind.
    workbook = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + b"x" * 200_000
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto("/")
    page.locator("#file-input").set_input_files(
        {"name": "Products.xlsx", "mimeType": "application/octet-stream", "buffer": workbook}
    )

    error = page.locator("#upload-error")
    expect(error).to_contain_text("Products.xlsx is not a CSV file")
    expect(error).to_contain_text("CSV UTF-8")
    expect(page.get_by_text("Drop a CSV file here")).to_be_visible()  # choose another
    assert not [url for url in requests if "/api/uploads" in url or "/api/imports" in url]
    assert http.get("/api/imports").json()["items"] == []


# Two files dropped in the same moment: each startUpload awaits its binary check.
DROP_TWO = """([first, second]) => {
    const zone = document.getElementById('dropzone');
    for (const [name, text] of [first, second]) {
        const transfer = new DataTransfer();
        transfer.items.add(new File([text], name, {type: 'text/csv'}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true}));
    }
}"""


def test_two_files_dropped_at_once_start_one_upload_the_last(page: Page, http):
    page.goto("/")
    page.evaluate(
        DROP_TWO, [["first.csv", "sku,name\nA-1,Apple\n"], ["second.csv", "sku,name\nB-2,Pear\n"]]
    )

    expect(page.locator("#job-message")).to_have_text("Import complete")
    expect(page.locator("#job-file")).to_have_text("second.csv")
    assert [job["filename"] for job in http.get("/api/imports").json()["items"]] == ["second.csv"]


def test_a_connection_lost_as_the_upload_ends_does_not_make_the_import_look_failed(page: Page):
    # The file went up and its import runs; the page's first look at the job finds the
    # network gone for a moment. It tries again, rather than show "Failed" for good.
    lost = []

    def drop_once(route):
        if lost:
            return route.continue_()
        lost.append(route.request.url)
        return route.abort("internetdisconnected")

    page.route(re.compile(r"/api/imports/\d+$"), drop_once)
    page.goto("/")
    page.locator("#file-input").set_input_files(csv_file("one.csv", "sku,name\nA-1,Apple\n"))

    expect(page.locator("#job-message")).to_have_text("Import complete")
    expect(page.locator("#job-badge")).to_have_text("Completed")
    expect(page).to_have_url(re.compile(r"\?job=\d+$"))  # a reload still finds it
    assert lost


def test_a_file_chosen_with_the_keyboard_leaves_the_focus_on_its_import(page: Page):
    """The drop zone hides as the upload starts: Tab goes on to the import's buttons, not back
    to the top of the page."""
    page.goto("/")
    chooser = page.get_by_label("Drop a CSV file here or choose a file")
    chooser.focus()
    chooser.set_input_files(csv_file("keys.csv", "sku,name\nKEY-1,Key\n"))
    expect(page.locator("#job-badge")).to_have_text("Completed")

    expect(page.locator("#job-panel")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="View products")).to_be_focused()
