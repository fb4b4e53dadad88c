"""Plans, change records, undo and the column mapping, as a person uses them on the upload page
and on an import's own page (/imports/<id>)."""

import re

from playwright.sync_api import Page, expect

from tests.conftest import paused
from tests.helpers import import_csv, upload_csv, wait_for_job
from tests.imports.conftest import TABLE_LOCK

from .conftest import shoot, sign_in
from .test_pages_by_role import WATCH_CSP
from .test_upload_page import csv_file

CATALOG = "sku,name,description,active\nKEEP-1,Kept,Same,true\nOLD-1,Old name,Old text,true\n"
FILE = "sku,name,description,active\nKEEP-1,Kept,Same,true\nold-1,New name,Old text,false\n"
FILE += "".join(f"NEW-{n:02},New {n},,true\n" for n in range(1, 26)) + ",No SKU,,\n"


def plan(http, content: str, filename: str = "plan.csv") -> dict:
    """Upload a file as a plan through the API; return the planned job."""
    response = upload_csv(http, content, filename, data={"plan": "true"})
    assert response.status_code == 202, response.text
    job = wait_for_job(http, response.json()["id"])
    assert job["status"] == "planned", job
    return job


def job_id(page: Page) -> int:
    """The id of the job the upload page follows (?job=<id>)."""
    expect(page).to_have_url(re.compile(r"\?job=\d+$"))
    return int(re.search(r"\?job=(\d+)$", page.url).group(1))


def catalog(http) -> list[tuple]:
    """Every product as (sku, name, description, active), by SKU."""
    items = http.get("/api/products", params={"per_page": 200, "sort": "sku"}).json()["items"]
    return [(p["sku"], p["name"], p["description"], p["active"]) for p in items]


def test_plan_first_on_the_upload_page_then_apply(page: Page, http, artifacts):
    import_csv(http, CATALOG)
    page.goto("/")
    page.get_by_label("Plan first (review before changing the catalog)").check()
    page.locator("#file-input").set_input_files(csv_file("plan.csv", FILE))

    expect(page.locator("#job-badge")).to_have_text("Planned")
    assert http.get(f"/api/imports/{job_id(page)}").json()["plan"] is True
    expect(page.get_by_text("Plan ready: the catalog has not changed yet")).to_be_visible()
    expect(page.locator("#job-percent")).to_have_text("40.0%")  # the apply does the rest
    expect(page.locator("#stat-created")).to_have_text("25")
    expect(page.locator("#stat-updated")).to_have_text("1")
    expect(page.locator("#stat-invalid")).to_have_text("1")
    expect(page.get_by_role("link", name="Download rejected rows")).to_be_visible()
    changes = page.locator("#job-plan")
    created = changes.get_by_role("tab", name="Created 25")
    expect(created).to_have_attribute("aria-selected", "true")
    expect(changes.locator("tbody tr")).to_have_count(20)  # the first page of 25
    expect(changes.locator("tbody tr").first).to_have_text(re.compile(r"NEW-01\s*New 1\s*true"))
    expect(changes.get_by_text("Page 1 of 2 · 25 created products")).to_be_visible()
    changes.get_by_role("button", name="Next ›").click()
    expect(changes.locator("tbody tr")).to_have_count(5)
    changes.get_by_role("tab", name="Updated 1").click()
    row = changes.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("old-1")
    expect(row).to_contain_text(re.compile(r"sku\s*OLD-1\s*→\s*old-1"))  # its spelling
    expect(row).to_contain_text(re.compile(r"name\s*Old name\s*→\s*New name"))
    expect(row).to_contain_text(re.compile(r"active\s*true\s*→\s*false"))
    expect(row).not_to_contain_text("description")  # only the fields that change
    assert [p[0] for p in catalog(http)] == ["KEEP-1", "OLD-1"]  # nothing changed yet
    shoot(page, artifacts, "plans-upload-planned")

    page.get_by_role("button", name="Apply").click()

    expect(page.locator("#job-message")).to_have_text("Import complete")
    expect(page.locator("#job-badge")).to_have_text("Completed with errors")
    expect(page.locator("#job-plan")).to_be_hidden()
    expect(page.get_by_role("button", name="Apply")).to_be_hidden()
    assert len(catalog(http)) == 27
    assert ("old-1", "New name", "Old text", False) in catalog(http)


def test_plan_then_discard_on_the_import_page_leaves_the_catalog_as_it_was(page: Page, http):
    import_csv(http, CATALOG)
    before = catalog(http)
    job = plan(http, FILE)
    page.add_init_script(WATCH_CSP)

    page.goto("/imports")
    page.locator(f'tr[data-job-id="{job["id"]}"]').get_by_role("link", name="Review plan").click()
    expect(page).to_have_url(re.compile(rf"/imports/{job['id']}$"))
    expect(page.locator("#job-badge")).to_have_text("Planned")
    expect(page.get_by_role("heading", name="What applying would change")).to_be_visible()
    expect(page.get_by_role("tab", name="Created 25")).to_be_visible()
    page.get_by_role("button", name="Discard").click()

    expect(page.locator("#job-badge")).to_have_text("Discarded")
    expect(page.get_by_text("This plan was discarded")).to_be_visible()
    expect(page.get_by_role("button", name="Apply")).to_have_count(0)
    assert http.get(f"/api/imports/{job['id']}").json()["status"] == "discarded"
    assert catalog(http) == before
    assert page.evaluate("window.__violations") == []  # it works under the CSP


def test_apply_a_plan_from_its_page_shows_the_change_record(page: Page, http, artifacts):
    import_csv(http, CATALOG)
    job = plan(http, FILE)
    page.goto(f"/imports/{job['id']}")
    shoot(page, artifacts, "plans-import-planned")

    page.get_by_role("button", name="Apply").click()

    expect(page.locator("#job-badge")).to_have_text("Completed with errors")
    expect(page.get_by_role("heading", name="Change record")).to_be_visible()
    page.get_by_role("tab", name="Updated 1").click()
    expect(page.locator("#changes-slot tbody tr")).to_have_count(1)
    expect(page.locator("#changes-slot tbody tr")).to_contain_text("Old name")
    download = page.get_by_role("link", name="Download changes.csv")
    expect(download).to_have_attribute(
        "href", f"/api/imports/{job['id']}/changes.csv?kind=updated&bom=true"
    )
    assert len(catalog(http)) == 27


def test_undo_asks_what_it_will_do_then_shows_its_result(page: Page, http, accounts, artifacts):
    import_csv(http, CATALOG)
    done = import_csv(http, FILE, filename="update.csv")
    edited = http.get("/api/products", params={"sku": "NEW-01"}).json()["items"][0]
    http.patch(f"/api/products/{edited['id']}", json={"name": "Edited since"})

    page.goto("/imports")
    page.get_by_role("link", name=f"Import #{done['id']}: update.csv").click()
    expect(page).to_have_url(re.compile(rf"/imports/{done['id']}$"))
    expect(page.locator("#started-by")).to_have_text(accounts["admin"].email)
    edited_row = page.get_by_role("row").filter(has_text="NEW-01")
    expect(edited_row).to_contain_text("changed since")  # its values now: "Edited since"
    expect(edited_row).to_contain_text("Edited since")
    expect(page.locator(".changed-since")).to_have_count(1)
    shoot(page, artifacts, "plans-import-completed")
    page.get_by_role("button", name="Undo this import").click()

    dialog = page.get_by_role("dialog", name=f"Undo import #{done['id']}")
    expect(dialog).to_contain_text("Delete 25 products it created and restore 1 it changed?")
    # the counts are what the import did: the undo leaves what changed or went since
    expect(dialog).to_contain_text("those changed or deleted since")
    shoot(page, artifacts, "plans-undo-dialog")
    dialog.get_by_role("button", name="Undo import").click()

    expect(page).not_to_have_url(re.compile(rf"/imports/{done['id']}$"))
    expect(page.get_by_text(f"Import #{done['id']} was undone")).to_be_visible()
    expect(page.locator("#stat-deleted")).to_have_text("24")
    expect(page.locator("#stat-conflicts")).to_have_text("1")
    expect(page.get_by_text("1 product was left as it is")).to_be_visible()
    shoot(page, artifacts, "plans-undo-result")
    assert catalog(http) == [
        ("KEEP-1", "Kept", "Same", True),
        ("NEW-01", "Edited since", "", True),
        ("OLD-1", "Old name", "Old text", True),
    ]
    page.goto(f"/imports/{done['id']}")
    expect(page.get_by_text("This import was undone")).to_be_visible()
    expect(page.get_by_role("button", name="Undo this import")).to_have_count(0)


def test_an_import_undone_in_another_tab_shows_it_when_undo_is_refused(page: Page, http):
    import_csv(http, CATALOG)
    done = import_csv(http, FILE, filename="update.csv")
    page.goto(f"/imports/{done['id']}")
    page.get_by_role("button", name="Undo this import").click()
    undo = wait_for_job(http, http.post(f"/api/imports/{done['id']}/undo").json()["id"])
    assert undo["status"] == "completed", undo

    page.get_by_role("dialog").get_by_role("button", name="Undo import").click()

    expect(page.locator(".notice").filter(has_text="already undone")).to_have_count(1)
    expect(page.get_by_text("This import was undone")).to_be_visible()
    expect(page.get_by_role("button", name="Undo this import")).to_have_count(0)


def test_an_import_page_shows_the_outcome_of_its_undo_once_the_undo_has_ended(
    page: Page, http, live_worker
):
    import_csv(http, CATALOG)
    done = import_csv(http, FILE, filename="update.csv")
    with paused(live_worker):  # the undo waits in the queue: the page says so
        undo = http.post(f"/api/imports/{done['id']}/undo").json()
        page.goto(f"/imports/{done['id']}")
        expect(page.get_by_text("This import is being undone")).to_be_visible()

    assert wait_for_job(http, undo["id"])["status"] == "completed"
    # the page, left open, follows the undo to its end: no reload
    expect(page.get_by_text("This import was undone")).to_be_visible()
    expect(page.get_by_text("This import is being undone")).to_have_count(0)


def test_mapping_form_retries_the_same_file_with_the_chosen_columns(page: Page, http, artifacts):
    page.goto("/")
    content = "Item Code,Title,Notes\nA-1,Apple,Red\nB-2,Banana,\n"
    page.locator("#file-input").set_input_files(csv_file("erp.csv", content))

    expect(page.locator("#job-badge")).to_have_text("Failed")
    expect(page.get_by_role("alert").filter(has_text="Nothing was imported")).to_contain_text("sku")
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()  # it would fail the same way
    form = page.get_by_role("form", name="Column mapping")
    expect(form.get_by_label("sku")).to_contain_text("Item Code")
    form.get_by_role("button", name="Import with these columns").click()
    expect(form.get_by_text("Choose the column that holds the sku.")).to_be_visible()
    shoot(page, artifacts, "plans-upload-mapping")
    form.get_by_label("sku").select_option("Item Code")
    form.get_by_label("name", exact=True).select_option("Title")
    form.get_by_label("description (optional)").select_option("Notes")
    with page.expect_request(re.compile(r"/api/imports/\d+/retry$")) as retry:
        form.get_by_role("button", name="Import with these columns").click()
    assert retry.value.post_data_json["columns"] == {
        "sku": "Item Code",
        "name": "Title",
        "description": "Notes",
    }

    expect(page.locator("#job-message")).to_have_text("Import complete")
    expect(page.locator("#stat-created")).to_have_text("2")
    assert catalog(http) == [("A-1", "Apple", "Red", True), ("B-2", "Banana", "", True)]


def test_mapping_form_does_not_offer_a_column_the_header_names_twice(page: Page, http):
    # "name" twice: choosing it would fail the same way again, round and round.
    page.goto("/")
    content = "sku,Name,name,Title\nA-1,First,Second,Apple\n"
    page.locator("#file-input").set_input_files(csv_file("twice.csv", content))
    expect(page.locator("#job-badge")).to_have_text("Failed")
    form = page.get_by_role("form", name="Column mapping")
    name = form.get_by_label("name", exact=True)
    expect(name).to_have_value("")  # not preset to a column it cannot take
    twice = name.locator("option", has_text="name (twice in the file)")
    expect(twice).to_have_count(1)
    expect(twice).to_be_disabled()
    expect(form.get_by_label("sku")).to_have_value("sku")
    name.select_option("Title")
    form.get_by_role("button", name="Import with these columns").click()

    expect(page.locator("#job-message")).to_have_text("Import complete")
    assert catalog(http) == [("A-1", "Apple", "", True)]


def test_mapping_form_leaves_out_an_optional_field_the_header_names_twice(page: Page, http):
    # Left at "(not in the file)", the field must not be found by its own name again.
    page.goto("/")
    content = "sku,name,Description,description\nA-1,Apple,x,y\n"
    page.locator("#file-input").set_input_files(csv_file("twice.csv", content))
    expect(page.locator("#job-badge")).to_have_text("Failed")
    form = page.get_by_role("form", name="Column mapping")
    expect(form.get_by_label("description (optional)")).to_have_value("")
    form.get_by_role("button", name="Import with these columns").click()

    expect(page.locator("#job-message")).to_have_text("Import complete")
    assert catalog(http) == [("A-1", "Apple", "", True)]


def test_mapping_form_on_the_import_page(page: Page, http, artifacts):
    failed = import_csv(http, "code;title\nA-1;Apple\n", filename="erp.csv")
    assert failed["header"] == ["code", "title"]
    page.goto(f"/imports/{failed['id']}")
    expect(page.get_by_role("heading", name="Choose the columns")).to_be_visible()
    shoot(page, artifacts, "plans-import-mapping")
    page.get_by_label("sku").select_option("code")
    page.get_by_label("name", exact=True).select_option("title")
    page.get_by_role("button", name="Import with these columns").click()

    expect(page).to_have_url(re.compile(rf"/imports/{failed['id'] + 1}$"))
    expect(page.locator("#job-badge")).to_have_text("Completed")
    assert catalog(http) == [("A-1", "Apple", "", True)]


def stopped_by_the_threshold(page: Page, content: str) -> int:
    """Upload `content` from the upload page with a limit of 10% invalid rows, which it
    passes: return the failed import's id."""
    page.goto("/")
    page.get_by_label("Stop if more than").check()
    page.get_by_label("Percentage of invalid rows allowed").fill("10")
    page.locator("#file-input").set_input_files(csv_file("bad.csv", content))
    expect(page.locator("#job-badge")).to_have_text("Failed")
    return job_id(page)


def test_the_threshold_option_is_sent_and_stops_the_import(page: Page, http):
    stopped = stopped_by_the_threshold(page, "sku,name\nA-1,Apple\n,No SKU\n")

    assert http.get(f"/api/imports/{stopped}").json()["max_invalid"] == "10%"
    reason = page.get_by_role("alert").filter(has_text="Nothing was imported")
    expect(reason).to_contain_text("1 of 2")
    expect(page.get_by_role("link", name="Download rejected rows")).to_be_visible()
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()  # it would stop again
    assert catalog(http) == []


def test_an_import_stopped_by_the_threshold_can_go_on_without_it(page: Page, http):
    # The reason says to retry with a higher limit: the page offers that, without an upload.
    stopped = stopped_by_the_threshold(page, "sku,name\nA-1,Apple\n,No SKU\nB-1,Banana\n")

    page.get_by_role("button", name="Import the valid rows anyway").click()

    expect(page.locator("#job-badge")).to_have_text("Completed with errors")
    assert job_id(page) != stopped
    assert [p[0] for p in catalog(http)] == ["A-1", "B-1"]
    expect(page.get_by_role("button", name="Import the valid rows anyway")).to_be_hidden()

    page.goto(f"/imports/{stopped}")  # its own page offers the same
    page.get_by_role("button", name="Import the valid rows anyway").click()
    expect(page.locator("#job-badge")).to_have_text("Completed with errors")


def test_the_button_that_went_on_stays_busy_until_the_new_imports_page_comes(page: Page, http):
    # It was enabled again as its answer came, before the browser left: pressed again then
    # (a double click), it queued a second import of the file.
    stopped = stopped_by_the_threshold(page, "sku,name\nA-1,Apple\n,No SKU\nB-1,Banana\n")
    page.goto(f"/imports/{stopped}")
    # What the button is as the browser leaves, kept for the next page (of the same tab)
    page.evaluate(
        """() => addEventListener("beforeunload", () => sessionStorage.setItem("busy",
            document.querySelector("[data-action=anyway]").disabled))"""
    )

    page.get_by_role("button", name="Import the valid rows anyway").click()

    expect(page.locator("#job-badge")).to_have_text("Completed with errors")
    assert page.evaluate("sessionStorage.getItem('busy')") == "true"
    assert len(http.get("/api/imports").json()["items"]) == 2


VIEWER_CANNOT = "an editor or admin can apply or discard it"


def test_a_viewer_sees_an_import_but_no_action(signed_out_page: Page, accounts, http, artifacts):
    job = plan(http, "sku,name\nA-1,Apple\n")
    page = signed_out_page
    sign_in(page, accounts["viewer"].email)
    page.goto(f"/imports/{job['id']}")
    expect(page.locator("#job-badge")).to_have_text("Planned")
    expect(page.get_by_role("tab", name="Created 1")).to_be_visible()
    expect(page.get_by_role("button", name="Apply")).to_have_count(0)
    expect(page.get_by_role("button", name="Discard")).to_have_count(0)
    # told who can act on it, not to do what it cannot
    expect(page.locator("#job-summary")).to_contain_text(VIEWER_CANNOT)
    expect(page.locator("#job-summary")).not_to_contain_text(re.compile(r"[Tt]hen apply|Apply it"))
    shoot(page, artifacts, "plans-import-planned-viewer")

    page.goto(f"/?job={job['id']}")  # the upload page following the plan
    expect(page.locator("#job-badge")).to_have_text("Planned")
    expect(page.locator("#job-panel")).to_contain_text(VIEWER_CANNOT)
    expect(page.locator("#job-panel")).not_to_contain_text(re.compile(r"[Tt]hen apply|Apply it"))
    expect(page.get_by_role("button", name="Apply")).to_be_hidden()

    # an import that does not exist: no "Failed" import, and somewhere to go (a viewer's
    # page had no action at all)
    page.goto("/?job=999999")
    expect(page.locator("#job-panel")).to_contain_text("This import does not exist")
    expect(page.locator("#job-badge")).to_be_hidden()
    page.get_by_role("link", name="See the imports").click()
    expect(page).to_have_url(re.compile(r"/imports$"))


def test_an_editor_is_told_to_apply_or_discard_a_plan(signed_out_page: Page, accounts, http):
    job = plan(http, "sku,name\nA-1,Apple\n")
    page = signed_out_page
    sign_in(page, accounts["editor"].email)
    for path in (f"/imports/{job['id']}", f"/?job={job['id']}"):
        page.goto(path)
        expect(page.locator("#job-badge")).to_have_text("Planned")
        editor_told = "Review the changes below, then apply or discard it."
        expect(page.get_by_text(editor_told)).to_be_visible()
        expect(page.get_by_text(VIEWER_CANNOT)).to_have_count(0)
        expect(page.get_by_role("button", name="Apply")).to_be_visible()


def test_a_viewer_is_not_offered_the_column_mapping_of_a_failed_import(
    signed_out_page: Page, accounts, http
):
    failed = import_csv(http, "Item Code,Title\nX-1,Thing\n")
    assert failed["header"] == ["Item Code", "Title"]
    page = signed_out_page
    sign_in(page, accounts["viewer"].email)
    page.goto(f"/imports/{failed['id']}")
    expect(page.locator("#job-error")).to_contain_text("Missing required columns")
    expect(page.get_by_role("heading", name="Choose the columns")).to_have_count(0)
    expect(page.get_by_role("button", name="Import with these columns")).to_have_count(0)


def test_an_unknown_import_is_a_404_page(page: Page):
    response = page.goto("/imports/999999")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.get_by_text("Import 999999 does not exist.")).to_be_visible()


def test_the_same_file_again_is_named_on_the_plan(page: Page, http):
    first = import_csv(http, FILE, filename="monday.csv")
    page.goto("/")
    page.get_by_label("Plan first (review before changing the catalog)").check()
    page.locator("#file-input").set_input_files(csv_file("tuesday.csv", FILE))

    expect(page.locator("#job-badge")).to_have_text("Planned")
    warning = page.get_by_text(f"This file is identical to import #{first['id']} of")
    expect(warning).to_be_visible()
    page.get_by_role("link", name=f"See import #{first['id']}").click()
    expect(page).to_have_url(re.compile(rf"/imports/{first['id']}$"))
    expect(page.get_by_role("heading", name="monday.csv")).to_be_visible()


def test_the_page_of_a_running_import_follows_it_to_its_change_record(page: Page, http, holding):
    with holding(TABLE_LOCK) as edit:  # a product edit in progress: the import waits for it
        response = http.post("/api/imports", files={"file": ("run.csv", b"sku,name\nA-1,Apple\n")})
        job = response.json()
        page.goto(f"/imports/{job['id']}")
        edit.wait_until_blocking()
        expect(page.locator("#job-badge")).to_contain_text("Running")
        expect(page.get_by_role("progressbar")).to_be_visible()
        expect(page.get_by_role("link", name="Watch progress")).to_have_attribute(
            "href", f"/?job={job['id']}"
        )
        # products are counted as the merge ends: not known yet, not "0 created"
        for stat in ("created", "updated", "unchanged"):
            expect(page.locator(f"#stat-{stat}")).to_have_text("–")
        expect(page.locator("#stat-rows")).to_have_text("1")

    expect(page.locator("#job-badge")).to_have_text("Completed")
    expect(page.locator("#stat-created")).to_have_text("1")
    expect(page.locator("#stat-unchanged")).to_have_text("0")
    expect(page.get_by_role("heading", name="Change record")).to_be_visible()
    expect(page.locator("#changes-slot tbody tr")).to_have_text(re.compile(r"A-1\s*Apple\s*true"))
    # Undo asks what it will do as the import ended, not as it was when the page opened
    # ("It changed no products", for an import that created one)
    page.get_by_role("button", name="Undo this import").click()
    expect(page.get_by_role("dialog")).to_contain_text("Delete 1 product it created?")


def test_a_plan_applied_elsewhere_shows_what_became_of_it_on_a_stale_page(page: Page, http):
    # Two people (or two tabs) review the same plan; one applies it. The other's Apply is
    # refused, and the page then shows the import as it is, not the plan with its buttons.
    import_csv(http, CATALOG)
    job = plan(http, FILE)
    page.goto(f"/imports/{job['id']}")
    expect(page.get_by_role("button", name="Apply")).to_be_visible()
    assert http.post(f"/api/imports/{job['id']}/apply").status_code == 202

    page.get_by_role("button", name="Apply").click()

    expect(page.locator(".notice").filter(has_text="not a plan")).to_have_count(1)
    expect(page.locator("#job-badge")).to_have_text("Completed with errors")
    expect(page.get_by_role("button", name="Apply")).to_have_count(0)
    expect(page.get_by_role("button", name="Discard")).to_have_count(0)


def test_a_plan_discarded_elsewhere_shows_it_on_the_stale_upload_page(page: Page, http):
    job = plan(http, FILE)
    page.goto(f"/?job={job['id']}")
    expect(page.locator("#job-badge")).to_have_text("Planned")
    assert http.post(f"/api/imports/{job['id']}/discard").status_code == 200

    page.get_by_role("button", name="Apply").click()

    expect(page.locator("#job-badge")).to_have_text("Discarded")
    expect(page.get_by_role("button", name="Apply")).to_be_hidden()
    expect(page.get_by_role("button", name="Discard")).to_be_hidden()


def test_a_change_record_of_one_product_counts_it_in_the_singular(page: Page, http):
    """Not "1 created products" under the change list."""
    job = import_csv(http, "sku,name\nONLY-1,Only one\n", "one.csv")

    page.goto(f"/imports/{job['id']}")

    expect(page.locator(".page-status")).to_have_text("Page 1 of 1 · 1 created product")


def test_paging_the_change_record_with_the_keyboard_keeps_the_focus_on_its_buttons(
    page: Page, http
):
    """Next pressed onto the last page is disabled: the focus moves to Previous, and back."""
    rows = "".join(f"KEY-{n:02},Key {n}\n" for n in range(1, 26))  # 20 a page: two pages
    job = import_csv(http, "sku,name\n" + rows, "keys.csv")
    page.goto(f"/imports/{job['id']}")
    status = page.locator(".page-status")
    expect(status).to_have_text("Page 1 of 2 · 25 created products")

    page.get_by_role("button", name="Next ›").press("Enter")
    expect(status).to_have_text("Page 2 of 2 · 25 created products")
    expect(page.get_by_role("button", name="‹ Previous")).to_be_focused()

    page.keyboard.press("Enter")
    expect(status).to_have_text("Page 1 of 2 · 25 created products")
    expect(page.get_by_role("button", name="Next ›")).to_be_focused()


def test_a_plan_discarded_on_the_upload_page_shows_no_product_created(page: Page, http):
    """Its counts were what applying would have done: after Discard none is shown as done."""
    job = plan(http, FILE)
    page.goto(f"/?job={job['id']}")
    expect(page.locator("#stat-created")).to_have_text("27")  # "To create": all of FILE is new

    page.get_by_role("button", name="Discard").click()

    expect(page.locator("#job-badge")).to_have_text("Discarded")
    for name in ("created", "updated", "unchanged"):
        expect(page.locator(f"#stat-{name}")).to_have_text("–")


def test_a_plan_discarded_on_the_upload_page_is_not_timed_to_its_discard(page: Page, http):
    """Its wait for review is no duration of the plan: no "Finished in", no duration."""
    job = plan(http, FILE)
    page.goto(f"/?job={job['id']}")
    expect(page.locator("#job-detail")).to_contain_text("Read and compared in")

    page.get_by_role("button", name="Discard").click()

    expect(page.locator("#job-badge")).to_have_text("Discarded")
    expect(page.locator("#job-detail")).to_have_text("")
    expect(page.locator("#stat-eta")).to_have_text("–")


def test_rows_repeating_an_sku_are_said_on_a_plan_and_on_the_imports_page(page: Page, http):
    # Three rows read, two products to create, none rejected: only the history of a completed
    # import said where the third went, never a plan nor an import's own page.
    plan = import_csv(http, "sku,name\nA-1,Apple\nB-2,Banana\na-1,Apricot\n", data={"plan": "true"})
    note = "1 row repeated an earlier SKU; the last one was kept"

    page.goto(f"/?job={plan['id']}")
    expect(page.locator("#job-panel")).to_contain_text(
        f"create 2 products, update 0 and leave 0 unchanged. {note}."
    )
    page.goto("/imports")
    expect(page.locator(f'tr[data-job-id="{plan["id"]}"]')).to_contain_text(note)
    page.goto(f"/imports/{plan['id']}")
    expect(page.locator("#stat-superseded")).to_have_text("1")

    wait_for_job(http, http.post(f"/api/imports/{plan['id']}/apply").json()["id"])
    page.reload()
    expect(page.locator("#stat-created")).to_have_text("2")
    expect(page.locator("#stat-superseded")).to_have_text("1")
    expect(page.locator("#stat-superseded")).to_have_attribute("title", f"{note}.")
