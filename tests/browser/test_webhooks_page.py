"""The webhooks page: add a webhook, test it, switch it off, see deliveries, delete it."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.webhooks.receiver import Answer, Receiver, verify


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


def test_invalid_urls_are_shown_next_to_the_field(page: Page):
    page.goto("/webhooks")
    page.get_by_role("button", name="Add webhook").click()
    dialog = page.get_by_role("dialog", name="Add webhook")
    dialog.get_by_label("URL").fill("http://169.254.169.254/latest/meta-data/")
    dialog.get_by_role("button", name="Add webhook").click()

    expect(dialog.locator("#webhook-url-error")).to_contain_text("link-local")
    expect(dialog.get_by_label("URL")).to_be_focused()
