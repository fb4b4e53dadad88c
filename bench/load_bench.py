"""Load benchmark: 50 people browsing and 5 editing products while a 500K-row import runs.

    python bench/load_bench.py [--rows 500000] [--baseline-seconds 30] [--max-seconds 300]
                               [--max-requests 100000]

On PostgreSQL (BENCH_PG_URL; the script recreates the database `pi_bench_load`) and Redis
(BENCH_REDIS_URL, default db 12) it starts `product-importer serve` with two web processes
(WEB_CONCURRENCY=2) and one `product-importer worker`, all on 127.0.0.1, and imports the
generated 500K-row file (bench/generate_csv.py) as the starting catalog. Then locust, as a
library in headless mode, runs 55 simulated people against the server, in two phases timed
side by side in one run:

  baseline  no import running, for --baseline-seconds;
  import    from the moment the same file with every second name changed is accepted
            (POST /api/imports, 233,327 products to update: the bulk path, then the
            description index rebuilt) until the job is over and its search index `ready`.

Each phase is bounded by --max-seconds and --max-requests. Browsers (50) page through the
list, filter it (sku, name, description, q, active) and open products, waiting 0.5-2 s between
requests as a person does; editors (5) rename products with PATCH, waiting 2-5 s. For each
kind of request it prints the count, errors, p50/p95/p99 in ms per phase, and the ratio of the
import phase's p95 to the baseline's. Goal: list p95 under 200 ms and no error during the import.
"""

from gevent import monkey

monkey.patch_all()  # locust runs its simulated people on gevent: patch before anything else

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import gevent  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402
import psycopg  # noqa: E402
from locust import FastHttpUser, between, task  # noqa: E402
from locust.env import Environment  # noqa: E402

from harness import (  # noqa: E402
    BIN,
    DATA,
    ROOT,
    app_environment,
    database_url,
    generated_csv,
    recreate_database,
    role_token,
    start,
    stop,
    wait_for_server,
)

REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
DB_NAME = "pi_bench_load"
HOST = "127.0.0.1"  # the bench never leaves this machine
BROWSERS, EDITORS = 50, 5
WARMUP_SECONDS = 10  # every person started, connections open, first counts made
LIST_KINDS = ("list", "list page N", "filter sku", "filter name", "filter description", "q")
SKU_TERMS = ["-9", "-12", "-345", "-2", "-77"]
NAME_TERMS = ["ar", "a g", "wendy", "son", "mar"]
WORDS = ["church", "zephyr", "floor", "economy", "method", "office"]


class People:
    """What the simulated people share: tokens and a sample of real product ids."""

    viewer_token = ""
    editor_token = ""
    product_ids: list[int] = []


class Person(FastHttpUser):
    """Waits for an answer as long as gunicorn and the proxy do (120 s), as a browser would."""

    abstract = True
    network_timeout = connection_timeout = 120.0


def _headers(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class Browser(Person):
    """Someone reading the catalog: pages, filters, opens a product."""

    fixed_count = BROWSERS
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.headers = _headers(People.viewer_token)

    def _list(self, kind: str, **params) -> None:
        self.client.get("/api/products", params=params, headers=self.headers, name=kind)

    @task(4)
    def first_page(self) -> None:
        self._list("list", per_page=50)

    @task(3)
    def later_page(self) -> None:
        self._list("list page N", page=random.randint(2, 200), per_page=50)

    @task(2)
    def by_sku(self) -> None:
        self._list("filter sku", sku=random.choice(SKU_TERMS))

    @task(2)
    def by_name(self) -> None:
        self._list("filter name", name=random.choice(NAME_TERMS))

    @task(1)
    def by_description(self) -> None:
        self._list("filter description", description=random.choice(WORDS))

    @task(1)
    def by_anything(self) -> None:
        self._list("q", q=random.choice(WORDS))

    @task(1)
    def active_only(self) -> None:
        self._list("filter active", active="true", page=random.randint(1, 20))

    @task(3)
    def one_product(self) -> None:
        product_id = random.choice(People.product_ids)
        self.client.get(f"/api/products/{product_id}", headers=self.headers, name="product")


class Editor(Person):
    """Someone fixing product names one at a time."""

    fixed_count = EDITORS
    wait_time = between(2.0, 5.0)

    def on_start(self) -> None:
        self.headers = _headers(People.editor_token)

    @task
    def rename(self) -> None:
        product_id = random.choice(People.product_ids)
        body = {"name": f"Edited under load {random.randint(1, 10**6)}"}
        self.client.patch(
            f"/api/products/{product_id}", json=body, headers=self.headers, name="edit (PATCH)"
        )


@dataclass
class Phase:
    name: str
    seconds: float
    stats: dict  # kind -> (requests, failures, p50, p95, p99)
    errors: list[str]
    client_cpu: float  # seconds of CPU the simulated people (this process) used
    server_cpu: float  # seconds of CPU the two web processes used
    load_average: float  # the machine's, over the last minute, at the phase's end


class Load:
    """The simulated people, running from start() to stop(); measured phase by phase."""

    def __init__(self, url: str, server_pid: int):
        self.env = Environment(user_classes=[Browser, Editor], host=url)
        self.runner = self.env.create_local_runner()
        self.server = psutil.Process(server_pid)

    def server_cpu(self) -> float:
        """CPU seconds used so far by gunicorn's processes (the master and its workers)."""
        processes = [self.server, *self.server.children(recursive=True)]
        return sum(sum(p.cpu_times()[:2]) for p in processes)

    def start(self) -> None:
        self.runner.start(BROWSERS + EDITORS, spawn_rate=10)

    def stop(self) -> None:
        self.runner.quit()

    def measure(self, name: str, until, max_seconds: float, max_requests: int) -> Phase:
        """Count from now until `until()` is true or a bound is reached."""
        stats = self.env.stats
        stats.reset_all()
        started, cpu, server_cpu = time.monotonic(), time.process_time(), self.server_cpu()
        while not until() and time.monotonic() - started < max_seconds:
            if stats.total.num_requests >= max_requests:
                break
            gevent.sleep(0.5)
        seconds = time.monotonic() - started
        figures = {
            entry.name: (
                entry.num_requests,
                entry.num_failures,
                *(entry.get_response_time_percentile(p) for p in (0.5, 0.95, 0.99)),
            )
            for entry in stats.entries.values()
        }
        errors = [f"{e.name}: {e.error} (x{e.occurrences})" for e in stats.errors.values()]
        load = os.getloadavg()[0]  # the machine is shared: say how busy it was
        cpu_used = (time.process_time() - cpu, self.server_cpu() - server_cpu)
        return Phase(name, seconds, figures, errors, *cpu_used, load)


def after(seconds: float):
    """A condition that becomes true `seconds` from now."""
    at = time.monotonic() + seconds
    return lambda: time.monotonic() > at


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def cli(env: dict, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "product-importer"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout.strip()


def make_tokens(env: dict) -> tuple[str, str, str]:
    """An admin (to import), a viewer and an editor, each with a token."""
    roles = ("admin", "viewer", "editor")
    return tuple(role_token(env, role, f"{role}@load.bench") for role in roles)


def upload(url: str, token: str, path) -> int:
    """POST the file to /api/imports; return the job id."""
    with open(path, "rb") as data, httpx.Client(base_url=url, timeout=600) as http:
        files = {"file": (path.name, data, "text/csv")}
        response = http.post("/api/imports", files=files, headers=_headers(token))
    assert response.status_code == 202, response.text
    return response.json()["id"]


def job_state(job_id: int) -> tuple[str, str | None]:
    with psycopg.connect(database_url(DB_NAME)) as conn:
        return conn.execute(
            "SELECT status, search_index FROM import_jobs WHERE id = %s", (job_id,)
        ).fetchone()


def import_over(job_id: int) -> bool:
    """Whether the job ended and its deferred search index (if any) is built."""
    status, search_index = job_state(job_id)
    return status not in ("queued", "running") and search_index != "refreshing"


def wait_for(job_id: int) -> str:
    while not import_over(job_id):
        time.sleep(0.5)
    return job_state(job_id)[0]


def sample_ids() -> list[int]:
    with psycopg.connect(database_url(DB_NAME)) as conn:
        rows = conn.execute("SELECT id FROM products TABLESAMPLE SYSTEM (1)").fetchall()
    return [row[0] for row in rows]


def print_phases(baseline: Phase, loaded: Phase) -> None:
    print(f"\n{'request':<20} {'phase':<9} {'count':>6} {'errors':>6} "
          f"{'p50':>6} {'p95':>6} {'p99':>6}  p95 import/baseline")  # fmt: skip
    for kind in sorted(set(baseline.stats) | set(loaded.stats)):
        for phase in (baseline, loaded):
            count, failures, p50, p95, p99 = phase.stats.get(kind, (0, 0, 0, 0, 0))
            ratio = ""
            if phase is loaded and baseline.stats.get(kind, (0,) * 5)[3]:
                ratio = f"{p95 / baseline.stats[kind][3]:.2f}"
            print(f"{kind:<20} {phase.name:<9} {count:>6} {failures:>6} "
                  f"{p50:>6.0f} {p95:>6.0f} {p99:>6.0f}  {ratio}")  # fmt: skip
    for phase in (baseline, loaded):
        total = sum(s[0] for s in phase.stats.values())
        failed = sum(s[1] for s in phase.stats.values())
        lists = [phase.stats[k][3] for k in LIST_KINDS if k in phase.stats]
        rate = total / phase.seconds
        print(f"{phase.name}: {phase.seconds:.0f} s, {total} requests ({rate:.0f}/s), "
              f"{failed} errors; worst list p95 {max(lists, default=0):.0f} ms; "
              f"client CPU {phase.client_cpu:.1f} s; web CPU {phase.server_cpu:.1f} s = "
              f"{1000 * phase.server_cpu / max(total, 1):.1f} ms per request; load average "
              f"{phase.load_average:.1f} on {os.cpu_count()} cores")  # fmt: skip
        for error in phase.errors:
            print(f"  {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--baseline-seconds", type=float, default=30)
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--max-requests", type=int, default=100_000)
    args = parser.parse_args()
    first = generated_csv(f"bench_{args.rows}.csv", args.rows)
    changed = generated_csv(f"bench_{args.rows}_changed.csv", args.rows, changed=True)

    recreate_database(DB_NAME)
    env = app_environment(DB_NAME, REDIS, "load-instance", WEB_CONCURRENCY="2", LOG_LEVEL="WARNING")
    cli(env, "migrate")
    admin, People.viewer_token, People.editor_token = make_tokens(env)
    port = free_port()
    url = f"http://{HOST}:{port}"
    server = start(["serve", "--host", HOST, "--port", str(port)], env, "load-server.log")
    worker = start(["worker"], env, "load-worker.log")
    try:
        wait_for_server(url, server, "load-server.log")
        print(f"loading the starting catalog ({first.name})...", flush=True)
        print(f"  {wait_for(upload(url, admin, first))}", flush=True)
        with psycopg.connect(database_url(DB_NAME), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE products")  # as autovacuum would, soon after
        People.product_ids = sample_ids()

        load = Load(url, server.pid)
        load.start()
        try:
            print(f"{BROWSERS} people browsing, {EDITORS} editing; warming up...", flush=True)
            load.measure("warm-up", after(WARMUP_SECONDS), WARMUP_SECONDS, args.max_requests)
            print("baseline: no import running...", flush=True)
            bounds = (args.max_seconds, args.max_requests)
            baseline = load.measure("baseline", after(args.baseline_seconds), *bounds)
            print(f"import of {changed.name} (from its upload on)...", flush=True)
            uploading = gevent.spawn(upload, url, admin, changed)
            loaded = load.measure(
                "import", lambda: uploading.ready() and import_over(uploading.value), *bounds
            )
        finally:
            load.stop()
        status = wait_for(uploading.get())
        print(f"  the import ended {status}; the load ran {loaded.seconds:.0f} s of it")
        print_phases(baseline, loaded)
    finally:
        stop(worker)
        stop(server)
        for kept in (DATA / "load-instance" / "uploads").glob("*"):
            kept.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
