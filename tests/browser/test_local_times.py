"""Every time a page shows a person is in the reader's time zone, the moments the server writes
into its messages too (a warning, a webhook's reason, an audit detail); the API keeps UTC."""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from tests.helpers import import_csv, wait_until
from tests.webhooks.receiver import Answer, Receiver

from .conftest import shoot, sign_in

# Five and a half hours from UTC: a time shown in UTC cannot pass for this one.
ZONE = "Asia/Kolkata"
FILE = "sku,name\nA-1,Apple\nB-2,Pear\n"


@pytest.fixture
def kolkata_page(browser, live_server, live_worker, accounts):
    """A page signed in as the admin, in a browser whose clock reads Kolkata's time."""
    viewport = {"width": 1280, "height": 900}
    context = browser.new_context(
        base_url=live_server, timezone_id=ZONE, locale="en-US", viewport=viewport
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    sign_in(page, accounts["admin"].email)
    yield page
    context.close()


def local(stamp: str) -> re.Pattern:
    """How the pages show an ISO 8601 UTC moment in Kolkata: "Dec 5, 2026, 8:00 AM" (the
    space before AM may be a narrow one)."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(ZoneInfo(ZONE))
    hour = moment.strftime("%I").lstrip("0")
    day = f"{moment:%b} {moment.day}, {moment.year}, {hour}:{moment:%M}"
    return re.compile(rf"{re.escape(day)}\s{moment:%p}")


def shown_in_utc(job: dict) -> str:
    """The warning's moment as the API writes it (UTC, to the minute)."""
    return datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00")).strftime(
        "%Y-%m-%d %H:%M UTC"
    )


def test_the_same_file_warning_shows_the_earlier_imports_time_in_the_readers_zone(
    kolkata_page: Page, http, artifacts
):
    page = kolkata_page
    first = import_csv(http, FILE, filename="monday.csv")
    again = import_csv(http, FILE, filename="tuesday.csv")
    # the API says it in UTC, as it always did
    assert again["warnings"] == [
        f"This file is identical to import #{first['id']} of {shown_in_utc(first)}."
    ]

    page.goto(f"/imports/{again['id']}")

    warning = page.locator("#job-warnings li")
    said = rf"^This file is identical to import #{first['id']} of "
    expect(warning).to_have_text(re.compile(said))
    expect(warning).to_contain_text(local(first["finished_at"]))
    expect(warning).not_to_contain_text("UTC")
    # the page's own time (started ...) reads the same way
    expect(page.locator(".lead time")).to_contain_text(local(again["created_at"]))
    shoot(page, artifacts, "local-time-warning-import-page")

    # the upload page, which builds the warning from the job's JSON
    page.goto("/")
    page.locator("#file-input").set_input_files(
        {"name": "wednesday.csv", "mimeType": "text/csv", "buffer": FILE.encode()}
    )
    expect(page.locator("#job-message")).to_have_text("Import complete")
    shown = page.locator("#job-result ul.warnings li")
    expect(shown).to_contain_text(f"This file is identical to import #{again['id']} of ")
    expect(shown).to_contain_text(local(again["finished_at"]))
    expect(shown).not_to_contain_text("UTC")
    shoot(page, artifacts, "local-time-warning-upload-page")


def test_a_webhook_disabled_by_a_410_says_when_in_the_readers_zone(kolkata_page: Page, http):
    receiver = Receiver(Answer(status=410))
    created = http.post("/api/webhooks", json={"url": receiver.url, "events": ["import.completed"]})
    hook = created.json()
    import_csv(http, FILE)
    reason = wait_until(
        lambda: http.get(f"/api/webhooks/{hook['id']}").json()["disabled_reason"],
        "the webhook disabled by its 410",
    )
    receiver.close()
    stamp = re.search(r"Disabled at (\S+ \S+) UTC", reason).group(1)
    iso = stamp.replace(" ", "T") + "Z"

    kolkata_page.goto("/webhooks")

    shown = kolkata_page.locator(f'tr[data-id="{hook["id"]}"] .field-error')
    expect(shown).to_contain_text(local(iso))
    expect(shown).to_contain_text("the receiver")
    expect(shown).not_to_contain_text("UTC")


def test_the_audit_log_shows_a_recovery_since_in_the_readers_zone(kolkata_page: Page, http):
    receiver = Receiver()
    hook = http.post("/api/webhooks", json={"url": receiver.url, "events": ["import.completed"]})
    since = (datetime.now(ZoneInfo("UTC")) - timedelta(hours=3)).replace(microsecond=0)
    iso = since.isoformat().replace("+00:00", "Z")
    recovered = http.post(f"/api/webhooks/{hook.json()['id']}/recover", json={"since": iso})
    assert recovered.status_code == 202, recovered.text
    receiver.close()

    kolkata_page.goto("/audit?action=webhook.recovered")

    target = kolkata_page.locator('#audit-table td[data-label="Target"]')
    expect(target).to_contain_text(local(iso))
    expect(target).not_to_contain_text(iso)
    entry = http.get("/api/audit", params={"action": "webhook.recovered"}).json()["items"][0]
    assert entry["details"]["since"] == iso  # the API's detail stays ISO 8601 UTC
