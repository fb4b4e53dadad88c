"""The harness empties the tables before each test, numbering rows from 1 again: work of an
earlier test the worker still does must not land on the next test's rows of the same id."""

import pytest

from product_importer.extensions import db
from product_importer.webhooks import events
from tests.conftest import empty_tables
from tests.helpers import wait_until

from .receiver import Answer, Receiver

PRODUCT = {"id": 7, "sku": "A-1", "name": "Apple", "description": "", "active": True}

pytestmark = pytest.mark.usefixtures("app_ctx")


def publish() -> list[int]:
    """Publish an event and send its deliveries to the worker at once; return their ids."""
    with db.engine.begin() as conn:
        ids = events.publish(conn, "product.updated", PRODUCT, actor=None, will_send=True)
    events.send(ids)
    return ids


def test_an_attempt_still_being_sent_records_nothing_into_the_next_tests_delivery(
    app, account_rows, make_endpoint, receiver, sql, live_worker
):
    """An earlier test's attempt at delivery 1, answered late, was recorded into the next
    test's delivery 1 while that one's own attempt 1 was being sent (its answer then recorded
    nowhere): the harness waits for the attempt before it empties the tables."""
    logged = len(live_worker.output())
    make_endpoint(receiver.url)
    receiver.answer(Answer(status=400, sleep=2))  # answered once the test below has started
    assert publish() == [1]
    receiver.wait_for_open(1)

    empty_tables(app, account_rows)  # as the next test starts

    following = Receiver(default=Answer(held=True))
    try:
        make_endpoint(following.url)
        assert publish() == [1]
        following.wait_for_open(1)
        wait_until(
            lambda: "webhook delivery 1 attempt 1: HTTP 400" in live_worker.output()[logged:],
            "the earlier attempt recorded",
        )
        following.release()
        wait_until(
            lambda: sql("SELECT status FROM webhook_deliveries")[0][0] != "pending", "its end"
        )
    finally:
        following.close()
    [(status, code)] = sql("SELECT status, status_code FROM webhook_deliveries WHERE id = 1")
    assert (status, code) == ("succeeded", 200)
    assert sql("SELECT status_code FROM webhook_attempts WHERE delivery_id = 1") == [(200,)]
