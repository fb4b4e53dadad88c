"""The webhooks page: add a webhook, test it, switch it off, see deliveries, delete it."""

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import text

from product_importer.extensions import db
from tests.conftest import free_port
from tests.webhooks.conftest import settled_deliveries
from tests.webhooks.receiver import Answer, Receiver, verify

from .conftest import shoot, sign_in


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def add_webhook(page: Page, url: str) -> str:
    """Add a webhook for product events through the form; return the secret shown once."""
    page.get_by_role("button", name="Add webhook").click()
    dialog = page.get_by_role("dialog", name="Add webhook")
    dialog.get_by_label("URL").fill(url)
    dialog.get_by_label("Description").fill("CRM sync")
    dialog.get_by_label("import.completed").uncheck()
    dialog.get_by_label("import.failed").uncheck()
    dialog.get_by_role("button", name="Add webhook").click()
    secret_dialog = page.get_by_role("dialog", name="Webhook added")
    secret = secret_dialog.get_by_label("Signing secret").input_value()
    secret_dialog.get_by_role("button", name="Done").click()
    return secret


def test_add_test_toggle_and_delete_a_webhook(page: Page, http, receiver):
    page.goto("/webhooks")
    expect(page.get_by_text("No webhooks yet")).to_be_visible()

    secret = add_webhook(page, receiver.url)

    assert secret.startswith("whsec_")
    row = page.locator("#webhooks-body tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(receiver.url)
    expect(row).to_contain_text("CRM sync")
    expect(row).to_contain_text("product.created, product.updated")
    expect(row).not_to_contain_text("import.completed")

    receiver.answer(Answer(status=202, sleep=0.05))
    row.get_by_role("button", name=f"Test {receiver.url}").click()
    result = row.locator(".test-result")
    expect(result).to_contain_text("202")
    expect(result).to_contain_text(re.compile(r"\d+ ms"))
    (ping,) = receiver.requests
    assert verify(secret, ping)

    switch = row.get_by_role("switch")
    expect(switch).to_be_checked()
    switch.focus()
    page.keyboard.press("Space")
    expect(row.get_by_role("switch")).not_to_be_checked()
    expect(page.get_by_text("Webhook disabled.")).to_be_visible()
    assert http.get("/api/webhooks").json()["items"][0]["enabled"] is False

    row.get_by_role("button", name=f"Delete {receiver.url}").click()
    confirm = page.get_by_role("dialog", name="Delete webhook")
    expect(confirm).to_contain_text("This cannot be undone.")
    confirm.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No webhooks yet")).to_be_visible()
    assert http.get("/api/webhooks").json()["items"] == []


def test_the_last_test_is_still_shown_after_a_reload(page: Page, receiver, artifacts):
    """The Last test column came from the page alone: reloaded, it said "–" though a test had
    been sent a minute before."""
    page.goto("/webhooks")
    add_webhook(page, receiver.url)
    row = page.locator("#webhooks-body tr")
    receiver.answer(Answer(status=503))
    row.get_by_role("button", name=f"Test {receiver.url}").click()
    expect(row.locator(".test-result")).to_contain_text("503")

    page.reload()

    result = page.locator("#webhooks-body tr .test-result")
    expect(result).to_contain_text("503")
    expect(result).to_contain_text(re.compile(r"\d+ ms"))
    expect(result).to_contain_text("HTTP 503 Service Unavailable")
    expect(result).to_contain_text(re.compile(r"\b20\d\d\b"))  # when it was sent
    shoot(page, artifacts, "webhooks-last-test")


def test_deliveries_show_each_attempt_and_can_be_redelivered(page: Page, receiver):
    page.goto("/webhooks")
    add_webhook(page, receiver.url)
    row = page.locator("#webhooks-body tr")
    receiver.answer(Answer(status=500))
    row.get_by_role("button", name=f"Test {receiver.url}").click()
    expect(row.locator(".test-result")).to_contain_text("500")

    row.get_by_role("button", name=f"Deliveries of {receiver.url}").click()
    deliveries = page.locator("#deliveries-body tr")
    expect(deliveries).to_have_count(1)
    expect(deliveries.first).to_contain_text("ping")
    expect(deliveries.first).to_contain_text("failed")
    deliveries.first.get_by_role("button", name=re.compile("^Redeliver ping")).click()

    expect(deliveries).to_have_count(2)
    expect(deliveries.first).to_contain_text("succeeded")  # sent by the worker, polled
    assert len(receiver.wait_for(2)) == 2


def test_new_deliveries_appear_while_the_list_is_open_with_their_http_code(
    page: Page, http, receiver
):
    page.goto("/webhooks")
    add_webhook(page, receiver.url)
    row = page.locator("#webhooks-body tr")
    receiver.answer(Answer(status=202))
    row.get_by_role("button", name=f"Test {receiver.url}").click()
    expect(row.locator(".test-result")).to_contain_text("202")
    row.get_by_role("button", name=f"Deliveries of {receiver.url}").click()
    deliveries = page.locator("#deliveries-body tr")
    expect(deliveries).to_have_count(1)
    expect(page.locator("#deliveries-status")).to_have_text("1 most recent delivery, newest first.")
    expect(deliveries.first.locator('[data-label="Response"]')).to_contain_text("HTTP 202")

    created = http.post("/api/products", json={"sku": "HOOK-1", "name": "Hooked"})  # no Refresh
    assert created.status_code == 201

    expect(deliveries).to_have_count(2)
    expect(deliveries.first).to_contain_text("product.created")
    expect(deliveries.first.locator('[data-label="Response"]')).to_contain_text("HTTP 200")
    status = page.locator("#deliveries-status")
    expect(status).to_have_text("2 most recent deliveries, newest first.")

    # Refresh with nothing new says so, rather than look like a button that does nothing
    page.locator("#deliveries-refresh").click()
    expect(page.locator("#notices")).to_contain_text("The deliveries are up to date.")
    expect(deliveries).to_have_count(2)


def inside(inner: dict, outer: dict) -> bool:
    """Whether one bounding box lies within another."""
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


@pytest.mark.parametrize("width", [1366, 390])
def test_webhook_cards_hold_their_buttons_and_event_ids(page: Page, receiver, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/webhooks")
    header = page.locator(".page-header").bounding_box()
    add = page.get_by_role("button", name="Add webhook").bounding_box()
    assert add["x"] + add["width"] > header["x"] + header["width"] - 2  # on the right
    add_webhook(page, receiver.url)
    row = page.locator("#webhooks-body tr")
    row.get_by_role("button", name=f"Test {receiver.url}").click()
    row.get_by_role("button", name=f"Deliveries of {receiver.url}").click()
    delivery = page.locator("#deliveries-body tr").first
    expect(delivery).to_contain_text("ping")

    card = row.bounding_box()
    for button in row.get_by_role("button").all():
        assert inside(button.bounding_box(), card), button.text_content()
    assert inside(delivery.locator(".event-id").bounding_box(), delivery.bounding_box())
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def alone_on_a_line(page: Page) -> list[str]:
    """The buttons of the deliveries' header that share their line with no other button nor
    with the heading."""
    header = page.locator("#deliveries .card-header")
    heading = header.get_by_role("heading").bounding_box()
    buttons = {
        button.text_content(): button.bounding_box()
        for button in header.get_by_role("button").all()
    }

    def beside(box, other) -> bool:
        return box["y"] < other["y"] + other["height"] and other["y"] < box["y"] + box["height"]

    return [
        name
        for name, box in buttons.items()
        if not any(beside(box, other) for other in [heading, *buttons.values()] if other is not box)
    ]


@pytest.mark.parametrize("width", [1366, 390])
def test_the_deliveries_header_keeps_no_button_alone_on_a_line(page: Page, http, width):
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["product.created"]}
    assert http.post("/api/webhooks", json=hook).status_code == 201
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/webhooks")
    page.get_by_role("button", name=f"Deliveries of {hook['url']}").click()
    expect(page.get_by_text("No deliveries yet.")).to_be_visible()

    card = page.locator("#deliveries").bounding_box()
    for button in page.locator("#deliveries .card-header").get_by_role("button").all():
        assert inside(button.bounding_box(), card), button.text_content()
    assert alone_on_a_line(page) == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_the_events_box_has_the_pages_border(page: Page):
    page.goto("/webhooks")
    page.get_by_role("button", name="Add webhook").click()
    events = page.get_by_role("group", name="Events")
    style = events.evaluate(
        "box => [getComputedStyle(box).borderTopStyle, getComputedStyle(box).borderTopColor]"
    )
    border = page.evaluate(
        """() => {
            const probe = document.body.appendChild(document.createElement("div"));
            probe.style.color = "var(--border)";
            const color = getComputedStyle(probe).color;
            probe.remove();
            return color;
        }"""
    )
    assert style == ["solid", border]  # the cards' border, not the browser's grey groove


def test_invalid_urls_are_shown_next_to_the_field(page: Page):
    page.goto("/webhooks")
    page.get_by_role("button", name="Add webhook").click()
    dialog = page.get_by_role("dialog", name="Add webhook")
    dialog.get_by_label("URL").fill("http://169.254.169.254/latest/meta-data/")
    dialog.get_by_role("button", name="Add webhook").click()

    expect(dialog.locator("#webhook-url-error")).to_contain_text("link-local")
    expect(dialog.get_by_label("URL")).to_be_focused()


def test_rotating_the_secret_shows_the_new_one_and_both_sign_until_the_old_one_ends(
    page: Page, receiver
):
    page.goto("/webhooks")
    old = add_webhook(page, receiver.url)
    row = page.locator("#webhooks-body tr")
    row.get_by_role("button", name=f"Edit {receiver.url}").click()
    form = page.get_by_role("dialog", name="Edit webhook")
    expect(form).to_contain_text("Only the current secret signs requests.")

    form.get_by_role("button", name="Rotate secret").click()

    shown = page.get_by_role("dialog", name="New signing secret")
    expect(shown).to_contain_text("The old secret also signs until")
    new = shown.get_by_label("Signing secret").input_value()
    assert new.startswith("whsec_") and new != old
    shown.get_by_role("button", name="Done").click()
    expect(form).to_contain_text("The old secret also signs until")
    form.get_by_role("button", name="Cancel").click()
    expect(row).to_contain_text("The old secret also signs until")
    row.get_by_role("button", name=f"Test {receiver.url}").click()
    expect(row.locator(".test-result")).to_contain_text("200")
    (ping,) = receiver.requests
    assert verify(old, ping) and verify(new, ping)

    row.get_by_role("button", name=f"Edit {receiver.url}").click()
    form.get_by_label("Stop signing with the old secret at once").check()
    form.get_by_role("button", name="Rotate secret").click()
    expect(shown).to_contain_text("The old secret no longer signs anything.")
    last = shown.get_by_label("Signing secret").input_value()
    shown.get_by_role("button", name="Done").click()
    form.get_by_role("button", name="Cancel").click()
    expect(row).not_to_contain_text("The old secret also signs")
    row.get_by_role("button", name=f"Test {receiver.url}").click()
    receiver.wait_for(2)
    assert verify(last, receiver.requests[1]) and not verify(new, receiver.requests[1])


def test_closing_the_deliveries_gives_the_focus_back_to_their_button(page: Page, http):
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["product.created"]}
    assert http.post("/api/webhooks", json=hook).status_code == 201
    page.goto("/webhooks")
    opener = page.get_by_role("button", name="Deliveries of http://127.0.0.1:9/hook")
    opener.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_text("No deliveries yet.")).to_be_visible()

    page.get_by_role("button", name="Close", exact=True).focus()
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name="Recent deliveries")).to_be_hidden()
    expect(opener).to_be_focused()


def test_the_attempts_of_a_delivery_are_told_apart_by_their_seconds(page: Page, http, receiver):
    hook = {"url": receiver.url, "events": ["product.created"]}
    hook_id = http.post("/api/webhooks", json=hook).json()["id"]
    receiver.answer(Answer(status=500), Answer(status=500))  # retried within the minute
    assert http.post("/api/products", json={"sku": "P-1", "name": "Pen"}).status_code == 201
    receiver.wait_for(3)
    page.goto("/webhooks")
    page.get_by_role("button", name=f"Deliveries of {receiver.url}").click()
    row = page.locator("#deliveries-body tr").first
    expect(row).to_contain_text("succeeded")

    row.get_by_text("3 attempts").click()

    at = re.compile(r"\d{1,2}:\d\d:\d\d")  # 7:24:05 PM, not 7:24 PM three times
    for attempt in row.locator("details li").all():
        expect(attempt).to_have_text(re.compile(rf"^.*{at.pattern}.*: HTTP (500|200)"))
    deliveries = http.get(f"/api/webhooks/{hook_id}/deliveries").json()["items"]
    assert deliveries[0]["attempts"] == 3


def test_a_receiver_nobody_runs_is_said_for_people_in_the_deliveries(page: Page, http):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    body = {"url": url, "events": ["product.created"]}
    assert http.post("/api/webhooks", json=body).status_code == 201
    assert http.post("/api/products", json={"sku": "HOOK-1", "name": "Hooked"}).status_code == 201
    said = f"Connection refused: nothing listens at 127.0.0.1:{port}"

    page.goto("/webhooks")
    page.get_by_role("button", name=f"Deliveries of {url}").click()

    delivery = page.locator("#deliveries-body tr").first
    expect(delivery).to_contain_text("product.created")
    expect(delivery).to_contain_text(said)  # retried meanwhile: it stays pending
    expect(delivery).not_to_contain_text("Errno")
    hook = http.get("/api/webhooks").json()["items"][0]
    (item,) = http.get(f"/api/webhooks/{hook['id']}/deliveries").json()["items"]
    assert item["error"] == said


def failed_while_off(http, receiver, skus=("OFF-1", "OFF-2", "OFF-3")) -> dict:
    """A webhook whose events failed: the receiver was down, then the webhook was disabled
    while they waited in line. Returns the webhook, its secret included."""
    receiver.default = Answer(status=503)
    hook = http.post("/api/webhooks", json={"url": receiver.url, "events": ["product.created"]})
    for sku in skus:
        assert http.post("/api/products", json={"sku": sku, "name": sku}).status_code == 201
    receiver.wait_for(2)  # the first event was retried; the others wait their turn
    assert http.patch(f"/api/webhooks/{hook.json()['id']}", json={"enabled": False}).is_success
    settled_deliveries(http, hook.json()["id"])
    return hook.json()


def test_enabling_a_webhook_again_offers_to_resend_what_failed_meanwhile(
    page: Page, http, receiver, artifacts
):
    hook = failed_while_off(http, receiver)
    tried = len(receiver.requests)
    receiver.default = Answer(status=200)  # the receiver is back
    # the first event is redelivered by hand meanwhile: it is not offered again
    webhook = f"/api/webhooks/{hook['id']}"
    assert http.patch(webhook, json={"enabled": True}).is_success
    first = settled_deliveries(http, hook["id"])[0]
    assert http.post(f"{webhook}/deliveries/{first['id']}/redeliver").is_success
    receiver.wait_for(tried + 1)
    settled_deliveries(http, hook["id"])
    assert http.patch(webhook, json={"enabled": False}).is_success
    page.goto("/webhooks")
    row = page.locator("#webhooks-body tr")

    row.get_by_role("switch").check()

    offer = page.locator(".notice").filter(has_text="2 recent events could not be sent to")
    expect(offer).to_contain_text(f"{receiver.url}.")
    offer.get_by_role("button", name="Resend failed since…").click()
    dialog = page.get_by_role("dialog", name="Resend failed deliveries")
    expect(dialog).to_contain_text(receiver.url)
    oldest = settled_deliveries(http, hook["id"])[1]["created_at"]  # the first was redelivered
    since = dialog.get_by_label("Failed since")
    assert since.input_value() == page.evaluate(
        "(at) => { const d = new Date(at); d.setSeconds(0, 0);"
        " return new Date(d - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16); }",
        oldest,
    )  # the oldest failed delivery's minute, in the browser's time
    shoot(page, artifacts, "webhooks-resend-failed")
    dialog.get_by_role("button", name="Resend failed").click()

    queued = page.get_by_text("2 events queued again; they are sent in the background.")
    expect(queued).to_be_visible()
    accepted = [r.headers["webhook-id"] for r in receiver.wait_for(tried + 3)[tried:]]
    shown = settled_deliveries(http, hook["id"])
    assert accepted == [d["event_id"] for d in shown[:3]]  # the same events, in their order
    assert [d["status"] for d in shown] == ["failed"] * 3 + ["succeeded"] * 3


def test_resend_failed_since_is_in_the_deliveries_and_says_why_it_cannot(
    page: Page, http, receiver
):
    hook = failed_while_off(http, receiver, skus=("OFF-1",))
    page.goto("/webhooks")
    page.get_by_role("button", name=f"Deliveries of {receiver.url}").click()
    expect(page.locator("#deliveries-body tr")).to_have_count(1)

    page.get_by_role("button", name="Resend failed since…").click()
    dialog = page.get_by_role("dialog", name="Resend failed deliveries")
    dialog.get_by_role("button", name="Resend failed").click()

    expect(dialog.get_by_role("alert")).to_have_text(
        "The webhook is disabled. Enable it, then resend what failed."
    )
    dialog.get_by_role("button", name="Cancel").click()
    assert http.patch(f"/api/webhooks/{hook['id']}", json={"enabled": True}).is_success
    page.get_by_role("button", name="Resend failed since…").click()
    dialog.get_by_label("Failed since").fill("")
    dialog.get_by_role("button", name="Resend failed").click()
    expect(dialog.locator("#recover-since-error")).to_have_text("Choose the time to resend from.")
    expect(dialog.get_by_label("Failed since")).to_be_focused()


def hook_at(http, receiver, **fields) -> dict:
    """A webhook to the receiver made through the API (as another tab or admin would)."""
    body = {"url": receiver.url, "events": ["product.created", "product.updated"], **fields}
    created = http.post("/api/webhooks", json=body)
    assert created.status_code == 201, created.text
    return created.json()


def test_an_edit_saves_only_what_was_changed_in_the_form(page: Page, http, receiver):
    hook = hook_at(http, receiver)
    page.goto("/webhooks")
    page.get_by_role("button", name=f"Edit {receiver.url}").click()
    form = page.get_by_role("dialog", name="Edit webhook")
    expect(form.get_by_label("Enabled")).to_be_checked()
    # Meanwhile another tab changes its events, and a 410 (here: another admin) disables it.
    change = {"events": ["product.deleted"], "enabled": False}
    assert http.patch(f"/api/webhooks/{hook['id']}", json=change).is_success

    form.get_by_label("Description").fill("CRM sync")
    form.get_by_role("button", name="Save changes").click()

    expect(page.get_by_text("Webhook saved.")).to_be_visible()
    shown = http.get(f"/api/webhooks/{hook['id']}").json()
    assert (shown["description"], shown["events"], shown["enabled"]) == (
        "CRM sync",
        ["product.deleted"],
        False,
    )
    row = page.locator("#webhooks-body tr")
    expect(row.get_by_role("switch")).not_to_be_checked()
    expect(row).to_contain_text("product.deleted")


def test_the_edit_form_shows_the_webhook_as_it_is_now(page: Page, http, receiver):
    hook = hook_at(http, receiver)
    page.goto("/webhooks")
    row = page.locator("#webhooks-body tr")
    expect(row.get_by_role("switch")).to_be_checked()
    receiver.answer(Answer(status=410))  # the receiver is gone: a delivery disables the webhook
    assert http.post("/api/products", json={"sku": "GONE-1", "name": "Gone"}).status_code == 201
    receiver.wait_for(1)
    settled_deliveries(http, hook["id"])

    row.get_by_role("button", name=f"Edit {receiver.url}").click()

    form = page.get_by_role("dialog", name="Edit webhook")
    expect(form.get_by_label("Enabled")).not_to_be_checked()
    form.get_by_role("button", name="Cancel").click()
    expect(row.get_by_role("switch")).not_to_be_checked()
    expect(row).to_contain_text("the receiver answered 410 Gone")
    expect(row.get_by_role("button", name=f"Edit {receiver.url}")).to_be_focused()


def test_saving_an_edit_with_the_keyboard_leaves_the_focus_on_its_edit_button(
    page: Page, http, receiver
):
    hook_at(http, receiver)
    page.goto("/webhooks")
    edit = page.get_by_role("button", name=f"Edit {receiver.url}")
    edit.focus()
    page.keyboard.press("Enter")
    form = page.get_by_role("dialog", name="Edit webhook")
    form.get_by_label("Description").focus()
    page.keyboard.type("CRM sync")
    page.keyboard.press("Enter")

    expect(page.get_by_text("Webhook saved.")).to_be_visible()
    expect(page.locator("#webhooks-body tr")).to_contain_text("CRM sync")
    expect(edit).to_be_focused()


def press_test_with_enter(page: Page, http, receiver, status: int):
    """Open the page on one webhook and press its Test with Enter, answered `status`; return
    the row and its Test button."""
    hook_at(http, receiver)
    page.goto("/webhooks")
    row = page.locator("#webhooks-body tr")
    receiver.answer(Answer(status=status))
    test = row.get_by_role("button", name=f"Test {receiver.url}")
    test.focus()
    page.keyboard.press("Enter")
    return row, test


def test_a_test_with_the_keyboard_leaves_the_focus_on_its_button(page: Page, http, receiver):
    row, test = press_test_with_enter(page, http, receiver, 200)

    expect(row.locator(".test-result")).to_contain_text("200")
    expect(test).to_be_focused()


def test_redeliver_with_the_keyboard_leaves_the_focus_on_its_button(page: Page, http, receiver):
    hook_at(http, receiver)
    page.goto("/webhooks")
    page.get_by_role("button", name=f"Test {receiver.url}").click()
    page.get_by_role("button", name=f"Deliveries of {receiver.url}").click()
    deliveries = page.locator("#deliveries-body tr")
    expect(deliveries).to_have_count(1)
    redeliver = deliveries.first.get_by_role("button", name=re.compile("^Redeliver ping"))
    redeliver.focus()
    page.keyboard.press("Enter")

    expect(deliveries).to_have_count(2)
    expect(deliveries.first).to_contain_text("succeeded")  # sent by the worker, polled
    expect(deliveries.nth(1).get_by_role("button", name=re.compile("^Redeliver"))).to_be_focused()


def test_a_test_answered_410_shows_the_webhook_disabled(page: Page, http, receiver):
    row, test = press_test_with_enter(page, http, receiver, 410)

    expect(row.locator(".test-result")).to_contain_text("410")
    expect(row.get_by_role("switch")).not_to_be_checked()
    expect(row).to_contain_text("the receiver answered 410 Gone")
    expect(test).to_be_focused()


DELETED = "The webhook to {} was deleted meanwhile, in another tab or by another admin."


@pytest.mark.parametrize("action", ["Test", "Edit", "Delete", "Deliveries of"])
def test_a_webhook_deleted_in_another_tab_is_said_so_and_leaves_the_list(
    page: Page, http, receiver, action
):
    hook = hook_at(http, receiver)
    page.goto("/webhooks")
    row = page.locator("#webhooks-body tr")
    expect(row).to_have_count(1)
    assert http.delete(f"/api/webhooks/{hook['id']}").status_code == 204

    row.get_by_role("button", name=f"{action} {receiver.url}").click()
    if action == "Delete":
        confirm = page.get_by_role("dialog", name="Delete webhook")
        confirm.get_by_role("button", name="Delete").click()

    expect(page.get_by_text(DELETED.format(receiver.url))).to_be_visible()
    expect(page.get_by_text("No webhooks yet")).to_be_visible()
    expect(page.get_by_role("heading", name="Recent deliveries")).to_be_hidden()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_role("button", name="Add webhook")).to_be_focused()
    expect(page.get_by_text("does not exist")).to_have_count(0)


def test_a_webhook_deleted_while_its_form_is_open_can_be_added_again(page: Page, http, receiver):
    hook = hook_at(http, receiver)
    page.goto("/webhooks")
    page.get_by_role("button", name=f"Edit {receiver.url}").click()
    form = page.get_by_role("dialog", name="Edit webhook")
    form.get_by_label("Description").fill("CRM sync")
    assert http.delete(f"/api/webhooks/{hook['id']}").status_code == 204

    form.get_by_role("button", name="Save changes").click()

    form = page.get_by_role("dialog", name="Add webhook")
    expect(form.get_by_role("alert")).to_have_text(
        f"The webhook to {receiver.url} was deleted while you were editing it, in another tab "
        "or by another admin. Add webhook adds it again with these values and a new signing "
        "secret; Cancel leaves it deleted."
    )
    expect(page.get_by_text("No webhooks yet")).to_be_visible()
    form.get_by_role("button", name="Add webhook").click()
    secret = page.get_by_role("dialog", name="Webhook added").get_by_label("Signing secret")
    expect(secret).to_have_value(re.compile("^whsec_"))
    (again,) = http.get("/api/webhooks").json()["items"]
    assert (again["url"], again["description"]) == (receiver.url, "CRM sync")
    assert again["events"] == ["product.created", "product.updated"]


def test_open_deliveries_of_a_webhook_deleted_elsewhere_close_saying_so(page: Page, http, receiver):
    hook = hook_at(http, receiver)
    page.goto("/webhooks")
    page.get_by_role("button", name=f"Deliveries of {receiver.url}").click()
    expect(page.get_by_text("No deliveries yet.")).to_be_visible()

    assert http.delete(f"/api/webhooks/{hook['id']}").status_code == 204  # polled, no Refresh

    expect(page.get_by_text(DELETED.format(receiver.url))).to_be_visible()
    expect(page.get_by_role("heading", name="Recent deliveries")).to_be_hidden()
    expect(page.get_by_text("No webhooks yet")).to_be_visible()


def test_a_test_answered_404_after_the_list_heard_of_the_deletion_still_says_so(
    page: Page, http, receiver
):
    # The deliveries' poll hears of the deletion first and reloads the list; the Test sent
    # before it then comes back 404 for a webhook the list no longer has.
    hook = hook_at(http, receiver)
    page.goto("/webhooks")
    page.get_by_role("button", name=f"Deliveries of {receiver.url}").click()
    expect(page.get_by_text("No deliveries yet.")).to_be_visible()
    held = []
    page.route(f"**/api/webhooks/{hook['id']}/test", lambda route: held.append(route))  # waits
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    with page.expect_request(f"**/api/webhooks/{hook['id']}/test"):
        page.get_by_role("button", name=f"Test {receiver.url}").click()
    assert http.delete(f"/api/webhooks/{hook['id']}").status_code == 204
    expect(page.get_by_text("No webhooks yet")).to_be_visible()  # the poll heard first
    assert len(held) == 1

    held[0].continue_()  # now the Test reaches the server: 404

    expect(page.get_by_text("This webhook was deleted meanwhile")).to_be_visible()
    assert errors == []


# ---- a URL another webhook already has ---------------------------------------------------------

SHARED = "Same URL as another webhook: an event both send arrives twice."


def test_adding_a_url_another_webhook_has_asks_first_then_adds_it_anyway(
    page: Page, http, receiver, artifacts
):
    page.goto("/webhooks")
    expect(page.get_by_text("No webhooks yet")).to_be_visible()
    hook_at(http, receiver, description="CRM sync")  # another tab, since the page loaded
    page.get_by_role("button", name="Add webhook").click()
    form = page.get_by_role("dialog", name="Add webhook")
    form.get_by_label("URL").fill(receiver.url)

    form.get_by_role("button", name="Add webhook").click()

    expect(form.get_by_role("alert").get_by_role("paragraph")).to_have_text(
        f"{receiver.url} is already the URL of another webhook, “CRM sync”: each product.created "
        "and product.updated event would be sent to it twice. Add anyway to keep both, or edit "
        "that webhook instead."
    )
    expect(form.get_by_label("URL")).to_be_focused()
    assert len(http.get("/api/webhooks").json()["items"]) == 1
    shoot(page, artifacts, "webhooks-same-url")

    form.get_by_role("button", name="Add anyway").click()

    secret = page.get_by_role("dialog", name="Webhook added").get_by_label("Signing secret")
    expect(secret).to_have_value(re.compile("^whsec_"))
    page.get_by_role("dialog", name="Webhook added").get_by_role("button", name="Done").click()
    rows = page.locator("#webhooks-body tr")
    expect(rows).to_have_count(2)
    for row in rows.all():
        expect(row).to_contain_text(SHARED)
    shoot(page, artifacts, "webhooks-same-url-list")
    assert [h["url"] for h in http.get("/api/webhooks").json()["items"]] == [receiver.url] * 2


def test_the_same_url_warning_goes_with_a_changed_url_and_can_edit_the_other_instead(
    page: Page, http, receiver
):
    hook_at(http, receiver, description="CRM sync")
    page.goto("/webhooks")
    page.get_by_role("button", name="Add webhook").click()
    form = page.get_by_role("dialog", name="Add webhook")
    url = form.get_by_label("URL")
    url.fill(receiver.url)
    form.get_by_role("button", name="Add webhook").click()
    warning = form.get_by_role("alert")
    expect(warning).to_contain_text("is already the URL of another webhook")

    url.press("End")
    url.press("Backspace")  # the URL is no longer the other's: the warning goes

    expect(warning).to_be_hidden()
    expect(form.get_by_role("button", name="Add webhook")).to_be_visible()
    url.fill(receiver.url)
    form.get_by_role("button", name="Add webhook").click()
    form.get_by_role("button", name="Edit that webhook instead").click()

    edit = page.get_by_role("dialog", name="Edit webhook")
    expect(edit.get_by_label("Description")).to_have_value("CRM sync")
    edit.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("button", name=f"Edit {receiver.url}")).to_be_focused()
    assert len(http.get("/api/webhooks").json()["items"]) == 1


def test_editing_a_url_into_another_webhooks_asks_first_and_says_what_each_sends(
    page: Page, http, receiver
):
    hook_at(http, receiver, description="Imports", events=["import.completed"])
    other = "http://127.0.0.1:9/hook"
    moved = http.post("/api/webhooks", json={"url": other, "events": ["product.created"]}).json()
    page.goto("/webhooks")
    page.get_by_role("button", name=f"Edit {other}").click()
    form = page.get_by_role("dialog", name="Edit webhook")
    form.get_by_label("URL").fill(receiver.url)

    form.get_by_role("button", name="Save changes").click()

    expect(form.get_by_role("alert").get_by_role("paragraph")).to_have_text(
        f"{receiver.url} is already the URL of another webhook, “Imports”. It sends "
        "import.completed there; this one would send other events, signed with another secret. "
        "Save anyway to keep both, or edit that webhook instead."
    )
    assert http.get(f"/api/webhooks/{moved['id']}").json()["url"] == other
    form.get_by_role("button", name="Save anyway").click()
    expect(page.get_by_text("Webhook saved.")).to_be_visible()
    assert http.get(f"/api/webhooks/{moved['id']}").json()["url"] == receiver.url


# ---- changes made elsewhere ------------------------------------------------------------------


@pytest.fixture
def other_tab(browser, live_server, accounts):
    """The webhooks page in a second browser signed in as the admin: another tab, or another
    admin."""
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    sign_in(tab, accounts["admin"].email)
    tab.goto("/webhooks")
    yield tab
    context.close()


def test_changes_made_in_another_tab_show_up_without_a_reload(page: Page, other_tab, receiver):
    page.goto("/webhooks")
    expect(page.get_by_text("No webhooks yet")).to_be_visible()
    rows = page.locator("#webhooks-body tr")

    add_webhook(other_tab, receiver.url)
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("CRM sync")

    other_tab.get_by_role("switch", name=f"Enabled: {receiver.url}").uncheck()
    expect(rows.get_by_role("switch")).not_to_be_checked()

    other_tab.get_by_role("button", name=f"Delete {receiver.url}").click()
    confirm = other_tab.get_by_role("dialog", name="Delete webhook")
    confirm.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No webhooks yet")).to_be_visible()


def test_an_open_form_keeps_what_is_typed_and_the_focus_while_the_list_catches_up(
    page: Page, http, other_tab, receiver
):
    hook = hook_at(http, receiver)
    page.goto("/webhooks")
    row = page.locator("#webhooks-body tr")
    page.get_by_role("button", name=f"Edit {receiver.url}").click()
    form = page.get_by_role("dialog", name="Edit webhook")
    description = form.get_by_label("Description")
    description.press_sequentially("CRM")

    other_tab.get_by_role("button", name=f"Edit {receiver.url}").click()
    theirs = other_tab.get_by_role("dialog", name="Edit webhook")
    theirs.get_by_label("product.deleted").check()
    theirs.get_by_role("button", name="Save changes").click()
    expect(other_tab.get_by_text("Webhook saved.")).to_be_visible()

    expect(row).to_contain_text("product.deleted")  # drawn anew behind the open form
    expect(description).to_be_focused()
    page.keyboard.type(" sync")
    expect(description).to_have_value("CRM sync")
    form.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Webhook saved.")).to_be_visible()
    expect(page.get_by_role("button", name=f"Edit {receiver.url}")).to_be_focused()
    saved = http.get(f"/api/webhooks/{hook['id']}").json()
    assert (saved["description"], "product.deleted" in saved["events"]) == ("CRM sync", True)


# A tab put in the background, then shown again (headless Chromium shows every tab).
SHOWN = """(shown) => {
    Object.defineProperty(document, "hidden", { value: !shown, configurable: true });
    Object.defineProperty(document, "visibilityState", {
        value: shown ? "visible" : "hidden", configurable: true,
    });
    document.dispatchEvent(new Event("visibilitychange"));
}"""
# Counts the page's requests for the list, as they are sent.
COUNT_LIST_REQUESTS = """(() => {
    window.listRequests = 0;
    const send = window.fetch;
    window.fetch = (url, ...rest) => {
        if (String(url).endsWith("/api/webhooks")) window.listRequests += 1;
        return send(url, ...rest);
    };
})()"""


def test_a_tab_shown_again_catches_up_at_once_and_asks_nothing_while_hidden(
    page: Page, http, receiver
):
    page.clock.install()
    page.add_init_script(COUNT_LIST_REQUESTS)
    page.goto("/webhooks")
    expect(page.get_by_text("No webhooks yet")).to_be_visible()
    page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 1)  # no refresh comes on its own
    page.evaluate(SHOWN, False)
    asked = page.evaluate("window.listRequests")
    page.clock.run_for(60_000)  # a minute in the background
    assert page.evaluate("window.listRequests") == asked

    hook_at(http, receiver, description="CRM sync")
    page.evaluate(SHOWN, True)

    expect(page.locator("#webhooks-body tr")).to_contain_text("CRM sync")


def test_the_same_url_is_caught_while_a_test_of_another_webhook_is_under_way(
    page: Page, http, receiver
):
    """A Test in flight makes the list drop its own refreshes (they could predate the Test's
    answer); the check for a shared URL still reads the list as it is now."""
    first = hook_at(http, receiver, url=f"{receiver.url}/first", description="First")
    page.goto("/webhooks")
    expect(page.locator("#webhooks-body tr")).to_have_count(1)
    held = []
    page.route(re.compile(r"/api/webhooks/\d+/test$"), lambda route: held.append(route))
    page.get_by_role("button", name=f"Test {first['url']}").click()
    while not held:  # the Test is under way, held before it reaches the server
        page.wait_for_timeout(50)
    hook_at(http, receiver, description="CRM sync")  # another tab, during the Test

    page.get_by_role("button", name="Add webhook").click()
    form = page.get_by_role("dialog", name="Add webhook")
    form.get_by_label("URL").fill(receiver.url)
    form.get_by_role("button", name="Add webhook").click()

    expect(form.get_by_role("alert").get_by_role("paragraph")).to_contain_text(
        "is already the URL of another webhook, “CRM sync”"
    )
    assert len(http.get("/api/webhooks").json()["items"]) == 2
    for route in held:
        route.continue_()


def test_a_row_deleted_elsewhere_while_it_has_the_focus_hands_it_to_add_webhook(
    page: Page, http, receiver
):
    """A keyboard user on a row's button is not sent back to the top of the page when another
    tab deletes that webhook and the list catches up."""
    hook = hook_at(http, receiver)
    page.goto("/webhooks")
    edit = page.get_by_role("button", name=f"Edit {receiver.url}")
    edit.focus()
    expect(edit).to_be_focused()

    assert http.delete(f"/api/webhooks/{hook['id']}").status_code == 204

    expect(page.get_by_text("No webhooks yet")).to_be_visible()
    expect(page.get_by_role("button", name="Add webhook")).to_be_focused()


def test_a_long_error_wraps_in_its_cell_instead_of_widening_the_tables(page: Page, http, receiver):
    """A redirect to a long URL (its error names it, without spaces) stays inside the Last
    test and Response cells at desktop width: every column and Redeliver stay in sight."""
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto("/webhooks")
    add_webhook(page, receiver.url)
    row = page.locator("#webhooks-body tr")
    receiver.answer(Answer(status=302, headers={"Location": "/moved/" + "x" * 300}))
    row.get_by_role("button", name=f"Test {receiver.url}").click()
    expect(row.locator(".test-result")).to_contain_text("302")
    row.get_by_role("button", name=f"Deliveries of {receiver.url}").click()
    delivery = page.locator("#deliveries-body tr")
    expect(delivery.locator('[data-label="Response"]')).to_contain_text("redirects to")
    delivery.get_by_text("1 attempt").click()  # the attempt log says it too

    fits = "t => t.scrollWidth <= t.parentElement.clientWidth"  # no sideways scroll in its box
    for table in ("#webhooks-table", "#deliveries-table"):
        assert page.locator(table).evaluate(fits), f"{table} is wider than the page"
    redeliver = delivery.get_by_role("button", name=re.compile("Redeliver"))
    assert inside(redeliver.bounding_box(), page.locator("#deliveries").bounding_box())


def test_closing_a_rotated_secret_gives_the_focus_back_to_rotate_secret(page: Page, http, receiver):
    """Rotate secret pressed from the keyboard, its new secret read and closed (Done, or
    Escape): the focus is back on Rotate secret in the Edit dialog, not outside it."""
    http.post("/api/webhooks", json={"url": receiver.url, "events": ["product.created"]})
    page.goto("/webhooks")
    page.locator("#webhooks-body tr").get_by_role("button", name=f"Edit {receiver.url}").click()
    form = page.get_by_role("dialog", name="Edit webhook")
    rotate = form.get_by_role("button", name="Rotate secret")
    shown = page.get_by_role("dialog", name="New signing secret")

    for close in ("Enter", "Escape"):  # Enter on Done, which has the focus
        rotate.focus()
        page.keyboard.press("Enter")
        expect(shown.get_by_role("button", name="Done")).to_be_focused()
        page.keyboard.press(close)
        expect(shown).to_be_hidden()
        expect(rotate).to_be_focused()
        expect(form).to_be_visible()


def test_closing_the_offered_resend_gives_the_focus_back_to_the_webhooks_switch(
    page: Page, http, receiver
):
    """The offer to resend goes with its notice once pressed: closing its dialog (Escape)
    gives the focus back to the switch that enabled the webhook, not the top of the page."""
    failed_while_off(http, receiver)
    page.goto("/webhooks")
    switch = page.locator("#webhooks-body tr").get_by_role("switch")
    switch.focus()
    page.keyboard.press("Space")
    offer = page.locator(".notice").get_by_role("button", name="Resend failed since…")
    offer.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Resend failed deliveries")
    expect(dialog.get_by_label("Failed since")).to_be_focused()

    page.keyboard.press("Escape")

    expect(dialog).to_be_hidden()
    expect(switch).to_be_focused()


def test_an_open_attempt_log_stays_open_when_new_deliveries_come_in(page: Page, http, receiver):
    """The deliveries list is drawn anew when a delivery comes in or is retried: an attempt
    log being read stays open, rather than snapping shut under the reader."""
    hook = http.post("/api/webhooks", json={"url": receiver.url, "events": ["product.created"]})
    tested = f"/api/webhooks/{hook.json()['id']}/test"
    receiver.answer(Answer(status=500))
    assert http.post(tested).json()["status_code"] == 500
    page.goto("/webhooks")
    page.locator("#webhooks-body tr").get_by_role("button", name="Deliveries").click()
    rows = page.locator("#deliveries-body tr")
    expect(rows).to_have_count(1)
    rows.first.get_by_text("1 attempt").focus()
    page.keyboard.press("Enter")
    expect(rows.first.locator("details")).to_have_attribute("open", "")

    assert http.post(tested).json()["ok"] is True  # a new delivery, drawn above it

    expect(rows).to_have_count(2)
    expect(rows.nth(1).locator("details")).to_have_attribute("open", "")
    expect(rows.nth(1).locator("details li")).to_contain_text("HTTP 500")
    expect(rows.nth(1).locator("summary")).to_be_focused()  # where the reader was
    expect(rows.first.locator("details")).not_to_have_attribute("open", "")


def test_enabling_a_webhook_in_its_edit_form_offers_to_resend_too(page: Page, http, receiver):
    """Enabled again through Edit rather than the list's switch: the offer to resend what
    failed meanwhile comes all the same."""
    failed_while_off(http, receiver)
    page.goto("/webhooks")
    page.locator("#webhooks-body tr").get_by_role("button", name=f"Edit {receiver.url}").click()
    form = page.get_by_role("dialog", name="Edit webhook")
    form.get_by_role("switch", name="Enabled").check()

    form.get_by_role("button", name="Save changes").click()

    expect(page.get_by_text("Webhook saved.")).to_be_visible()
    offer = page.locator(".notice").filter(has_text="recent events could not be sent to")
    expect(offer.get_by_role("button", name="Resend failed since…")).to_be_visible()


def test_older_deliveries_are_a_page_away_with_the_keyboard(page: Page, http, sql, artifacts):
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["product.created"]}
    hook_id = http.post("/api/webhooks", json=hook).json()["id"]
    sql(  # 120 events of the last two hours, all delivered
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload, status, "
        "attempts, status_code, response_time_ms, created_at) "
        "SELECT :id, 'evt_' || n, 'product.created', '{}', 'succeeded', 1, 200, 30, "
        "now() - (120 - n) * interval '1 minute' FROM generate_series(0, 119) AS n",
        id=hook_id,
    )
    page.goto("/webhooks")
    page.get_by_role("button", name=f"Deliveries of {hook['url']}").click()
    status = page.locator("#deliveries-status")
    rows = page.locator("#deliveries-body tr")
    newer = page.get_by_role("button", name="Newer")
    older = page.get_by_role("button", name="Older")
    expect(status).to_have_text("Deliveries 1–50 of 120, newest first.")
    expect(rows.first).to_contain_text("evt_119")
    expect(newer).to_be_hidden()

    older.focus()
    page.keyboard.press("Enter")
    expect(status).to_have_text("Deliveries 51–100 of 120, newest first.")
    expect(rows.first).to_contain_text("evt_69")
    expect(page.get_by_text("Page 2 of 3")).to_be_visible()
    expect(older).to_be_focused()
    shoot(page, artifacts, "webhooks-deliveries-paging")

    page.keyboard.press("Enter")
    expect(status).to_have_text("Deliveries 101–120 of 120, newest first.")
    expect(rows).to_have_count(20)
    expect(rows.last).to_contain_text("evt_0")
    expect(older).to_be_hidden()
    expect(newer).to_be_focused()  # not lost with the button that led to the last page

    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    expect(status).to_have_text("Deliveries 1–50 of 120, newest first.")
    expect(older).to_be_focused()

    # A finished delivery redelivered from page 2 is sent as a new one: at the top of page 1.
    page.keyboard.press("Enter")
    expect(status).to_have_text("Deliveries 51–100 of 120, newest first.")
    page.get_by_role("button", name="Redeliver product.created evt_69").click()
    expect(page.get_by_text("Delivery queued as a new delivery, first on page 1;")).to_be_visible()


# Succeeded deliveries evt_<start>..evt_<stop> of webhook :id, written as its worker would.
ADD_DELIVERIES = (
    "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload, status, "
    "attempts, status_code, response_time_ms, created_at) "
    "SELECT :id, 'evt_' || n, 'product.created', '{}', 'succeeded', 1, 200, 30, now() "
    "FROM generate_series(CAST(:start AS int), CAST(:stop AS int)) AS n"
)


def test_open_deliveries_take_in_new_ones_without_counting_them_all_each_time(
    page: Page, http, sql
):
    """A busy webhook keeps millions of deliveries (30 days), which take hundreds of ms to
    count: the list refreshing every 2 s counts them once a minute, and adds the new ones on
    top to that count meanwhile."""
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["product.created"]}
    hook_id = http.post("/api/webhooks", json=hook).json()["id"]
    sql(ADD_DELIVERIES, id=hook_id, start=0, stop=119)
    asked = []
    page.on(
        "request",
        lambda request: asked.append(request.url) if "/deliveries" in request.url else None,
    )
    page.goto("/webhooks")
    page.get_by_role("button", name=f"Deliveries of {hook['url']}").click()
    status = page.locator("#deliveries-status")
    expect(status).to_have_text("Deliveries 1–50 of 120, newest first.")

    sql(ADD_DELIVERIES, id=hook_id, start=120, stop=122)

    expect(status).to_have_text("Deliveries 1–50 of 123, newest first.")
    expect(page.locator("#deliveries-body tr").first).to_contain_text("evt_122")
    expect(page.get_by_text("Page 1 of 3")).to_be_visible()
    opened, *refreshes = asked
    assert "total=false" not in opened
    assert refreshes and all("total=false" in url for url in refreshes)


def test_open_deliveries_count_two_that_commit_out_of_order(page: Page, http, sql, app):
    """Two events whose transactions commit in the other order than their ids (the first
    one's took longer): the list added on top of its count those newer than its newest, and
    missed the one with the smaller id, committed second, until it counted again a minute
    later."""
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["product.created"]}
    hook_id = http.post("/api/webhooks", json=hook).json()["id"]
    sql(ADD_DELIVERIES, id=hook_id, start=0, stop=119)
    page.goto("/webhooks")
    page.get_by_role("button", name=f"Deliveries of {hook['url']}").click()
    status = page.locator("#deliveries-status")
    expect(status).to_have_text("Deliveries 1–50 of 120, newest first.")

    with app.app_context(), db.engine.connect() as slow:
        slow.execute(
            text(ADD_DELIVERIES), {"id": hook_id, "start": 120, "stop": 120}
        )  # the smaller id
        sql(ADD_DELIVERIES, id=hook_id, start=121, stop=121)
        expect(status).to_have_text("Deliveries 1–50 of 121, newest first.")
        slow.commit()

    expect(status).to_have_text("Deliveries 1–50 of 122, newest first.")
    rows = page.locator("#deliveries-body tr")
    expect(rows.nth(1)).to_contain_text("evt_120")
