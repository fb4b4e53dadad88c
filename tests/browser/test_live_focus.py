"""Pages that refresh themselves while an import runs (the history, an import's page) leave the
keyboard's focus where it was: a person tabbing through them is not sent back to the top."""

from playwright.sync_api import Page, expect

from tests.helpers import upload_csv
from tests.imports.conftest import TABLE_LOCK

# Mark the part of the page that refreshes, then wait until a fresh copy has replaced it.
MARK = "(id) => { document.getElementById(id).dataset.stale = 'true'; }"
REPLACED = "(id) => document.getElementById(id).dataset.stale !== 'true'"


def wait_for_a_refresh(page: Page, part: str) -> None:
    """Wait until the page has swapped in a fresh copy of `part` (an element's id), twice."""
    for _ in range(2):
        page.evaluate(MARK, part)
        page.wait_for_function(REPLACED, arg=part)


def test_the_focus_stays_put_while_the_pages_of_a_running_import_refresh(page: Page, http, holding):
    with holding(TABLE_LOCK) as edit:  # a product edit in progress: the import waits for it
        job = upload_csv(http, "sku,name\nA-1,Apple\n", "run.csv").json()
        edit.wait_until_blocking()

        page.goto(f"/imports/{job['id']}")
        watch = page.get_by_role("link", name="Watch progress")
        watch.focus()
        wait_for_a_refresh(page, "import-detail")
        expect(watch).to_be_focused()

        page.goto("/imports")
        watch = page.get_by_role("link", name="Watch progress")
        watch.focus()
        wait_for_a_refresh(page, "imports-body")
        expect(watch).to_be_focused()


def test_a_refreshing_page_says_when_its_session_has_ended(page: Page, http, holding):
    # Left open on a running import, the page would go on showing it running: its refresh
    # was led to the sign-in page and found nothing to swap in, and said nothing.
    with holding(TABLE_LOCK) as edit:  # the import waits: the pages go on refreshing
        job = upload_csv(http, "sku,name\nA-1,Apple\n", "run.csv").json()
        edit.wait_until_blocking()
        for path, part in (
            (f"/imports/{job['id']}", "import-detail"),
            ("/imports", "imports-body"),
        ):
            page.goto(path)
            wait_for_a_refresh(page, part)
            cookies = page.context.cookies()
            page.context.clear_cookies()  # signed out in another tab, or the session expired

            notice = page.locator("#signed-out-notice")
            expect(notice).to_contain_text("You are signed out: your session has ended.")
            expect(notice.get_by_role("link", name="Sign in again")).to_be_visible()
            page.context.add_cookies(cookies)  # signed in again: the notice goes
            expect(notice).to_have_count(0)


def test_an_import_page_announces_once_what_the_import_became(page: Page, http, holding):
    """A screen reader following an import's page hears it end, not every refresh."""
    with holding(TABLE_LOCK) as edit:  # a product edit in progress: the import waits for it
        job = upload_csv(http, "sku,name\nSAY-1,Said\n", "said.csv").json()
        edit.wait_until_blocking()
        page.goto(f"/imports/{job['id']}")
        wait_for_a_refresh(page, "import-detail")
        announcer = page.locator("#outcome-announcer")
        expect(announcer).to_have_attribute("role", "status")
        seen = announcer.text_content()

    expect(page.locator("#job-badge")).to_have_text("Completed")
    expect(announcer).to_have_text("Import complete: Completed")
    assert seen != announcer.text_content()
