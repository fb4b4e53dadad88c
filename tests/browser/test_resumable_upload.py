"""The upload page sends files with tus-js-client: a reload mid-upload resumes from its offset,
Pause and Resume work, and the import that followed the upload completes once."""

import os

from playwright.sync_api import Page, expect
from sqlalchemy import text

from tests.helpers import wait_for_job, wait_until
from tests.imports.conftest import generate

PICK = "Drop a CSV file here or choose a file"


def throttle_uploads(page: Page, bytes_per_second: int) -> None:
    """Slow the page's uploads (Chromium's network emulation), so one can be interrupted."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    conditions = {"offline": False, "latency": 0, "downloadThroughput": -1}
    cdp.send(
        "Network.emulateNetworkConditions", conditions | {"uploadThroughput": bytes_per_second}
    )


def bytes_sent(page: Page) -> int:
    return int(page.locator("#job-detail").get_attribute("data-sent") or 0)


def scalar(app, query: str):
    from product_importer.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(query)).scalar_one()


def server_offset(app) -> int:
    """How many bytes of the (one) upload the server holds."""
    return os.path.getsize(scalar(app, "SELECT file_path FROM uploads"))


def test_a_reload_mid_upload_resumes_from_the_servers_offset(page: Page, app, tmp_path):
    # Under the bulk path's 10,000 rows: an import that builds the catalog anew leaves the
    # products' id sequence where it was (tests that follow expect product id 1).
    file = generate(9_000)
    path = tmp_path / "catalog.csv"  # a file on disk: the same file picked again after a reload
    path.write_bytes(file.data)
    throttle_uploads(page, 150 * 1024)
    page.goto("/")
    page.get_by_label(PICK).set_input_files(str(path))
    expect(page.locator("#job-badge")).to_have_text("Uploading")
    page.wait_for_function("() => Number(document.getElementById('job-detail').dataset.sent) > 0")
    expect(page.locator("#job-detail")).to_contain_text(" sent · ")
    expect(page.locator("#job-detail")).to_contain_text("/s · about ")  # speed and time left

    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#job-badge")).to_have_text("Paused")
    paused_at = bytes_sent(page)
    page.get_by_role("button", name="Resume").click()
    page.wait_for_function(
        f"() => Number(document.getElementById('job-detail').dataset.sent) > {paused_at + 100_000}"
    )

    page.reload()  # mid-upload: the browser drops the connection
    expect(page.locator("#resume-note")).to_contain_text("catalog.csv")
    held = server_offset(app)
    assert 0 < held < len(file.data)
    throttle_uploads(page, 4 * 1024 * 1024)
    with page.expect_request(lambda request: request.method == "PATCH") as resumed:
        page.get_by_label(PICK).set_input_files(str(path))
    # the dropped piece's bytes were kept: it goes on from where the server stopped
    assert held <= int(resumed.value.headers["upload-offset"]) < len(file.data)

    expect(page.locator("#job-message")).to_have_text("Import complete")
    expect(page.locator("#stat-rows")).to_have_text(f"{file.rows:,}")
    assert scalar(app, "SELECT count(*) FROM import_jobs") == 1  # the one asked for at first
    assert scalar(app, "SELECT count(*) FROM products") == len(file.expected)


def shown_speed(page: Page) -> float:
    """The upload speed the page shows, in bytes per second (0 while it shows none)."""
    detail = page.locator("#job-detail").text_content()
    units = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
    for part in detail.split(" · "):
        if part.endswith("/s"):
            number, unit = part[:-2].split(" ")
            return float(number) * units[unit]
    return 0.0


def test_the_speed_after_a_resume_counts_only_the_bytes_sent_since(page: Page, app, tmp_path):
    file = generate(9_000)
    path = tmp_path / "catalog.csv"
    path.write_bytes(file.data)
    rate = 256 * 1024
    throttle_uploads(page, rate)  # for the page's whole life, reloads included
    page.goto("/")
    page.get_by_label(PICK).set_input_files(str(path))
    page.wait_for_function(
        "() => Number(document.getElementById('job-detail').dataset.sent) > 400000"
    )
    page.reload()
    expect(page.locator("#resume-note")).to_contain_text("catalog.csv")
    page.get_by_label(PICK).set_input_files(str(path))
    expect(page.locator("#job-detail")).to_contain_text("/s · about ")
    # the bytes held before the reload were not sent now: they say nothing of the speed (the
    # network sends at most `rate`; twice that leaves room for its bursts)
    assert 0 < shown_speed(page) < 2 * rate, page.locator("#job-detail").text_content()
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#upload-section")).to_be_visible()


def test_an_interrupted_upload_can_be_discarded_instead_of_resumed(page: Page, app, http, tmp_path):
    # Left alone, its import would wait for the bytes a day long, counted against the
    # account's queued imports, and the note would come back on every visit.
    file = generate(9_000)
    path = tmp_path / "abandoned.csv"
    path.write_bytes(file.data)
    throttle_uploads(page, 100 * 1024)
    page.goto("/")
    page.get_by_label(PICK).set_input_files(str(path))
    page.wait_for_function("() => Number(document.getElementById('job-detail').dataset.sent) > 0")
    page.wait_for_function(
        "() => localStorage.length && [...Array(localStorage.length).keys()].some("
        "(i) => localStorage.key(i).startsWith('product-importer:import-of-upload:'))"
    )
    page.reload()
    note = page.locator("#resume-note")
    expect(note).to_contain_text("abandoned.csv")

    note.get_by_role("button", name="Discard it").click()

    expect(note).to_be_hidden()
    expect(page.get_by_text("The unfinished upload was discarded.")).to_be_visible()
    jobs = http.get("/api/imports").json()["items"]
    assert len(jobs) == 1
    assert wait_for_job(http, jobs[0]["id"])["status"] == "cancelled"
    assert scalar(app, "SELECT count(*) FROM uploads") == 0
    page.reload()
    expect(page.get_by_label(PICK)).to_be_attached()
    expect(note).to_be_hidden()  # not told again


def test_an_import_waiting_for_its_stopped_upload_says_so_not_that_it_waits_for_a_worker(
    page: Page, http
):
    # An upload cut off (a closed laptop): its import goes back to the queue until the bytes
    # come. Watched from the history, the page must not say it waits for a worker.
    data = generate(20_000).data
    tus = {"Tus-Resumable": "1.0.0"}
    created = http.post("/api/uploads", headers={**tus, "Upload-Length": str(len(data))})
    url = created.headers["Location"]
    piece = {**tus, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    assert http.patch(url, content=data[: len(data) // 2], headers=piece).status_code == 204
    job = http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]}).json()
    wait_until(
        lambda: (
            http.get(f"/api/imports/{job['id']}").json()["status"] == "queued"
            and http.get(f"/api/imports/{job['id']}").json()["started_at"]
        ),
        "the import to give its slot back while the upload stands still",
    )

    page.goto(f"/?job={job['id']}")

    expect(page.locator("#job-message")).to_contain_text("Waiting for the upload to go on")
    detail = page.locator("#job-detail")
    expect(detail).to_contain_text("choose the same file again on the upload page")
    expect(detail).not_to_contain_text("Waiting for a worker")
    assert http.delete(url, headers=tus).status_code == 204
