"""Deliveries sent by a real worker: signed attempts, the log, retries, 410, the claim.

Every test here goes through the session's Celery worker, as production does; the worker
also sweeps for due deliveries every second, so a test never sends in-process what the
worker could pick up too (except to show that a delivery is claimed once).
"""

import threading
import time
from datetime import timedelta

import psutil
import psycopg
import pytest
from sqlalchemy import select, text, update

from product_importer.extensions import db
from product_importer.timeutil import utcnow
from product_importer.webhooks import delivery as sending
from product_importer.webhooks import events
from product_importer.webhooks.models import Attempt, Delivery, Endpoint
from tests.conftest import PG_ADMIN_URL, TEST_DB, database_refusing_connections, free_port
from tests.helpers import wait_until

from .receiver import Answer, verify

PRODUCT = {"id": 7, "sku": "A-1", "name": "Apple", "description": "", "active": True}
deliveries = Delivery.__table__

pytestmark = pytest.mark.usefixtures("live_worker", "db_session")


def publish(event_type: str = "product.updated", data: dict = PRODUCT) -> list[int]:
    """Publish in a session and commit, as the products service does; return delivery ids."""
    events.publish_in_session(db.session, event_type, data)
    db.session.commit()
    return list(db.session.scalars(select(Delivery.id).order_by(Delivery.id)))


def delivery(delivery_id: int) -> Delivery:
    db.session.rollback()  # see what the worker committed
    return db.session.get(Delivery, delivery_id)


def wait_for(delivery_id: int, status: str = "succeeded", timeout: float = 30) -> Delivery:
    deadline = time.monotonic() + timeout
    while (found := delivery(delivery_id)).status != status:
        if time.monotonic() > deadline:
            raise TimeoutError(f"delivery still {found.status}: {found.to_dict()}")
        time.sleep(0.05)
    return found


def attempts_of(delivery_id: int) -> list[Attempt]:
    query = select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.number)
    return list(db.session.scalars(query))


def test_an_event_reaches_each_subscribed_enabled_endpoint_signed(make_endpoint, receiver):
    wanted = make_endpoint(receiver.url, events=["product.updated"])
    make_endpoint(receiver.url, events=["product.created"])
    make_endpoint(receiver.url, events=["product.updated"], enabled=False)

    (delivery_id,) = publish()
    sent = wait_for(delivery_id)

    (request,) = receiver.requests
    assert verify(wanted["secret"], request)
    body = request.json()
    assert body["type"] == "product.updated"
    assert body["data"] == PRODUCT
    assert body["id"] == request.headers["webhook-id"] == sent.event_id
    assert body["id"].startswith("evt_")
    assert body["created_at"].endswith("Z")
    assert (sent.attempts, sent.status_code, sent.next_attempt_at) == (1, 200, None)


def test_a_rolled_back_change_publishes_nothing(make_endpoint, receiver):
    make_endpoint(receiver.url)

    events.publish_in_session(db.session, "product.updated", {**PRODUCT, "name": "Rolled back"})
    db.session.rollback()
    (later,) = publish()  # a change after it, which must arrive
    sent = wait_for(later)

    assert [d.id for d in db.session.scalars(select(Delivery))] == [later]
    (request,) = receiver.requests
    assert request.json()["id"] == sent.event_id
    assert request.json()["data"] == PRODUCT


def test_unknown_event_types_are_a_programming_error():
    with pytest.raises(ValueError):
        events.publish_in_session(db.session, "product.exploded", {})


def test_500_twice_then_200_makes_three_attempts_all_logged(client, make_endpoint, receiver):
    endpoint = make_endpoint(receiver.url)
    receiver.answer(Answer(status=500), Answer(status=500))

    (delivery_id,) = publish()
    wait_for(delivery_id)

    requests = receiver.requests
    assert len(requests) == 3
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert len({r.body for r in requests}) == 1
    assert all(verify(endpoint["secret"], r) for r in requests)
    items = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["items"]
    (shown,) = items
    assert (shown["status"], shown["attempts"], shown["status_code"]) == ("succeeded", 3, 200)
    assert [a["status_code"] for a in shown["attempt_log"]] == [500, 500, 200]
    assert [a["number"] for a in shown["attempt_log"]] == [1, 2, 3]
    assert all(a["response_time_ms"] is not None for a in shown["attempt_log"])


def test_a_timeout_is_recorded_and_retried(make_endpoint, receiver):
    # The worker's timeout is the test environment's WEBHOOK_TIMEOUT_SECONDS=5.
    make_endpoint(receiver.url)
    receiver.answer(Answer(sleep=6))

    (delivery_id,) = publish()
    wait_for(delivery_id, timeout=30)

    timed_out, succeeded = attempts_of(delivery_id)
    assert timed_out.error.startswith("Timed out after 5 s")  # not the answer 6 s later
    assert timed_out.status_code is None
    assert timed_out.response_time_ms >= 5000
    assert (succeeded.status_code, succeeded.error) == (200, None)


def test_an_answer_trickling_in_past_the_timeout_is_cut_off_and_retried(make_endpoint, receiver):
    # A byte every 0.1 s for 10 s: every read is quick, the whole answer is not.
    make_endpoint(receiver.url)
    receiver.answer(Answer(trickle=0.1))

    (delivery_id,) = publish()
    wait_for(delivery_id, timeout=30)

    timed_out, succeeded = attempts_of(delivery_id)
    assert timed_out.error == "Timed out after 5 s waiting for the answer"
    assert timed_out.status_code is None
    assert timed_out.response_time_ms >= 5000
    receiver.wait_for_hang_up()  # it left with most of the answer still to come
    assert (succeeded.status_code, succeeded.error) == (200, None)


def test_410_disables_the_endpoint(client, make_endpoint, receiver):
    endpoint = make_endpoint(receiver.url)
    receiver.answer(Answer(status=410))

    (delivery_id,) = publish()
    failed = wait_for(delivery_id, "failed")

    assert (failed.attempts, failed.status_code) == (1, 410)
    shown = client.get(f"/api/webhooks/{endpoint['id']}").get_json()
    assert shown["enabled"] is False
    assert "410" in shown["disabled_reason"]
    assert publish() == [delivery_id], "a disabled endpoint gets no new deliveries"
    enabled = client.patch(f"/api/webhooks/{endpoint['id']}", json={"enabled": True}).get_json()
    assert enabled["disabled_reason"] is None


def test_a_webhook_being_deleted_as_its_receiver_answers_410_keeps_no_delivery_locked(
    make_endpoint, receiver, holding
):
    """Recording a 410, the worker locked the delivery, then the webhook to disable it; a
    delete holds the webhook, then deletes its deliveries. Each waited for the other, and
    PostgreSQL failed one of them: the delete answered 500, or the worker lost its record.
    The worker now takes the webhook first, as the delete does."""
    endpoint = make_endpoint(receiver.url)
    receiver.answer(Answer(status=410))
    webhook = f"FROM webhook_endpoints WHERE id = {endpoint['id']}"
    its_deliveries = f"FROM webhook_deliveries WHERE endpoint_id = {endpoint['id']}"
    with holding(f"SELECT id {webhook} FOR NO KEY UPDATE") as deleting:  # as a delete does
        publish()
        deleting.wait_until_blocking()  # the worker, recording the 410, waits for the webhook

        # the delete's next step: the webhook's deliveries, none of them held by the worker
        deleting.conn.execute(text(f"SELECT id {its_deliveries} FOR UPDATE NOWAIT"))
        deleting.conn.execute(text(f"DELETE {its_deliveries}"))
        deleting.conn.execute(text(f"DELETE {webhook}"))
        deleting.conn.commit()

    db.session.rollback()
    assert db.session.get(Endpoint, endpoint["id"]) is None
    assert list(db.session.scalars(select(Delivery.id))) == []


@pytest.mark.parametrize("status", [400, 404, 301])
def test_other_answers_fail_without_retrying(make_endpoint, receiver, status):
    make_endpoint(receiver.url)
    receiver.answer(Answer(status=status))

    (delivery_id,) = publish()
    failed = wait_for(delivery_id, "failed")

    assert (failed.attempts, failed.status_code, failed.next_attempt_at) == (1, status, None)


def test_429_honours_retry_after(make_endpoint, receiver):
    make_endpoint(receiver.url)
    receiver.answer(Answer(status=429, headers={"Retry-After": "120"}))

    (delivery_id,) = publish()
    receiver.wait_for(1)
    deadline = time.monotonic() + 10
    while (waiting := delivery(delivery_id)).status_code != 429:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    assert waiting.status == "pending"
    # 120 s after the attempt's end, which came after its start and before this check
    (attempt,) = attempts_of(delivery_id)
    retry_after = timedelta(seconds=120)
    assert attempt.started_at + retry_after <= waiting.next_attempt_at <= utcnow() + retry_after


def test_retries_stop_after_about_a_day(make_endpoint, receiver):
    make_endpoint(receiver.url)
    receiver.answer(Answer(status=502))
    with db.engine.begin() as conn:  # an event published a day ago, due now
        (delivery_id,) = events.publish(conn, "product.updated", PRODUCT, actor=None)
        conn.execute(update(deliveries).values(created_at=utcnow() - timedelta(hours=24)))

    given_up = wait_for(delivery_id, "failed")

    assert given_up.error.startswith("Gave up after 1 attempt over a day: HTTP 502")


@pytest.mark.parametrize("change", ["url", "enabled"])
def test_a_url_put_right_or_a_webhook_enabled_again_gets_its_waiting_retries_now(
    client, make_endpoint, receiver, change
):
    nobody = f"http://127.0.0.1:{free_port()}/hook"
    endpoint = make_endpoint(nobody if change == "url" else receiver.url)
    webhook = f"/api/webhooks/{endpoint['id']}"
    with db.engine.begin() as conn:  # it failed once, and its retry waits two hours
        (first,) = events.publish(conn, "product.updated", {**PRODUCT, "sku": "1st"}, actor=None)
        later = utcnow() + timedelta(hours=2)
        conn.execute(update(deliveries).values(attempts=1, next_attempt_at=later))
    (_, second) = publish(data={**PRODUCT, "sku": "2nd"})  # in line behind it
    if change == "enabled":
        assert client.patch(webhook, json={"enabled": False}).status_code == 200

    fix = {"url": receiver.url} if change == "url" else {"enabled": True}
    assert client.patch(webhook, json=fix).status_code == 200

    # sent now, not in two hours, and the event in line behind it follows
    assert wait_for(first).attempts == 2
    wait_for(second)
    assert [request.json()["data"]["sku"] for request in receiver.requests] == ["1st", "2nd"]


def test_a_delivery_of_a_disabled_endpoint_is_not_sent(make_endpoint, receiver):
    make_endpoint(receiver.url)
    with db.engine.begin() as conn:
        (delivery_id,) = events.publish(conn, "product.updated", PRODUCT, actor=None)
        conn.execute(update(Endpoint.__table__).values(enabled=False))

    failed = wait_for(delivery_id, "failed")

    assert failed.error == "Not sent: the webhook is disabled."
    assert receiver.requests == []


def test_a_delivery_is_claimed_by_one_sender_at_a_time(app, make_endpoint, receiver):
    make_endpoint(receiver.url)
    receiver.answer(Answer(sleep=0.5))
    barrier = threading.Barrier(6)

    def sender(delivery_id: int) -> None:
        with app.app_context():
            barrier.wait()
            sending.deliver_one(delivery_id)

    with db.engine.begin() as conn:  # no task message: the in-process senders race the sweep
        (delivery_id,) = events.publish(conn, "product.updated", PRODUCT, actor=None)
    threads = [threading.Thread(target=sender, args=(delivery_id,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(delivery_id)

    assert len(receiver.requests) == 1
    assert delivery(delivery_id).attempts == 1


def test_backoff_grows_exponentially_with_jitter_and_a_cap(app, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_RETRY_BASE_SECONDS", 10)
    delays = [[sending.retry_delay(n) for _ in range(50)] for n in (1, 2, 3, 20)]

    assert all(5 <= d <= 10 for d in delays[0])
    assert all(15 <= d <= 30 for d in delays[1])
    assert all(45 <= d <= 90 for d in delays[2])
    assert max(delays[3]) <= sending.MAX_RETRY_DELAY_SECONDS
    assert len(set(delays[0])) > 40, "jittered"
    assert sending.retry_delay(1, retry_after=600) == 600


def test_old_finished_deliveries_are_removed(make_endpoint, receiver):
    make_endpoint(receiver.url)
    with db.engine.begin() as conn:
        (delivery_id,) = events.publish(conn, "product.updated", PRODUCT, actor=None)
        conn.execute(
            update(deliveries).values(status="succeeded", created_at=utcnow() - timedelta(days=31))
        )
        conn.execute(
            Attempt.__table__.insert().values(
                delivery_id=delivery_id, number=1, started_at=utcnow()
            )
        )

    assert sending.remove_old_deliveries() == 1
    assert db.session.scalars(select(Attempt)).all() == []
    assert db.session.scalars(select(Endpoint)).one()


def test_redelivering_a_waiting_retry_sends_it_now(client, make_endpoint, receiver):
    endpoint = make_endpoint(receiver.url)
    receiver.answer(Answer(status=503, headers={"Retry-After": "3600"}))
    (delivery_id,) = publish()
    receiver.wait_for(1)
    deadline = time.monotonic() + 10
    while delivery(delivery_id).status_code != 503:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    url = f"/api/webhooks/{endpoint['id']}/deliveries/{delivery_id}/redeliver"
    response = client.post(url)

    assert response.status_code == 202
    assert response.get_json()["id"] == delivery_id, "the waiting delivery itself, not a copy"
    done = wait_for(delivery_id)
    assert done.attempts == 2
    assert len(receiver.requests) == 2


def test_a_retry_after_past_the_day_of_retries_gives_up_saying_so(client, make_endpoint, receiver):
    """A receiver asking to be retried in 25 hours: the event is given up at once, and the log
    says why and what to do, not "after 1 attempts over a day" seconds after it was sent."""
    endpoint = make_endpoint(receiver.url)
    receiver.answer(Answer(status=429, headers={"Retry-After": str(25 * 3600)}))

    (delivery_id,) = publish()
    wait_for(delivery_id, "failed")

    [item] = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["items"]
    assert item["error"] == (
        "Gave up after 1 attempt: the receiver asked to be retried in 25 h (Retry-After), "
        "past this event's day of retries: HTTP 429 Too Many Requests. "
        "Redeliver it once the receiver accepts events"
    )


def test_a_retry_after_of_no_number_is_retried_on_the_usual_schedule(make_endpoint, receiver):
    """`Retry-After: ²` (a digit to str.isdigit, a latin-1 byte on the wire, no number to
    float): the worker retries on its backoff instead of failing the attempt unrecorded."""
    make_endpoint(receiver.url)
    receiver.answer(Answer(status=503, headers={"Retry-After": "²"}), Answer(status=200))

    (delivery_id,) = publish()
    done = wait_for(delivery_id)

    assert [a.status_code for a in attempts_of(delivery_id)] == [503, 200]
    assert done.attempts == 2


def test_an_attempt_that_fails_unexpectedly_is_logged_retried_and_holds_no_one_for_good(
    client, sql, live_worker, make_endpoint, receiver
):
    """A stored secret that is not base64 (a row edited by hand) makes signing raise what the
    sender foresees nowhere: the attempt still counts, says what went wrong, is retried on the
    usual backoff, and the events behind it go once the secret is put right."""
    endpoint = make_endpoint(receiver.url)
    sql("UPDATE webhook_endpoints SET secret = 'whsec_abc' WHERE id = :id", id=endpoint["id"])

    (first,) = publish(data={**PRODUCT, "sku": "1st"})
    deadline = time.monotonic() + 30
    while len(attempts_of(first)) < 2:  # recorded, and retried
        assert time.monotonic() < deadline, delivery(first).to_dict()
        time.sleep(0.05)

    failed = attempts_of(first)[0]
    assert failed.status_code is None
    assert failed.error == (
        "The attempt ended in an unexpected error (binascii.Error); "
        "the server's log has the details"
    )
    assert delivery(first).status == "pending"
    assert f"webhook delivery {first} attempt 1 failed unexpectedly" in live_worker.output()
    assert "Traceback" in live_worker.output()
    assert receiver.requests == []

    rotation = {"keep_previous_hours": 0}
    rotated = client.post(f"/api/webhooks/{endpoint['id']}/rotate-secret", json=rotation)
    (_, second) = publish(data={**PRODUCT, "sku": "2nd"})  # in line behind the first
    redelivered = client.post(f"/api/webhooks/{endpoint['id']}/deliveries/{first}/redeliver")
    assert redelivered.status_code == 202
    wait_for(first)
    wait_for(second)

    secret = rotated.get_json()["secret"]
    assert all(verify(secret, request) for request in receiver.requests)
    assert [request.json()["data"]["sku"] for request in receiver.requests] == ["1st", "2nd"]


def test_a_retry_after_of_many_lifetimes_gives_up_saying_so(client, make_endpoint, receiver):
    """`Retry-After: 99999999999999` (3 million years): given up at once, saying so, rather
    than failing to reckon the date and leaving the event unrecorded, sent again every minute."""
    endpoint = make_endpoint(receiver.url)
    receiver.answer(Answer(status=429, headers={"Retry-After": "99999999999999"}))

    (delivery_id,) = publish()
    wait_for(delivery_id, "failed")

    [item] = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["items"]
    assert item["error"].startswith(
        "Gave up after 1 attempt: the receiver asked to be retried in over 100 years "
    )
    assert len(receiver.requests) == 1


def test_redeliver_while_an_attempt_is_being_sent_is_refused_saying_so(
    app, client, make_endpoint, receiver, monkeypatch
):
    """Pressed while the receiver still holds the attempt's answer: accepted, it would be undone
    by that answer when recorded (here a 400 that fails the event), and nothing sent again."""
    endpoint = make_endpoint(receiver.url)
    receiver.answer(Answer(status=400, held=True))
    monkeypatch.setitem(app.config, "WEBHOOK_TIMEOUT_SECONDS", 120)  # the in-process sender's
    with db.engine.begin() as conn:  # no task message, nor the sweep's: this process sends it
        (delivery_id,) = events.publish(conn, "product.updated", PRODUCT, actor=None)
        conn.execute(update(deliveries).values(queued_until=utcnow() + timedelta(hours=1)))

    def send() -> None:
        with app.app_context():
            sending.deliver_one(delivery_id)

    in_flight = threading.Thread(target=send)
    in_flight.start()
    receiver.wait_for_open(1)
    url = f"/api/webhooks/{endpoint['id']}/deliveries/{delivery_id}/redeliver"
    during = client.post(url)
    db.session.rollback()  # the request used this test's session: end it, as a teardown would
    receiver.release()
    in_flight.join()

    assert during.status_code == 409, during.get_json()
    error = during.get_json()["error"]
    assert error["code"] == "attempt_in_progress"
    claim_left = error["details"]["claimed_for_seconds"]
    assert 0 < claim_left <= 120 + 60  # the timeout, and the claim's margin past it
    assert error["message"] == (
        "Attempt 1 of this delivery is being sent now; its outcome shows here when the "
        f"receiver answers (within 120 s), or in {claim_left} s at most if the worker sending "
        "it stopped. Redeliver it then if it still needs sending."
    )
    failed = delivery(delivery_id)
    assert (failed.status, failed.status_code, failed.attempts) == ("failed", 400, 1)
    after = client.post(url)
    assert after.status_code == 202
    wait_for(after.get_json()["id"])
    assert len(receiver.requests) == 2


def test_redeliver_of_a_delivery_whose_worker_stopped_mid_attempt_is_taken(
    client, make_endpoint, receiver
):
    """The claim of a worker that died sending it has run out: nothing is in flight any more."""
    endpoint = make_endpoint(receiver.url)
    with db.engine.begin() as conn:
        (delivery_id,) = events.publish(conn, "product.updated", PRODUCT, actor=None)
        ran_out, later = utcnow() - timedelta(seconds=1), utcnow() + timedelta(hours=1)
        # no task message, nor the sweep's: only the redelivery sends it
        conn.execute(
            update(deliveries).values(attempts=1, locked_until=ran_out, queued_until=later)
        )
    url = f"/api/webhooks/{endpoint['id']}/deliveries/{delivery_id}/redeliver"

    redelivered = client.post(url)

    assert redelivered.status_code == 202, redelivered.get_json()
    wait_for(redelivered.get_json()["id"], "succeeded")
    assert len(receiver.requests) == 1


def test_a_record_late_past_its_claim_does_not_undo_a_redelivery(client, make_endpoint, receiver):
    """A worker's record of an attempt, written once the database came back after the claim
    ended, matched the delivery an admin had redelivered meanwhile: its old 400 failed the
    event, and the redelivery (answered 202) was silently gone."""
    endpoint = make_endpoint(receiver.url)
    with db.engine.begin() as conn:
        # no task message, nor the sweep's: nothing sends them while the test looks
        (earlier,) = events.publish(conn, "product.updated", PRODUCT, actor=None)
        (delivery_id,) = events.publish(conn, "product.updated", PRODUCT, actor=None)
        ran_out, later = utcnow() - timedelta(seconds=1), utcnow() + timedelta(hours=1)
        conn.execute(update(deliveries).values(queued_until=later))
        # the earlier event waits for its retry, holding this one in line behind it
        conn.execute(
            update(deliveries).where(deliveries.c.id == earlier).values(next_attempt_at=later)
        )
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .values(attempts=1, locked_until=ran_out)
        )
        row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).one()
    url = f"/api/webhooks/{endpoint['id']}/deliveries/{delivery_id}/redeliver"
    assert client.post(url).status_code == 202
    db.session.rollback()
    claim = sending.Claim(
        delivery_id, 1, endpoint["id"], row.event_id, row.payload, row.created_at, ran_out
    )
    refused = sending.Outcome(sending.Verdict.FAILED, status_code=400, response_time_ms=5)

    with db.engine.connect() as conn:  # the worker's record, late
        sending._record(conn, claim, refused, sending._next_state(claim, refused), ran_out)

    redelivered = delivery(delivery_id)
    assert (redelivered.status, redelivered.attempts) == ("pending", 1)
    assert attempts_of(delivery_id) == []


def end_database_sessions(process) -> int:
    """End the PostgreSQL sessions of a process and its children on the test database, as a
    database restart or a network cut ends them; return how many were ended.

    Ended from the server's own database: the test database may refuse new connections."""
    top = psutil.Process(process.popen.pid)
    ports = [
        connection.laddr.port
        for each in [top, *top.children(recursive=True)]
        for connection in each.net_connections(kind="tcp")
        if connection.raddr and connection.raddr.port == db.engine.url.port
    ]
    ended = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = %(database)s AND client_port = ANY(%(ports)s)"
    )
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        return admin.execute(ended, {"database": TEST_DB, "ports": ports}).fetchone()[0]


def test_an_attempt_whose_worker_loses_the_database_before_recording_it_is_recorded(
    client, make_endpoint, receiver, live_worker
):
    """The database connection lost while the receiver answers (a restart, a network cut): the
    worker records the answer on a new connection, and the event behind it follows at once.
    The error left the delivery claimed, unrecorded, holding up the events behind it until
    its message's grace ran out (3 minutes), and then sent it again."""
    endpoint = make_endpoint(receiver.url)
    receiver.answer(Answer(held=True))
    (first,) = publish(data={**PRODUCT, "sku": "1st"})
    receiver.wait_for_open(1)  # sent; the worker waits for the answer
    (_, second) = publish(data={**PRODUCT, "sku": "2nd"})  # in line behind it

    assert end_database_sessions(live_worker) >= 1
    receiver.release()
    wait_for(second, timeout=300)

    [item, _] = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["items"][::-1]
    assert (item["status"], item["attempts"], item["status_code"]) == ("succeeded", 1, 200)
    assert [attempt["status_code"] for attempt in item["attempt_log"]] == [200]
    assert [request.json()["data"]["sku"] for request in receiver.requests] == ["1st", "2nd"]


def refused_records(worker, logged: int) -> int:
    """How many times the worker, trying again to record an attempt, has been refused by the
    database (its log since `logged` characters)."""
    return sum(
        "while recording it" in line and "is not currently accepting connections" in line
        for line in worker.output()[logged:].splitlines()
    )


def test_an_attempt_is_recorded_once_the_database_is_back_though_it_stayed_away(
    client, make_endpoint, receiver, live_worker
):
    """The database lost while the receiver answers, and out of reach for a while (a restart,
    a failover): the worker tries again to record the answer until the database is back, and
    the event is sent once. It tried once more at once: the database still away, the delivery
    stayed claimed, unrecorded, holding up the events behind it for 3 minutes, then was sent
    again."""
    endpoint = make_endpoint(receiver.url)
    receiver.answer(Answer(held=True))
    (first,) = publish(data={**PRODUCT, "sku": "1st"})
    receiver.wait_for_open(1)  # sent; the worker waits for the answer
    (_, second) = publish(data={**PRODUCT, "sku": "2nd"})  # in line behind it
    logged = len(live_worker.output())

    with database_refusing_connections():
        assert end_database_sessions(live_worker) >= 1
        receiver.release()
        # away through more than one try (each logged): it was tried once more, at once
        wait_until(lambda: refused_records(live_worker, logged) >= 2, "two refused records")
    wait_for(second, timeout=300)

    [item, _] = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["items"][::-1]
    assert (item["status"], item["attempts"], item["status_code"]) == ("succeeded", 1, 200)
    assert [attempt["status_code"] for attempt in item["attempt_log"]] == [200]
    assert [request.json()["data"]["sku"] for request in receiver.requests] == ["1st", "2nd"]
