"""The import history page."""

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.conftest import REJECTED_AT_ONCE, paused
from tests.helpers import import_csv, upload_csv


def test_history_shows_each_import_with_outcome_counts_and_rejected_rows(page: Page, http):
    done = import_csv(
        http, "sku,name\nA-1,Apple\n,No SKU\nB-2,Banana\nb-2,Bean\n", filename="fruit.csv"
    )
    failed = import_csv(http, "name\nNo SKU column\n", filename="no-sku.csv")

    page.goto("/imports")

    expect(page.get_by_role("link", name="Imports", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    rows = page.locator("#imports-body tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("no-sku.csv")  # newest first
    done_row = page.locator(f'tr[data-job-id="{done["id"]}"]')
    expect(done_row).to_contain_text("fruit.csv")
    outcome = done_row.locator('[data-label="Outcome"]')
    expect(outcome.locator(".badge")).to_have_text("Completed with errors")
    expect(outcome).to_contain_text("1 row repeated an earlier SKU; the last one was kept.")
    expect(done_row.locator('[data-label="Rows"]')).to_have_text("4")
    expect(done_row.locator('[data-label="Created"]')).to_have_text("2")
    expect(done_row.locator('[data-label="Duration"]')).to_have_text(
        re.compile(r"^(\d+ ms|\d\.\d s)$")  # a small import: never "0.0 s"
    )
    failed_row = page.locator(f'tr[data-job-id="{failed["id"]}"]')
    expect(failed_row.locator('[data-label="Outcome"]')).to_contain_text("Failed")
    expect(failed_row).to_contain_text("Missing required column: sku")
    # Retried as it was, it would fail the same way: its page maps the file's columns instead.
    expect(failed_row.get_by_role("button", name="Retry import")).to_have_count(0)
    choose = failed_row.get_by_role("link", name=f"Choose the columns of import {failed['id']}")
    expect(choose).to_have_attribute("href", f"/imports/{failed['id']}")
    expect(done_row.get_by_role("link", name=f"Import #{done['id']}: fruit.csv")).to_have_attribute(
        "href", f"/imports/{done['id']}"
    )

    download_link = done_row.get_by_role("link", name="Download the rejected rows")
    expect(download_link).to_have_attribute(
        "href", f"/api/imports/{done['id']}/rejected.csv?bom=true"
    )
    with page.expect_download() as download:
        download_link.click()
    rejected = Path(download.value.path()).read_text(encoding="utf-8")
    # a byte order mark first, else Excel reads the UTF-8 as the computer's code page
    assert rejected.splitlines() == ["\ufeffline,reason,sku,name", "3,sku is empty,,No SKU"]


def test_retry_from_the_history_follows_the_new_import(page: Page, http, live_worker):
    with paused(live_worker):  # the import stays queued, to be cancelled
        queued = upload_csv(http, "sku,name\nA-1,Apple\n", filename="fruit.csv").json()
        assert http.post(f"/api/imports/{queued['id']}/cancel").status_code == 202
    page.goto("/imports")

    page.get_by_role("button", name=f"Retry import {queued['id']}").click()

    expect(page).to_have_url(re.compile(rf"/\?job={queued['id'] + 1}$"))
    expect(page.locator("#job-message")).to_have_text("Import complete")


def test_a_running_import_fits_the_history_with_its_watch_button(
    page: Page, http, holding_rejections
):
    rows = [f"SKU-{n},Widget {n}" for n in range(10_000)]
    nameless = [f"NONAME-{n}," for n in range(REJECTED_AT_ONCE)]
    content = "sku,name\n" + "\n".join(rows[:5000] + nameless + rows[5000:]) + "\n"
    page.set_viewport_size({"width": 1366, "height": 800})
    with holding_rejections() as reading:  # the import stops half-way through the file
        job = upload_csv(http, content, "held.csv").json()
        reading.wait_until_blocking()
        page.goto("/imports")

        row = page.locator(f'tr[data-job-id="{job["id"]}"]')
        watch = row.get_by_role("link", name="Watch progress")
        expect(watch).to_be_visible()
        box, table = watch.bounding_box(), page.locator(".table-wrap").bounding_box()
        assert box["x"] + box["width"] <= table["x"] + table["width"], (box, table)
        assert page.evaluate("document.querySelector('.table-wrap').scrollWidth") <= table["width"]
        for column in ("Created", "Updated", "Unchanged"):  # counted as it applies: not yet
            expect(row.locator(f'[data-label="{column}"]')).to_have_text("–")

    expect(row.locator('[data-label="Outcome"] .badge')).to_have_text("Completed with errors")
    expect(row.locator('[data-label="Created"]')).to_have_text("10,000")


# The page's animations playing now: a progress bar's stripes, a spinner.
RUNNING_ANIMATIONS = "document.getAnimations().filter((a) => a.playState === 'running').length"


def test_a_running_imports_bar_stands_still_for_someone_who_asks_for_less_motion(
    page: Page, http, holding_rejections
):
    # Motion off made each animation last 0.01 ms but still repeat without end: the bar's
    # stripes (and a spinner's turn) jumped to a new place every frame, a flicker.
    rows = [f"SKU-{n},Widget {n}" for n in range(REJECTED_AT_ONCE)]
    nameless = [f"NONAME-{n}," for n in range(REJECTED_AT_ONCE)]
    content = "sku,name\n" + "\n".join(rows + nameless + rows) + "\n"
    with holding_rejections() as reading:  # the import stops half-way through the file
        job = upload_csv(http, content, "held.csv").json()
        reading.wait_until_blocking()
        page.goto(f"/imports/{job['id']}")
        expect(page.locator('.progress[data-state="active"]')).to_be_visible()
        assert page.evaluate(RUNNING_ANIMATIONS) > 0  # the stripes move

        page.emulate_media(reduced_motion="reduce")
        page.wait_for_function(f"() => {RUNNING_ANIMATIONS} === 0")
        expect(page.locator('.progress[data-state="active"]')).to_be_visible()


def test_history_without_imports_says_so(page: Page):
    page.goto("/imports")
    expect(page.get_by_text("No imports yet")).to_be_visible()


def test_an_imports_page_offers_the_same_rejected_rows_as_the_history(page: Page, http):
    done = import_csv(http, "sku,name,colour\nA-1,Apple,red\n,No SKU,blue\n", "fruit.csv")
    page.goto(f"/imports/{done['id']}")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download rejected rows").click()

    rejected = Path(download.value.path()).read_text(encoding="utf-8")
    # every column of the file, to fix and import again (docs/csv-format.md)
    assert rejected.splitlines() == [
        "\ufeffline,reason,sku,name,colour",  # for Excel, as the history's download
        "3,sku is empty,,No SKU,blue",
    ]


def test_a_queued_imports_page_does_not_show_its_bar_at_work(page: Page, http, live_worker):
    # The striped, moving bar says the import is being worked on; a queued one waits.
    with paused(live_worker):  # no worker takes it: it stays queued
        queued = upload_csv(http, "sku,name\nA-1,Apple\n", filename="fruit.csv").json()
        page.goto(f"/imports/{queued['id']}")
        expect(page.locator("#job-badge")).to_have_text("Queued")
        bar = page.get_by_role("progressbar", name="Progress")
        expect(bar).to_be_visible()
        expect(bar).not_to_have_attribute("data-state", "active")
        assert http.post(f"/api/imports/{queued['id']}/cancel").status_code == 202


def test_a_failed_imports_page_without_buttons_ends_its_card_at_the_error(page: Page, http):
    # Failed on its header: no Retry (the columns are mapped below instead), no rejected rows.
    failed = import_csv(http, "a,b\n1,2\n", filename="other-columns.csv")
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"/imports/{failed['id']}")
        expect(page.locator("#job-error")).to_contain_text("Missing required columns")
        expect(page.locator("#job-summary button")).to_have_count(0)
        # the card's own padding under the error, not an empty row of actions as well
        strip = page.evaluate(
            """() => {
              const card = document.getElementById("job-summary");
              const error = card.querySelector(".job-result");
              const style = getComputedStyle(card);
              return card.getBoundingClientRect().bottom - error.getBoundingClientRect().bottom
                - parseFloat(style.paddingBottom) - parseFloat(style.borderBottomWidth);
            }"""
        )
        assert abs(strip) < 1, f"{strip} px under the error at {width} px"
