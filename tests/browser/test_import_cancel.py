"""Cancel on an import's own page (/imports/<id>): offered to editors while the job is queued
or running, confirmed first, then followed to its end without a reload."""

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import REJECTED_AT_ONCE, paused
from tests.helpers import upload_csv, wait_for_job

from .conftest import shoot, sign_in

SMALL = "sku,name\nA-1,Apple\n"


def held_file() -> str:
    """A file whose reading stops half-way under `holding_rejections` (its rejected rows)."""
    rows = [f"SKU-{n},Widget {n}" for n in range(10_000)]
    nameless = [f"NONAME-{n}," for n in range(REJECTED_AT_ONCE)]
    return "sku,name\n" + "\n".join(rows[:5000] + nameless + rows[5000:]) + "\n"


def cancel_button(page: Page):
    """The page's own Cancel (the dialog's confirm button has the same words)."""
    return page.locator("#job-actions").get_by_role("button", name="Cancel import")


def open_cancel(page: Page, job_id: int):
    """Press Cancel import; return its confirmation dialog."""
    cancel_button(page).click()
    dialog = page.get_by_role("dialog", name=f"Cancel import #{job_id}")
    expect(dialog).to_be_visible()
    return dialog


def status(http, job_id: int) -> str:
    return http.get(f"/api/imports/{job_id}").json()["status"]


def test_a_queued_import_is_cancelled_from_its_page_once_confirmed(
    page: Page, http, live_worker, artifacts
):
    with paused(live_worker):  # no worker takes it: it stays queued
        job = upload_csv(http, SMALL, "fruit.csv").json()
        page.goto(f"/imports/{job['id']}")
        expect(page.locator("#job-badge")).to_have_text("Queued")
        shoot(page, artifacts, "import-page-queued-with-cancel")

        dialog = open_cancel(page, job["id"])
        expect(dialog).to_contain_text("Stop this import?")
        expect(dialog).to_contain_text("the catalog stays as it is")
        expect(dialog.get_by_role("button", name="Cancel import")).to_be_focused()
        shoot(page, artifacts, "import-page-cancel-dialog")
        dialog.get_by_role("button", name="Keep the import").click()
        expect(dialog).to_be_hidden()
        expect(cancel_button(page)).to_be_focused()  # back where the person was
        assert status(http, job["id"]) == "queued"

        cancel_button(page).press("Enter")  # by keyboard this time: the confirm has the focus
        expect(dialog.get_by_role("button", name="Cancel import")).to_be_focused()
        page.keyboard.press("Enter")

        expect(page.locator("#job-badge")).to_have_text("Cancelled")
        expect(page.locator("#outcome-title")).to_have_text("Import cancelled")
        # its button gone, the focus is on what became of the import, not lost at the top
        expect(page.locator("#outcome-title")).to_be_focused()
        expect(cancel_button(page)).to_have_count(0)
        expect(page.get_by_role("link", name="Watch progress")).to_have_count(0)
        expect(page.get_by_role("button", name="Retry")).to_be_visible()
        assert status(http, job["id"]) == "cancelled"
        shoot(page, artifacts, "import-page-cancelled")


def test_a_running_import_says_it_is_being_cancelled_until_it_has_stopped(
    page: Page, http, holding_rejections, artifacts
):
    with holding_rejections() as reading:  # the import stops half-way through the file
        job = upload_csv(http, held_file(), "held.csv").json()
        reading.wait_until_blocking()
        page.goto(f"/imports/{job['id']}")
        expect(page.locator("#job-badge")).to_contain_text("Running")

        open_cancel(page, job["id"]).get_by_role("button", name="Cancel import").click()

        # asked to stop, it stops at its next step: said, and not offered again meanwhile
        expect(page.locator("#cancelling")).to_contain_text("Being cancelled")
        expect(cancel_button(page)).to_have_count(0)
        expect(page.locator("#outcome-title")).to_be_focused()
        expect(page.locator("#job-badge")).to_contain_text("Running")
        assert status(http, job["id"]) == "running"
        shoot(page, artifacts, "import-page-being-cancelled")

    expect(page.locator("#job-badge")).to_have_text("Cancelled")
    expect(page.locator("#cancelling")).to_have_count(0)
    expect(page.locator("#outcome-title")).to_have_text("Import cancelled")
    expect(page.locator("#outcome-title")).to_be_focused()
    assert status(http, job["id"]) == "cancelled"
    assert http.get("/api/products").json()["total"] == 0


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_cancel_is_offered_to_whoever_may_cancel_an_import(
    signed_out_page: Page, accounts, http, live_worker, role
):
    page = signed_out_page
    sign_in(page, accounts[role].email)
    with paused(live_worker):
        job = upload_csv(http, SMALL, "admins.csv").json()  # the admin's import
        page.goto(f"/imports/{job['id']}")
        expect(page.locator("#job-badge")).to_have_text("Queued")
        if role == "viewer":  # follows an import, cannot change it
            expect(page.get_by_role("link", name="Watch progress")).to_be_visible()
            expect(page.get_by_role("button", name="Cancel import")).to_have_count(0)
            expect(page.locator("#cancel-dialog")).to_have_count(0)
            assert http.post(f"/api/imports/{job['id']}/cancel").status_code == 202
            return
        # an editor may cancel anyone's import, as the API lets it
        open_cancel(page, job["id"]).get_by_role("button", name="Cancel import").click()
        expect(page.locator("#job-badge")).to_have_text("Cancelled")
        assert status(http, job["id"]) == "cancelled"


@pytest.mark.parametrize("where", ["on the button", "confirming"])
def test_cancel_goes_away_when_the_import_ends_by_itself(page: Page, http, live_worker, where):
    with paused(live_worker):
        job = upload_csv(http, SMALL, "fruit.csv").json()
        page.goto(f"/imports/{job['id']}")
        cancel_button(page).focus()
        if where == "confirming":
            dialog = open_cancel(page, job["id"])

    expect(page.locator("#job-badge")).to_have_text("Completed")
    expect(cancel_button(page)).to_have_count(0)
    # nothing left to confirm, and the focus is on how it ended
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.locator("#outcome-title")).to_be_focused()
    expect(page.locator("#outcome-title")).to_have_text("Import complete")
    if where == "confirming":
        expect(dialog).to_be_hidden()


def test_a_cancel_refused_as_the_import_ended_meanwhile_shows_how_it_ended(
    page: Page, http, live_worker
):
    pattern = "**/imports/*"  # the page's own refresh (not /api/...): it sees nothing meanwhile
    with paused(live_worker):
        job = upload_csv(http, SMALL, "fruit.csv").json()
        page.goto(f"/imports/{job['id']}")
        dialog = open_cancel(page, job["id"])
        with page.expect_event("requestfailed"):  # no refresh asked before is still on its way
            page.route(pattern, lambda route: route.abort())
    assert wait_for_job(http, job["id"])["status"] == "completed"

    dialog.get_by_role("button", name="Cancel import").click()

    expect(page.locator(".notice")).to_contain_text(
        f"Could not cancel: Import {job['id']} has already finished (completed)."
    )
    expect(dialog).to_be_hidden()
    page.unroute(pattern)
    expect(page.locator("#job-badge")).to_have_text("Completed")
    expect(cancel_button(page)).to_have_count(0)


def test_a_cancel_sent_after_the_session_ended_asks_to_sign_in_then_goes_through(
    page: Page, http, live_worker
):
    with paused(live_worker):
        job = upload_csv(http, SMALL, "fruit.csv").json()
        page.goto(f"/imports/{job['id']}")
        dialog = open_cancel(page, job["id"])
        cookies = page.context.cookies()
        page.context.clear_cookies()  # signed out in another tab, or the session expired

        dialog.get_by_role("button", name="Cancel import").click()

        notice = page.locator("#signed-out-notice")
        expect(notice).to_contain_text("You are signed out: your session has ended.")
        # the dialog stays, its notice inside it (the rest of the page is inert): its link
        # signs in again in a new tab, and the cancel can then be pressed again
        expect(dialog.get_by_role("link", name="Sign in again")).to_be_visible()
        expect(dialog).to_be_visible()
        assert status(http, job["id"]) == "queued"
        page.context.add_cookies(cookies)  # signed in again

        dialog.get_by_role("button", name="Cancel import").click()

        expect(page.locator("#job-badge")).to_have_text("Cancelled")
        assert status(http, job["id"]) == "cancelled"
