"""The import history page."""

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.conftest import paused
from tests.helpers import import_csv, upload_csv


def test_history_shows_each_import_with_outcome_counts_and_rejected_rows(page: Page, http):
    done = import_csv(http, "sku,name\nA-1,Apple\n,No SKU\nB-2,Banana\n", filename="fruit.csv")
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
    expect(done_row.locator('[data-label="Outcome"]')).to_have_text("Completed with errors")
    expect(done_row.locator('[data-label="Rows"]')).to_have_text("3")
    expect(done_row.locator('[data-label="Created"]')).to_have_text("2")
    expect(done_row.locator('[data-label="Duration"]')).to_have_text(re.compile(r"\d+(\.\d)? s"))
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
    expect(download_link).to_have_attribute("href", f"/api/imports/{done['id']}/errors.csv")
    with page.expect_download() as download:
        download_link.click()
    rejected = Path(download.value.path()).read_text(encoding="utf-8")
    assert rejected.splitlines()[0] == "line,sku,reason"
    assert rejected.splitlines()[1].startswith("3,")


def test_retry_from_the_history_follows_the_new_import(page: Page, http, live_worker):
    with paused(live_worker):  # the import stays queued, to be cancelled
        queued = upload_csv(http, "sku,name\nA-1,Apple\n", filename="fruit.csv").json()
        assert http.post(f"/api/imports/{queued['id']}/cancel").status_code == 202
    page.goto("/imports")

    page.get_by_role("button", name=f"Retry import {queued['id']}").click()

    expect(page).to_have_url(re.compile(rf"/\?job={queued['id'] + 1}$"))
    expect(page.locator("#job-message")).to_have_text("Import complete")


def test_history_without_imports_says_so(page: Page):
    page.goto("/imports")
    expect(page.get_by_text("No imports yet")).to_be_visible()
