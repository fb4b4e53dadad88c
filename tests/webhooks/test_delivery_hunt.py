"""Webhook deliveries hunted through a running server and worker: a receiver that fails chosen
attempts (5xx, 429, a closed or reset connection, a hang) and checks every request with the
`standardwebhooks` library as it arrives.

Retries come fast here: the tests' WEBHOOK_RETRY_BASE_SECONDS is 0.2 (tests/conftest.py).
"""

import json
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from product_importer.webhooks import sender, signing
from tests.conftest import http_client
from tests.helpers import import_csv, wait_until
from tests.imports.test_tus_hunt import PIECE, TUS

PRODUCT_EVENTS = ["product.created", "product.updated", "product.deleted"]
FAILURES = ["500", "503", "429", "close", "reset"]
HANG_SECONDS = 6  # past the tests' WEBHOOK_TIMEOUT_SECONDS (5)


@dataclass(frozen=True)
class Arrival:
    """One request as the receiver saw it, checked when it arrived."""

    id: str
    timestamp: int
    body: bytes
    at: float
    verified: str | None  # None when the signature and timestamp were good, else why not
    action: str

    @property
    def event(self) -> dict:
        """The body, parsed."""
        return json.loads(self.body)


class Receiver:
    """A threaded HTTP receiver: `plan(nth event, nth attempt)` says how to answer."""

    def __init__(self, plan=lambda event, attempt: "ok"):
        self.plan, self.secret = plan, None
        self.arrivals: list[Arrival] = []
        self.order: list[str] = []  # webhook-ids in the order they first came
        self.lock = threading.Lock()
        self.released = threading.Event()  # answers planned as "held" wait for it
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Answer what is held, and stop."""
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def attempts(self, webhook_id: str) -> list[Arrival]:
        """The requests of one event, in order."""
        return [a for a in self.arrivals if a.id == webhook_id]

    def accepted(self) -> list[Arrival]:
        """The requests answered 200, in order."""
        return [a for a in self.arrivals if a.action == "ok"]

    def wait_for_accepted(self, count: int, timeout: float = 60) -> list[Arrival]:
        """Wait until `count` requests were answered 200; return them."""
        deadline = time.monotonic() + timeout
        while len(self.accepted()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.accepted())} of {count} accepted: {self.arrivals}")
            time.sleep(0.05)
        return self.accepted()

    def _arrive(self, headers, body: bytes) -> Arrival:
        try:
            Webhook(self.secret).verify(body, headers)  # also checks the timestamp is current
            verified = None
        except WebhookVerificationError as error:
            verified = str(error)
        webhook_id = headers.get("webhook-id", "")
        with self.lock:
            if webhook_id not in self.order:
                self.order.append(webhook_id)
            attempt = sum(1 for a in self.arrivals if a.id == webhook_id)
            action = self.plan(self.order.index(webhook_id), attempt)
            timestamp = int(headers.get("webhook-timestamp", 0))
            arrival = Arrival(webhook_id, timestamp, body, time.time(), verified, action)
            self.arrivals.append(arrival)
        return arrival

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                action = receiver._arrive(headers, body).action
                if action == "held":
                    receiver.released.wait(60)
                    action = "ok"
                if action in ("close", "reset", "hang"):
                    self.close_connection = True
                    if action == "hang":
                        time.sleep(HANG_SECONDS)
                    if action == "reset":
                        linger = struct.pack("ii", 1, 0)
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    return  # no answer at all
                status = {"ok": 200, "500": 500, "503": 503, "429": 429, "410": 410}[action]
                self.send_response(status)
                if action == "429":
                    self.send_header("retry-after", "0")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def receivers():
    """Start receivers; all are closed after the test."""
    started = []

    def start(plan=lambda event, attempt: "ok") -> Receiver:
        started.append(Receiver(plan))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


def add_webhook(http, receiver: Receiver, events=PRODUCT_EVENTS) -> dict:
    """Create a webhook to `receiver`, which then verifies with its secret; return it."""
    response = http.post("/api/webhooks", json={"url": receiver.url, "events": list(events)})
    assert response.status_code == 201, response.text
    hook = response.json()
    receiver.secret = hook["secret"]
    return hook


def churn(http, count: int) -> list[tuple[str, str]]:
    """Create, rename and delete `count` products; the (event, sku) each change publishes."""
    happened = []
    for n in range(count):
        sku = f"HUNT-{n}"
        product = http.post("/api/products", json={"sku": sku, "name": "New"}).json()
        assert http.patch(f"/api/products/{product['id']}", json={"name": "Renamed"}).is_success
        assert http.delete(f"/api/products/{product['id']}").is_success
        happened += [(event, sku) for event in PRODUCT_EVENTS]
    return happened


def deliveries(http, hook: dict) -> list[dict]:
    """The webhook's deliveries, oldest first."""
    response = http.get(f"/api/webhooks/{hook['id']}/deliveries", params={"limit": 200})
    return response.json()["items"][::-1]


def settled(http, hook: dict, count: int, timeout: float = 60) -> list[dict]:
    """Wait until the webhook has `count` deliveries and none is pending; return them."""
    deadline = time.monotonic() + timeout
    while True:
        found = deliveries(http, hook)
        if len(found) == count and all(d["status"] != "pending" for d in found):
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"deliveries not settled: {found}")
        time.sleep(0.05)


def random_plan(seed: int):
    """Fail each event's first attempts (0 to 2 of them) at random, then accept."""
    rng = random.Random(seed)
    failures: dict[int, list[str]] = {}

    def plan(event: int, attempt: int) -> str:
        if event not in failures:
            failures[event] = [rng.choice(FAILURES) for _ in range(rng.choice([0, 1, 1, 2]))]
        return failures[event][attempt] if attempt < len(failures[event]) else "ok"

    return plan


def check_attempts(receiver: Receiver) -> None:
    """Every attempt is signed, current and carries its event; retries are the same event."""
    for arrival in receiver.arrivals:
        assert arrival.verified is None, arrival
        assert arrival.event["id"] == arrival.id
        assert arrival.timestamp <= arrival.at + 1  # signed when sent, not when queued
    for webhook_id in receiver.order:
        attempts = receiver.attempts(webhook_id)
        assert len({a.body for a in attempts}) == 1, "every attempt sends the same bytes"
        stamps = [a.timestamp for a in attempts]
        assert stamps == sorted(stamps)


def test_every_event_arrives_once_in_order_signed_on_every_attempt(served, any_http, receivers):
    receiver = receivers(random_plan(seed=21))
    hook = add_webhook(any_http, receiver)

    happened = churn(any_http, 3)

    accepted = receiver.wait_for_accepted(len(happened))
    shown = settled(any_http, hook, len(happened))
    check_attempts(receiver)
    assert [(a.event["type"], a.event["data"]["sku"]) for a in accepted] == happened
    ids = [a.id for a in accepted]
    assert len(set(ids)) == len(ids) == len(receiver.order)  # each accepted once
    assert ids == receiver.order  # no later event was tried before an earlier one was accepted
    assert [d["event_id"] for d in shown] == ids
    for delivery in shown:
        attempts = receiver.attempts(delivery["event_id"])
        assert delivery["status"] == "succeeded"
        assert delivery["attempts"] == len(attempts)
        assert [entry["number"] for entry in delivery["attempt_log"]] == list(
            range(1, len(attempts) + 1)
        )


def test_a_hung_attempt_is_retried_with_the_same_id_and_a_new_signature(
    live_server, http, receivers
):
    receiver = receivers(lambda event, attempt: "hang" if (event, attempt) == (0, 0) else "ok")
    hook = add_webhook(http, receiver)
    churn(http, 1)
    receiver.wait_for_accepted(3)
    settled(http, hook, 3)
    check_attempts(receiver)
    hung, retried = receiver.attempts(receiver.order[0])
    assert retried.timestamp >= hung.timestamp + 5  # signed again after the 5 s timeout


def test_redelivery_resends_the_same_event_signed_anew(live_server, http, receivers):
    receiver = receivers(lambda event, attempt: "ok")
    hook = add_webhook(http, receiver)
    churn(http, 1)
    first, *_ = settled(http, hook, 3)
    time.sleep(1.1)  # the next second: a redelivery's timestamp must be its own
    again = http.post(f"/api/webhooks/{hook['id']}/deliveries/{first['id']}/redeliver")
    assert again.status_code == 202, again.text
    assert again.json()["event_id"] == first["event_id"]
    assert again.json()["id"] != first["id"]
    receiver.wait_for_accepted(4)
    check_attempts(receiver)
    original, resent = receiver.attempts(first["event_id"])
    assert resent.body == original.body
    assert resent.timestamp > original.timestamp
    shown = settled(http, hook, 4)
    assert [d["status"] for d in shown] == ["succeeded"] * 4


def test_an_endpoint_disabled_or_deleted_mid_retry_gets_nothing_more(
    live_server, http, receivers, sql
):
    receiver = receivers(lambda event, attempt: "503")
    hook = add_webhook(http, receiver)
    churn(http, 1)
    wait_until(lambda: len(receiver.arrivals) >= 2, "retried")
    assert http.patch(f"/api/webhooks/{hook['id']}", json={"enabled": False}).is_success
    shown = settled(http, hook, 3)
    tried = len(receiver.arrivals)
    assert {d["status"] for d in shown} == {"failed"}
    assert all(d["error"] == "Not sent: the webhook is disabled." for d in shown[1:])
    assert len(receiver.attempts(receiver.order[0])) == tried  # the later ones never went
    assert http.delete(f"/api/webhooks/{hook['id']}").status_code == 204
    assert sql("SELECT count(*) FROM webhook_deliveries")[0][0] == 0


def test_import_completed_carries_the_job_as_the_api_shows_it(served, any_http, receivers):
    receiver = receivers()
    hook = add_webhook(any_http, receiver, ["import.completed", "import.failed"])
    job = import_csv(any_http, "sku,name\nA-1,Apple\nB-2,Banana\n,No SKU\n")
    data = b"sku,name\r\nC-3,Cherry\r\nD-4,Date\r\n"
    created = any_http.post("/api/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    url = created.headers["Location"]
    followed = any_http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]}).json()
    assert any_http.patch(url, content=data, headers={**PIECE, "Upload-Offset": "0"}).is_success
    sent = {a.event["data"]["id"]: a.event for a in receiver.wait_for_accepted(2)}
    settled(any_http, hook, 2)
    check_attempts(receiver)
    for job_id in (job["id"], followed["id"]):
        shown = any_http.get(f"/api/imports/{job_id}").json()
        event = sent[job_id]
        assert event["type"] == "import.completed"
        assert event["actor"]["email"] == "admin@example.test"
        changes = any_http.base_url.join(f"/api/imports/{job_id}/changes")
        assert event["data"]["changes_url"] == str(changes)
        # The API's retry_refusal is not in webhooks: it changes after the event (a file no
        # longer kept), and a receiver has no Retry to offer.
        assert "retry_refusal" not in event["data"]
        shown.pop("retry_refusal")
        assert {k: v for k, v in event["data"].items() if k != "changes_url"} == shown


TASK_RECEIVED = re.compile(r"webhooks\.deliver\[([0-9a-f-]+)\] received")
TASK_ENDED = re.compile(r"webhooks\.deliver\[([0-9a-f-]+)\] (succeeded in|raised)")


def delivery_tasks(worker, pattern: re.Pattern) -> dict[str, str]:
    """The worker's delivery tasks whose log lines match `pattern`: id -> line."""
    found = (pattern.search(line) for line in worker.output().splitlines())
    return {match.group(1): match.string for match in found if match}


def test_an_endpoint_deleted_while_its_delivery_is_in_flight_ends_the_task_cleanly(
    live_worker, http, receivers
):
    receiver = receivers(lambda event, attempt: "held")
    hook = add_webhook(http, receiver, ["product.created"])
    earlier = delivery_tasks(live_worker, TASK_RECEIVED)
    http.post("/api/products", json={"sku": "GONE-1", "name": "New"})
    wait_until(lambda: receiver.arrivals, "the attempt under way")
    received = delivery_tasks(live_worker, TASK_RECEIVED).keys() - earlier.keys()
    (task,) = received - delivery_tasks(live_worker, TASK_ENDED).keys()  # the one sending it
    assert http.delete(f"/api/webhooks/{hook['id']}").status_code == 204
    receiver.released.set()
    ended = wait_until(lambda: delivery_tasks(live_worker, TASK_ENDED).get(task), "its end")
    assert "succeeded in" in ended, ended


def waiting_edits(sql) -> int:
    """How many sessions wait for a lock on a product (to read it for an edit, or write it)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND (query LIKE 'UPDATE products%' OR query LIKE 'SELECT products.%FOR UPDATE')"
    )
    return sql(query)[0][0]


def test_two_edits_at_once_end_with_an_event_that_matches_the_product(
    live_worker, http, accounts, receivers, holding, sql
):
    receiver = receivers()
    add_webhook(http, receiver, ["product.updated"])
    product = http.post(
        "/api/products", json={"sku": "RACE-1", "name": "Old", "description": "Old"}
    )
    url = f"/api/products/{product.json()['id']}"
    edits = [{"name": "New name"}, {"description": "New description"}]

    def edit(fields: dict) -> None:
        with http_client(http.base_url, accounts["admin"].token) as own:
            assert own.patch(url, json=fields).status_code == 200

    threads = [threading.Thread(target=edit, args=(fields,)) for fields in edits]
    with holding("SELECT id FROM products WHERE sku = 'RACE-1' FOR UPDATE"):
        for thread in threads:
            thread.start()
        # both edits wait for the product: then they go one by one
        wait_until(lambda: waiting_edits(sql) == 2, "both edits waiting")
    for thread in threads:
        thread.join()

    final = http.get(url).json()
    assert (final["name"], final["description"]) == ("New name", "New description")
    last = receiver.wait_for_accepted(2)[-1].event["data"]
    assert (last["name"], last["description"]) == (final["name"], final["description"])


def test_a_host_whose_first_address_is_unreachable_still_gets_its_events(receivers, monkeypatch):
    receiver = receivers()
    receiver.secret = signing.generate_secret()
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    getaddrinfo = socket.getaddrinfo

    def dual_stack(host, *args, **kwargs):
        if host != "dual.hunt.test":
            return getaddrinfo(host, *args, **kwargs)
        # IPv6 first, as resolvers sort it, while the receiver listens on IPv4 only
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", dual_stack)
    url = f"http://dual.hunt.test:{port}/hook"
    outcome = sender.send(url, [receiver.secret], "evt_dual", b"{}", timeout=5, allow_private=True)
    assert outcome.ok, outcome
    (arrival,) = receiver.arrivals
    assert arrival.verified is None
