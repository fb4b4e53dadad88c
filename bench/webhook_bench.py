"""Webhook benchmark: what webhooks cost a product edit, and how fast one worker delivers.

    python bench/webhook_bench.py [--requests 200] [--block 20] [--events 2000]

On PostgreSQL (BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432; the script creates
and uses the database `pi_bench_webhooks`) and Redis (BENCH_REDIS_URL, default db 8), with
`product-importer serve` (production mode) and one `product-importer worker`, it prints:

  1. the p50/p95 of `PATCH /api/products/<id>` over --requests requests with no webhooks, and
     over as many with 5 enabled webhooks (subscribed to product.updated) pointing at a
     receiver that sleeps 2 s before answering; and the ratio of the p95s (target <= 1.2).
     Both are measured in one run, in alternating blocks of --block requests (the webhooks
     are switched off and on between blocks), so load from anything else on the machine
     falls on both alike.
  2. delivery throughput: --events events, each published in its own commit as a product
     edit does, to one endpoint at a local receiver that answers at once; events/s from the
     first publish to the last delivery recorded as succeeded, with one worker.
"""

import argparse
import math
import multiprocessing
import os
import subprocess
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psycopg

from harness import (
    BIN,
    DATA,
    api_client,
    app_environment,
    database_url,
    recreate_database,
    start,
    stop,
    wait_for_server,
)

REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
DB_NAME = "pi_bench_webhooks"
DB_URL = database_url(DB_NAME)
PORT = int(os.environ.get("BENCH_WEBHOOK_PORT", "8766"))
SLOW_SECONDS = 2.0
WEBHOOKS = 5
WARMUP = 30
WORKER_ARGS = os.environ.get("BENCH_WORKER_ARGS", "").split()
DONE = "status <> 'pending'"


# --- receivers ------------------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1, in its own process, answering every POST with 200 after
    `sleep` seconds (its own process, so it never competes with this one for the GIL)."""

    def __init__(self, sleep: float = 0.0):
        ready = multiprocessing.Queue()
        self.process = multiprocessing.Process(target=_serve, args=(sleep, ready), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{ready.get(timeout=30)}/hook"

    def close(self) -> None:
        self.process.terminate()
        self.process.join(10)


def _serve(sleep: float, ready) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length") or 0))
            time.sleep(sleep)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ready.put(server.server_address[1])
    server.serve_forever()


# --- the app's processes --------------------------------------------------------------------


def environment() -> dict:
    # the receivers are on 127.0.0.1
    return app_environment(
        DB_NAME, REDIS, "webhook-instance", WEBHOOK_ALLOW_PRIVATE="true", LOG_LEVEL="WARNING"
    )


def bench_app():
    """The app, in this process, on the bench database and broker."""
    os.environ.update(environment())
    from product_importer import create_app

    return create_app()


def wait_for_worker(worker: subprocess.Popen) -> None:
    """Wait until the worker answers a ping through the broker."""
    control = bench_app().extensions["celery"].control
    deadline = time.monotonic() + 60
    while not control.ping(timeout=0.5):
        if time.monotonic() > deadline or worker.poll() is not None:
            raise RuntimeError((DATA / "webhook-worker.log").read_text())


def flush_broker() -> None:
    import redis

    redis.Redis.from_url(REDIS).flushdb()


# --- 1. what webhooks cost a product edit ---------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def patch_times(http: httpx.Client, product_id: int, count: int, start_at: int) -> list[float]:
    """Rename the product `count` times; return each request's milliseconds."""
    times = []
    for number in range(start_at, start_at + count):
        started = time.perf_counter()
        response = http.patch(f"/api/products/{product_id}", json={"name": f"Product {number}"})
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


def switch_webhooks(http: httpx.Client, ids: list[int], enabled: bool) -> None:
    for webhook_id in ids:
        http.patch(f"/api/webhooks/{webhook_id}", json={"enabled": enabled}).raise_for_status()


def edit_cost(http: httpx.Client, requests: int, block: int) -> dict:
    """Time PATCH requests without and with 5 webhooks to a slow receiver, alternating."""
    slow = Receiver(sleep=SLOW_SECONDS)
    try:
        product = http.post("/api/products", json={"sku": "BENCH-1", "name": "Product"})
        product.raise_for_status()
        product_id = product.json()["id"]
        hooks = [
            http.post(
                "/api/webhooks",
                json={"url": slow.url, "events": ["product.updated"], "enabled": False},
            ).json()["id"]
            for _ in range(WEBHOOKS)
        ]
        patch_times(http, product_id, WARMUP, 0)
        times = {"without": [], "with": []}
        number = WARMUP
        while len(times["with"]) < requests:
            for label, enabled in (("without", False), ("with", True)):
                switch_webhooks(http, hooks, enabled)
                size = min(block, requests - len(times[label]))
                times[label] += patch_times(http, product_id, size, number)
                number += size
        switch_webhooks(http, hooks, False)
        return {**times, "deliveries": count_rows("webhook_deliveries")}
    finally:
        slow.close()


def count_rows(table: str, where: str = "true") -> int:
    with psycopg.connect(DB_URL) as conn:
        return conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


# --- 2. delivery throughput -----------------------------------------------------------------


def throughput(http: httpx.Client, events: int, worker: "Worker") -> dict:
    """Queue `events` events (one commit each) for a fast receiver while the worker does not
    consume the webhooks queue; then time it draining them: events/s and CPU per event."""
    from product_importer.extensions import db
    from product_importer.webhooks import events as webhook_events

    worker.restart()  # no backlog from part 1 holding its threads
    fast = Receiver()
    try:
        http.post("/api/webhooks", json={"url": fast.url, "events": ["product.updated"]})
        data = {"id": 1, "sku": "BENCH-1", "name": "Product", "description": "", "active": True}
        app = bench_app()
        control = app.extensions["celery"].control
        control.cancel_consumer("webhooks", reply=True)
        with app.app_context():
            started = time.perf_counter()
            for _ in range(events):
                webhook_events.publish_in_session(db.session, "product.updated", data)
                db.session.commit()
            published = time.perf_counter() - started
        time.sleep(1)  # the last task messages leave this process's doorbell
        started, cpu_before = time.perf_counter(), cpu_seconds(worker.process.pid)
        control.add_consumer("webhooks", reply=True)
        while count_rows("webhook_deliveries", DONE) < events:
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(worker.process.pid) - cpu_before
        failed = count_rows("webhook_deliveries", "status = 'failed'")
    finally:
        fast.close()
    return {
        "events": events,
        "publish_rate": events / published,
        "elapsed": elapsed,
        "cpu": cpu,
        "failed": failed,
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Worker:
    """The one `product-importer worker` process."""

    def __init__(self):
        self.process = None

    def start(self) -> None:
        self.process = start(["worker", *WORKER_ARGS], environment(), "webhook-worker.log")
        wait_for_worker(self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def restart(self) -> None:
        """A fresh worker, an empty broker and no webhooks."""
        self.stop()
        flush_broker()
        with psycopg.connect(DB_URL, autocommit=True) as conn:
            conn.execute("TRUNCATE webhook_endpoints CASCADE")
        self.start()


# --- running and reporting ------------------------------------------------------------------


def report_edit_cost(result: dict, requests: int) -> float:
    print(f"\n1. PATCH /api/products/<id>, {requests} requests each, blocks alternating")
    print(f"{'':<42}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for label, title in (
        ("without", "no webhooks"),
        ("with", f"{WEBHOOKS} webhooks, receiver 2 s"),
    ):
        values = result[label]
        print(
            f"{title:<42}{percentile(values, 0.5):>9.2f}{percentile(values, 0.95):>9.2f}"
            f"{max(values):>9.2f}"
        )
    ratio = percentile(result["with"], 0.95) / percentile(result["without"], 0.95)
    verdict = "OK" if ratio <= 1.2 else "MISSED"
    print(f"p95 ratio with/without: {ratio:.2f} (target <= 1.2: {verdict})")
    expected = WEBHOOKS * requests
    print(f"deliveries queued by the edits: {result['deliveries']:,} (expected {expected:,})")
    return ratio


def report_throughput(result: dict) -> None:
    rate = result["events"] / result["elapsed"]
    print("\n2. Delivery throughput, one worker (8 threads), receiver answering at once")
    print(
        f"{result['events']:,} queued events delivered in {result['elapsed']:.2f} s: "
        f"{rate:,.0f} events/s (failed: {result['failed']}; publishing them, one commit "
        f"each, ran at {result['publish_rate']:,.0f} events/s)"
    )
    busy = result["cpu"] / result["elapsed"]
    per_event = result["cpu"] / result["events"] * 1000
    print(f"worker CPU: {per_event:.1f} ms per event, {busy:.0%} of one core while draining")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--skip-edits", action="store_true", help="only measure throughput")
    args = parser.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    recreate_database(DB_NAME)
    flush_broker()
    subprocess.run([str(BIN / "product-importer"), "migrate"], env=environment(), check=True)
    server = start(["serve", "--port", str(PORT)], environment(), "webhook-server.log")
    worker = Worker()
    try:
        worker.start()
        url = f"http://127.0.0.1:{PORT}"
        wait_for_server(url, server, "webhook-server.log")
        with api_client(url, environment(), timeout=30) as http:
            if not args.skip_edits:
                report_edit_cost(edit_cost(http, args.requests, args.block), args.requests)
            report_throughput(throughput(http, args.events, worker))
    finally:
        worker.stop()
        stop(server)


if __name__ == "__main__":
    main()
