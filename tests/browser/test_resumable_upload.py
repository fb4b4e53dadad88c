"""The upload page sends files with tus-js-client: a reload mid-upload resumes from its offset,
Pause and Resume work, and the import that followed the upload completes once."""

import json
import os
import re
import time

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import text

from tests.conftest import paused
from tests.helpers import wait_for_job, wait_until
from tests.imports.conftest import PIECE, TUS, generate

from .conftest import shoot, sign_in

PICK = "Drop a CSV file here or choose a file"


def throttle_uploads(page: Page, bytes_per_second: int, cdp=None):
    """Slow the page's uploads (Chromium's network emulation), so one can be interrupted.

    Returns the session that holds the setting: a new rate must be sent through it (another
    session's rate does not replace it)."""
    if cdp is None:
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
    conditions = {"offline": False, "latency": 0, "downloadThroughput": -1}
    cdp.send(
        "Network.emulateNetworkConditions", conditions | {"uploadThroughput": bytes_per_second}
    )
    return cdp


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
    network = throttle_uploads(page, 150 * 1024)
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
    throttle_uploads(page, 4 * 1024 * 1024, network)  # the rest quickly
    with page.expect_request(lambda request: request.method == "PATCH") as resumed:
        page.get_by_label(PICK).set_input_files(str(path))
    # the dropped piece's bytes were kept: it goes on from where the server stopped
    assert held <= int(resumed.value.headers["upload-offset"]) < len(file.data)

    expect(page.locator("#job-message")).to_have_text("Import complete")
    expect(page.locator("#stat-rows")).to_have_text(f"{file.rows:,}")
    assert scalar(app, "SELECT count(*) FROM import_jobs") == 1  # the one asked for at first
    assert scalar(app, "SELECT count(*) FROM products") == len(file.expected)


DATABASE_AWAY = (
    '{"error": {"code": "database_unavailable", "message": "The database is not answering '
    'at the moment; nothing was changed. Try again in a few seconds."}}'
)


def test_a_resume_whose_offset_is_not_answered_for_a_moment_goes_on_at_the_same_address(
    page: Page, app, tmp_path
):
    # tus-js-client takes any answer but 423 to its HEAD for an upload gone: on a 503 (the
    # database away) or a proxy's 502 (the web server restarting) it made a new upload from
    # byte 0 and a second import, and the first waited for its bytes a day.
    file = generate(9_000)
    path = tmp_path / "catalog.csv"
    path.write_bytes(file.data)
    network = throttle_uploads(page, 150 * 1024)
    page.goto("/")
    page.get_by_label(PICK).set_input_files(str(path))
    page.wait_for_function("() => Number(document.getElementById('job-detail').dataset.sent) > 0")
    page.reload()  # mid-upload
    expect(page.locator("#resume-note")).to_contain_text("catalog.csv")
    held = server_offset(app)
    not_answered = []

    def offset_not_answered_once(route):
        if route.request.method == "HEAD" and not not_answered:
            not_answered.append(route.request.url)
            route.fulfill(status=503, content_type="application/json", body=DATABASE_AWAY)
        else:
            route.continue_()

    page.route(re.compile(r"/api/uploads/[0-9a-f]{32}$"), offset_not_answered_once)
    created = []
    page.on(
        "request",
        lambda request: (
            request.method == "POST"
            and request.url.endswith("/api/uploads")
            and created.append(request.url)
        ),
    )
    throttle_uploads(page, 4 * 1024 * 1024, network)
    with page.expect_request(lambda request: request.method == "PATCH") as resumed:
        page.get_by_label(PICK).set_input_files(str(path))

    assert not_answered and resumed.value.url == not_answered[0]  # the same upload
    assert held <= int(resumed.value.headers["upload-offset"]) < len(file.data)
    expect(page.locator("#job-message")).to_have_text("Import complete")
    assert created == []
    assert scalar(app, "SELECT count(*) FROM uploads") == 1
    assert scalar(app, "SELECT count(*) FROM import_jobs") == 1
    assert scalar(app, "SELECT count(*) FROM products") == len(file.expected)


# Records each text the upload's detail line shows, with the page's clock (performance.now()):
# the readings are judged afterwards, so the test never races the clock.
RECORD_READINGS = """() => {
    window.readings = [];
    const detail = document.getElementById('job-detail');
    new MutationObserver(() => window.readings.push(
        {at: performance.now(), text: detail.textContent}
    )).observe(detail, {childList: true, characterData: true, subtree: true});
}"""
# How long after the resumed upload's start its shown speeds are judged: the page's speed
# window (5 s) still reaches back to that start, so the old bug showed at least held / 4 s.
JUDGED_FROM, JUDGED_UNTIL = 1_000, 4_000


def speed_of(text: str) -> float:
    """The upload speed a detail line shows, in bytes per second (0 if it shows none)."""
    units = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
    for part in text.split(" · "):
        if part.endswith("/s"):
            number, unit = part[:-2].split(" ")
            return float(number) * units[unit]
    return 0.0


def test_the_speed_after_a_resume_counts_only_the_bytes_sent_since(page: Page, app, tmp_path):
    # About 10 MB, so that the rest is still on its way at Cancel however slow the machine:
    # with 1.5 MB, a run at load average 10 saw the upload end first, and the import shown.
    file = generate(60_000)
    path = tmp_path / "catalog.csv"
    path.write_bytes(file.data)
    network = throttle_uploads(page, 1024 * 1024)  # most of the file is sent before the reload
    page.goto("/")
    page.get_by_label(PICK).set_input_files(str(path))
    page.wait_for_function(
        "() => Number(document.getElementById('job-detail').dataset.sent) > 900000"
    )
    page.reload()
    expect(page.locator("#resume-note")).to_contain_text("catalog.csv")
    held = server_offset(app)
    rate = 48 * 1024  # the rest (minutes at this rate) is still being sent when judged
    throttle_uploads(page, rate, network)
    page.evaluate(RECORD_READINGS)
    page.get_by_label(PICK).set_input_files(str(path))
    page.wait_for_function(
        f"() => window.readings.length && window.readings.at(-1).at - window.readings[0].at"
        f" > {JUDGED_UNTIL}"
    )
    readings = page.evaluate("window.readings")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#upload-section")).to_be_visible()

    start = readings[0]["at"]  # the upload's start: "0 B of 1.5 MB sent"
    speeds = sorted(
        speed_of(reading["text"])
        for reading in readings
        if JUDGED_FROM <= reading["at"] - start <= JUDGED_UNTIL and speed_of(reading["text"])
    )
    assert len(speeds) >= 3, readings
    # Counting the bytes held before the reload shows at least held / 4 s, well over 3 times
    # the network's rate; the bytes sent since show about the rate (twice it leaves room for
    # its bursts). The median of many readings is not swayed by one burst.
    assert held / (JUDGED_UNTIL / 1000) > 3 * rate, held
    assert speeds[len(speeds) // 2] < 2 * rate, readings


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
    job = wait_for_job(http, jobs[0]["id"])
    assert job["status"] == "cancelled", job
    assert scalar(app, "SELECT count(*) FROM uploads") == 0
    page.reload()
    expect(page.get_by_label(PICK)).to_be_attached()
    expect(note).to_be_hidden()  # not told again

    # Its import, watched from the upload page, is not offered a Retry (it would be refused:
    # the file never arrived whole)
    page.goto(f"/?job={jobs[0]['id']}")
    expect(page.locator("#job-badge")).to_have_text("Cancelled")
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()
    expect(page.locator("#job-panel")).to_contain_text("Upload the file again")
    expect(page.locator("#job-panel")).not_to_contain_text("Retry it")


def test_a_workbook_refused_at_once_leaves_the_note_of_an_unfinished_upload(page: Page, tmp_path):
    # The note (and its "Discard it") is for the upload left behind: a file refused before
    # anything was sent changes nothing about it.
    path = tmp_path / "catalog.csv"
    path.write_bytes(generate(9_000).data)
    throttle_uploads(page, 100 * 1024)
    page.goto("/")
    page.get_by_label(PICK).set_input_files(str(path))
    page.wait_for_function("() => Number(document.getElementById('job-detail').dataset.sent) > 0")
    page.reload()
    note = page.locator("#resume-note")
    expect(note).to_contain_text("catalog.csv")

    workbook = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + b"x" * 20_000
    page.get_by_label(PICK).set_input_files(
        {"name": "Products.xlsx", "mimeType": "application/octet-stream", "buffer": workbook}
    )

    expect(page.locator("#upload-error")).to_contain_text("Products.xlsx is not a CSV file")
    expect(note).to_be_visible()
    expect(note.get_by_role("button", name="Discard it")).to_be_visible()


def leave_unfinished(page: Page, path) -> None:
    """Upload `path` slowly (the page's uploads stay slow) and reload mid-upload: the note
    offers to go on with it."""
    throttle_uploads(page, 100 * 1024)
    page.goto("/")
    page.get_by_label(PICK).set_input_files(str(path))
    page.wait_for_function("() => Number(document.getElementById('job-detail').dataset.sent) > 0")
    page.reload()
    expect(page.locator("#resume-note")).to_contain_text(path.name)


def test_a_file_refused_at_its_last_byte_is_not_offered_as_unfinished(page: Page, tmp_path):
    # Refused (422: only blank lines), nothing of it can be sent on; its saved resume stayed,
    # and every later visit said its upload "did not finish" and offered to go on with it.
    other = tmp_path / "other.csv"
    other.write_bytes(generate(9_000).data)
    leave_unfinished(page, other)
    blank = tmp_path / "blank.csv"
    blank.write_bytes(b" \r\n" * 10_000)  # 30 KB: a fraction of a second at that speed

    page.get_by_label(PICK).set_input_files(str(blank))
    expect(page.get_by_role("alert").filter(has_text="The file was not accepted")).to_contain_text(
        "The file is empty"
    )

    page.reload()
    note = page.locator("#resume-note")
    expect(note).to_contain_text("other.csv")  # the one left unfinished is still offered
    expect(note).not_to_contain_text("blank.csv")


def test_an_accounts_unfinished_uploads_are_not_offered_to_another_in_the_same_browser(
    page: Page, accounts, tmp_path
):
    # A browser people share kept one list: the next person was told of (and offered to
    # discard) the uploads someone else left, whose imports it may not even see.
    mine = tmp_path / "admins.csv"
    mine.write_bytes(generate(9_000).data)
    leave_unfinished(page, mine)

    page.context.clear_cookies()  # signed out; the browser's storage stays
    sign_in(page, accounts["editor"].email)
    theirs = tmp_path / "editors.csv"
    theirs.write_bytes(generate(9_000).data)
    leave_unfinished(page, theirs)
    note = page.locator("#resume-note")
    expect(note).not_to_contain_text("admins.csv")

    page.context.clear_cookies()
    sign_in(page, accounts["admin"].email)
    page.goto("/")
    expect(note).to_contain_text("admins.csv")
    expect(note).not_to_contain_text("editors.csv")


def test_an_upload_saved_before_uploads_were_kept_per_account_still_goes_on(
    page: Page, http, tmp_path
):
    # Saved by the release before (its key the library's own fingerprint, no account), it was
    # no longer offered, and choosing its file started again from byte 0 with a second import.
    file = generate(9_000)
    path = tmp_path / "catalog.csv"
    path.write_bytes(file.data)
    os.utime(path, (1_700_000_000, 1_700_000_000))  # the file's lastModified, in the key
    size, half = len(file.data), len(file.data) // 2
    created = http.post("/api/uploads", headers={**TUS, "Upload-Length": str(size)})
    address = "/api/uploads/" + created.headers["Location"].rsplit("/", 1)[-1]
    sent = http.patch(address, content=file.data[:half], headers={**PIECE, "Upload-Offset": "0"})
    assert sent.is_success, sent.text
    key = f"tus::tus-br-catalog.csv-text/csv-{size}-1700000000000-/api/uploads::1"
    saved = {"size": size, "metadata": {"filename": "catalog.csv"}, "uploadUrl": address}
    page.goto("/")
    page.evaluate("([key, value]) => localStorage.setItem(key, value)", [key, json.dumps(saved)])

    page.reload()
    expect(page.locator("#resume-note")).to_contain_text("catalog.csv")
    with page.expect_request(lambda request: request.method == "PATCH") as resumed:
        page.get_by_label(PICK).set_input_files(str(path))

    assert int(resumed.value.headers["upload-offset"]) == half  # from where it stopped
    expect(page.locator("#job-message")).to_have_text("Import complete")
    assert http.get("/api/imports").json()["total"] == 1


def test_an_import_waiting_for_its_stopped_upload_says_so_not_that_it_waits_for_a_worker(
    page: Page, http, artifacts
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

    def handed_back() -> bool:
        # one reading: two could see it queued before its claim, then started once claimed
        now = http.get(f"/api/imports/{job['id']}").json()
        return now["status"] == "queued" and now["started_at"] is not None

    wait_until(handed_back, "the import to give its slot back while the upload stands still")

    page.goto(f"/?job={job['id']}")

    expect(page.locator("#job-message")).to_contain_text("Waiting for the upload to go on")
    detail = page.locator("#job-detail")
    expect(detail).to_contain_text("choose the same file again in the browser that sent it")
    expect(detail).not_to_contain_text("Waiting for a worker")
    shoot(page, artifacts, "upload-page-upload-stalled")
    # the page can do what it says: back to the drop zone (the import goes on waiting)
    page.get_by_role("button", name="Choose the file again").click()
    expect(page.get_by_label(PICK)).to_be_attached()
    expect(page.locator("#upload-section")).to_be_visible()

    # the import's own page says what to do too, not only that it waits
    page.goto(f"/imports/{job['id']}")
    expect(page.locator(".job-message")).to_contain_text("Waiting for the upload to go on")
    stalled = page.locator("#upload-stalled")
    expect(stalled).to_contain_text("choose the same file again on the upload page")
    expect(stalled.get_by_role("link", name="upload page")).to_have_attribute("href", "/")
    shoot(page, artifacts, "import-page-upload-stalled")
    assert http.get(f"/api/imports/{job['id']}").json()["status"] == "queued"
    # or cancel it there, without going to the upload page first
    page.locator("#job-actions").get_by_role("button", name="Cancel import").click()
    dialog = page.get_by_role("dialog", name=f"Cancel import #{job['id']}")
    dialog.get_by_role("button", name="Cancel import").click()
    expect(page.locator("#job-badge")).to_have_text("Cancelled")
    expect(stalled).to_have_count(0)
    assert http.get(f"/api/imports/{job['id']}").json()["status"] == "cancelled"
    assert http.delete(url, headers=tus).status_code == 204


# Records what the bar shows each time it changes: its stage's label, its value, and whether
# the upload's own line is shown (judged afterwards: the test never races the page).
RECORD_BAR = """() => {
    window.bar = [];
    const read = () => {
        const stage = document.getElementById('job-stage');
        const done = document.getElementById('upload-done');
        window.bar.push({
            stage: stage ? stage.textContent : '',
            value: Number(document.getElementById('job-progress').getAttribute('aria-valuenow')),
            uploaded: Boolean(done && !done.hidden),
        });
    };
    const what = {attributes: true, childList: true, characterData: true, subtree: true};
    const observer = new MutationObserver(read);
    for (const id of ['job-progress', 'job-stage', 'upload-done']) {
        const node = document.getElementById(id);
        if (node) observer.observe(node, what);
    }
}"""


def stages(readings: list[dict]) -> list[tuple[str, list[int]]]:
    """The readings as (stage, its values in order), a stage each time it changes."""
    runs: list[tuple[str, list[int]]] = []
    for reading in readings:
        if not runs or runs[-1][0] != reading["stage"]:
            runs.append((reading["stage"], []))
        runs[-1][1].append(reading["value"])
    return runs


@pytest.mark.parametrize("way", ["resumable", "one request"])
def test_the_bar_never_goes_back_from_the_upload_to_the_import_that_read_it(
    page: Page, tmp_path, way
):
    # The import reads the rows as they arrive: when the last byte is sent (the upload's
    # 100%), it stands at its own reading share (some 29%). One bar going from 100% to 29%
    # looked like the work going backwards.
    if way == "one request":  # a browser without tus-js-client sends one multipart POST
        page.route(re.compile(r"/vendor/tus-js-client/"), lambda route: route.abort())
    file = generate(9_000)
    path = tmp_path / "catalog.csv"
    path.write_bytes(file.data)
    throttle_uploads(page, 512 * 1024)  # some 3 s: the import reads meanwhile
    page.goto("/")
    page.evaluate(RECORD_BAR)

    page.get_by_label(PICK).set_input_files(str(path))

    expect(page.locator("#job-message")).to_have_text("Import complete")
    runs = stages(page.evaluate("window.bar"))
    assert [stage for stage, _ in runs] == ["Upload", "Import"], runs
    for stage, values in runs:  # within a stage, never backwards
        assert values == sorted(values), (stage, values)
    assert runs[0][1][-1] == 100 and runs[1][1][-1] == 100, runs
    readings = page.evaluate("window.bar")
    # the upload's own line stands from the import's first reading to the end
    assert all(r["uploaded"] for r in readings if r["stage"] == "Import"), readings
    assert not any(r["uploaded"] for r in readings if r["stage"] == "Upload"), readings
    expect(page.locator("#upload-done")).to_have_text(re.compile(r"^\s*Uploaded 1\.\d MB\s*$"))
    expect(page.get_by_role("progressbar", name="Import Import complete")).to_be_visible()


def test_while_the_import_waits_the_upload_says_it_is_done_and_the_import_has_its_own_bar(
    page: Page, live_worker, artifacts, tmp_path
):
    file = generate(9_000)
    path = tmp_path / "catalog.csv"
    path.write_bytes(file.data)
    page.goto("/")
    with paused(live_worker):  # the import waits in the queue: the state holds
        page.get_by_label(PICK).set_input_files(str(path))
        expect(page.locator("#upload-done")).to_be_visible()
        expect(page.locator("#upload-done")).to_contain_text("Uploaded 1.")
        expect(page.locator("#job-stage")).to_have_text("Import")
        expect(page.locator("#job-badge")).to_have_text("Queued")
        expect(page.locator("#job-percent")).to_have_text("0%")
        expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "0")
        shoot(page, artifacts, "upload-done-import-queued")
    expect(page.locator("#job-message")).to_have_text("Import complete")
    expect(page.locator("#upload-done")).to_be_visible()
    shoot(page, artifacts, "upload-done-import-complete")


def job_file_size(app) -> int:
    """How many bytes of the (one) import's file the server holds: an upload removed (its
    DELETE) leaves them to the import that failed on them."""
    return os.path.getsize(scalar(app, "SELECT file_path FROM import_jobs"))


def binary_in_gzip(size: int) -> bytes:
    """A gzip file (the page lets it through, as it cannot look inside) of binary data."""
    import gzip
    import random

    return gzip.compress(b"\x00" + random.Random(7).randbytes(size), compresslevel=1)


def long_line(size: int) -> bytes:
    """A header, then a line longer than the import reads (4 MiB): failed some way in."""
    return b"sku,name,description\r\nA-1,Widget," + b"x" * size + b"\r\n"


@pytest.mark.parametrize(
    ("name", "make", "rate", "reason"),
    [
        ("catalog.csv.gz", binary_in_gzip, 256 * 1024, "The file is binary, not a CSV"),
        ("catalog.csv", long_line, 512 * 1024, "A line is longer than"),
    ],
    ids=["binary-in-gzip", "line-too-long"],
)
def test_an_upload_whose_import_failed_for_good_stops_at_once_and_says_why(
    page: Page, app, http, artifacts, tmp_path, name, make, rate, reason
):
    # The import reads the rows as they arrive. Once the file's bytes failed it, no retry or
    # mapping can help: the page went on sending the whole file (up to 1 GB) and only then
    # showed the failure. Throttled so that the whole file would take a minute or more: the
    # page's expectations wait 30 s at most, in which less than half of it can be sent.
    data = make(40 * 1024 * 1024 if rate > 256 * 1024 else 20 * 1024 * 1024)
    assert rate * 30 < len(data) / 2
    path = tmp_path / name
    path.write_bytes(data)
    throttle_uploads(page, rate)
    page.goto("/")
    page.get_by_label(PICK).set_input_files(str(path))

    alert = page.get_by_role("alert").filter(has_text="Nothing was imported")
    expect(alert).to_contain_text(reason)
    expect(alert).to_contain_text("upload that file")  # what to do
    expect(page.locator("#job-badge")).to_have_text("Failed")
    detail = page.locator("#job-detail")
    expect(detail).to_contain_text("The upload was stopped after ")
    expect(detail).to_contain_text("the rest of the file could not change this")
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()
    expect(page.get_by_role("button", name="Import another file")).to_be_visible()
    # removed as Cancel removes it (its DELETE), well before its end
    wait_until(lambda: scalar(app, "SELECT count(*) FROM uploads") == 0, "the upload removed")
    assert job_file_size(app) < len(data) / 2
    job = http.get("/api/imports").json()["items"][0]
    assert job["status"] == "failed" and job["retry_refusal"]
    expect(page).to_have_url(re.compile(rf"\?job={job['id']}$"))
    shoot(page, artifacts, "upload-stopped-import-failed")

    # nothing is left to resume: the drop zone says of no unfinished upload
    page.get_by_role("button", name="Import another file").click()
    expect(page.get_by_label(PICK)).to_be_attached()
    expect(page.locator("#resume-note")).to_be_hidden()


def test_an_upload_whose_import_lacks_a_column_goes_on_for_the_mappings_retry(
    page: Page, app, tmp_path
):
    # A column mapping retries the import with the file as uploaded: it must arrive whole.
    file = generate(20_000)  # about 3.4 MB: some 30 s at the rate below
    data = file.data.replace(b"name,sku,description", b"title,ref,description", 1)
    path = tmp_path / "catalog.csv"
    path.write_bytes(data)
    network = throttle_uploads(page, 100 * 1024)
    seen = []  # the import as the page read it, with whether its upload was then complete

    def record(route):
        response = route.fetch()
        if route.request.method == "GET" and response.ok:
            complete = scalar(app, "SELECT count(*) FROM uploads WHERE completed_at IS NOT NULL")
            seen.append((response.json()["status"], bool(complete)))
        route.fulfill(response=response)

    page.route(re.compile(r"/api/imports/\d+$"), record)
    page.goto("/")
    page.get_by_label(PICK).set_input_files(str(path))

    # the page read the import failed (it looks at it while the file goes up) mid-upload...
    deadline = time.monotonic() + 60
    while ("failed", False) not in seen:
        assert time.monotonic() < deadline, f"the page never read the import failed: {seen}"
        page.wait_for_timeout(100)  # the page's requests are answered meanwhile
    # ... and went on: no bytes were refused, the upload is there to be finished
    expect(page.locator("#job-badge")).to_have_text("Uploading")
    assert scalar(app, "SELECT count(*) FROM uploads") == 1
    throttle_uploads(page, -1, network)  # the rest at full speed

    expect(page.locator("#upload-done")).to_contain_text("Uploaded 3.")
    expect(page.locator("#job-badge")).to_have_text("Failed")
    expect(page.get_by_role("form", name="Column mapping")).to_be_visible()
    assert scalar(app, "SELECT count(*) FROM uploads WHERE completed_at IS NOT NULL") == 1
    assert job_file_size(app) == len(data)
