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
