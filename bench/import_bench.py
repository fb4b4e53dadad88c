"""Import benchmark: the full import path against hand-written floors, in one run.

    python bench/import_bench.py [--rounds N] [--rows N] [--big-rows N | --skip-big]

On PostgreSQL (BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432; the script creates
and uses the database `pi_bench_import` + BENCH_DB_SUFFIX) and Redis (BENCH_REDIS_URL, default
db 7), it prints seconds, rows/s and ratios to R_bare for:

  R_bare  the floor: the file COPYed raw into a temp table, then one
          INSERT .. SELECT DISTINCT ON (lower(sku)) .. ON CONFLICT (lower(sku)) DO UPDATE
          .. WHERE .. IS DISTINCT FROM into an empty table with only the primary key and the
          unique lower(sku) index;
  R       the same statements into an empty copy of the products table with all its indexes
          (what the catalog's list and search indexes cost when kept row by row);
  A       a full import through the HTTP API and a Celery worker into an empty catalog, from
          the end of the upload to `completed` (and, A ready, to its search index `ready`);
  B       the same file again (every product unchanged);
  C       a file that changes half of the products' names (and C ready);
  A0, C0  A and C by a worker that keeps no change record (IMPORT_CHANGE_RECORD=false): what
          the change record costs, as A / A0 and C / C0 (target <= 1.15 each);
  P, AP   a plan of the file into an empty catalog, then applying it (targets P <= A, AP <= A);
  U       the undo of a fresh import (every product it created deleted; target U <= A);
  the storage of the change record (pg_total_relation_size of import_changes) of A and of C;

then each import's step log (where the time goes: parsing and COPY while reading, then each SQL
step), and, each in a fresh worker into an empty catalog, the worker's peak RSS (VmHWM) and
time for a --rows import and a --big-rows (default 5M) one, with R_bare at that size.
Each of R_bare, R, A, B, C runs `--rounds` times, interleaved; the best time of each is
reported. Data files are generated into bench/data/ (git-ignored) by bench/generate_csv.py.
"""

import argparse
import os
import subprocess
import time
from pathlib import Path

import httpx
import psycopg

from harness import (
    BIN,
    DATA,
    api_client,
    app_environment,
    database_url,
    generated_csv,
    recreate_database,
    start,
    stop,
    wait_for_server,
)

REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
DB_NAME = "pi_bench_import"
DB_URL = database_url(DB_NAME)
PORT = int(os.environ.get("BENCH_PORT", "8765"))

UPSERT_SQL = """
INSERT INTO {table} (sku, name, description)
SELECT DISTINCT ON (lower(sku)) sku, name, description FROM raw
ORDER BY lower(sku), rn DESC
ON CONFLICT (lower(sku)) DO UPDATE
SET sku = EXCLUDED.sku, name = EXCLUDED.name, description = EXCLUDED.description
WHERE ({table}.sku, {table}.name, {table}.description)
      IS DISTINCT FROM (EXCLUDED.sku, EXCLUDED.name, EXCLUDED.description)
"""
BARE_TABLE = """
CREATE TABLE ref_products (id bigserial PRIMARY KEY, sku varchar(255) NOT NULL,
    name varchar(255) NOT NULL, description text NOT NULL DEFAULT '',
    active boolean NOT NULL DEFAULT true, created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now());
CREATE UNIQUE INDEX ON ref_products (lower(sku))
"""
FULL_TABLE = "CREATE TABLE ref_products (LIKE products INCLUDING ALL)"


def environment() -> dict:
    return app_environment(DB_NAME, REDIS, "instance", LOG_LEVEL="INFO", UPLOAD_RETENTION_HOURS="0")


WORKER_LOGS: list[str] = []  # one log per worker started, read for the step logs at the end


def start_worker(env: dict | None = None, **settings: str) -> subprocess.Popen:
    env = (env or environment()) | settings
    log_name = f"worker-{len(WORKER_LOGS) + 1}.log"
    WORKER_LOGS.append(log_name)
    worker = start(["worker", "--concurrency", "2"], env, log_name)
    deadline = time.monotonic() + 60
    while b" ready." not in (DATA / log_name).read_bytes():
        if time.monotonic() > deadline or worker.poll() is not None:
            raise RuntimeError((DATA / log_name).read_text())
        time.sleep(0.2)
    return worker


def reference(path: Path, table_sql: str, db_url: str = DB_URL) -> float:
    """Raw COPY into a temp table + one INSERT .. ON CONFLICT into an empty table."""
    with psycopg.connect(db_url) as conn:
        conn.execute("DROP TABLE IF EXISTS ref_products")
        for statement in table_sql.split(";"):
            conn.execute(statement)
        conn.commit()
        started = time.perf_counter()
        conn.execute("SET work_mem = '256MB'")  # the same setting the import uses
        conn.execute(
            "CREATE TEMP TABLE raw (rn bigserial, name text, sku text, "
            "description text) ON COMMIT DROP"
        )
        with (
            conn.cursor().copy(
                "COPY raw (name, sku, description) FROM STDIN WITH (FORMAT csv, HEADER true)"
            ) as copy,
            open(path, "rb") as source,
        ):
            while chunk := source.read(1 << 20):
                copy.write(chunk)
        conn.execute(UPSERT_SQL.format(table="ref_products"))
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE ref_products")
        conn.commit()
    return elapsed


def import_through_api(
    http: httpx.Client, path: Path, form: dict | None = None
) -> tuple[float, float, dict]:
    """Upload `path`; return seconds from the end of the upload to `completed` and to its
    search index being ready (the same when none was deferred), and the job."""
    with open(path, "rb") as source:
        files = {"file": (path.name, source, "text/csv")}
        response = http.post("/api/imports", files=files, data=form or {})
    return follow(http, response)


def follow(http: httpx.Client, response: httpx.Response) -> tuple[float, float, dict]:
    """Follow the job `response` answered with, from now until it has finished."""
    started = time.perf_counter()
    response.raise_for_status()
    job_id = response.json()["id"]
    done = None
    while True:
        job = http.get(f"/api/imports/{job_id}").json()
        if done is None and job["status"] not in ("queued", "running"):
            done = time.perf_counter() - started
        if done is not None and job.get("search_index") != "refreshing":
            break
        time.sleep(0.05)
    ready = time.perf_counter() - started
    if job["status"] not in ("completed", "planned"):
        raise RuntimeError(f"import {job_id} ended {job['status']}: {job['error']}")
    return done, ready, job


def change_record_bytes() -> int:
    """The size of the change record table with its index and TOAST."""
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        return conn.execute("SELECT pg_total_relation_size('import_changes')").fetchone()[0]


def truncate_changes() -> None:
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("TRUNCATE import_changes")


# What the workers log of an import's steps, of its search indexes and of its ANALYZE after
# the commit (`bulk.refresh_search`).
STEP_LINES = ("import step", "built in", "analyzed in")


def step_log(job: dict) -> list[str]:
    """The step-time lines the workers logged for `job` (its id ends each line)."""
    lines = []
    for name in WORKER_LOGS:
        lines += (DATA / name).read_text(errors="replace").splitlines()
    tag = f" job_id={job['id']}"
    return [
        line.split(": ", 1)[1]
        for line in lines
        if line.endswith(tag) and any(said in line for said in STEP_LINES)
    ]


def truncate_products() -> None:
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("TRUNCATE products RESTART IDENTITY")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def measure_fresh(http: httpx.Client, path: Path) -> dict:
    """Import `path` in a fresh worker into an empty catalog: peak RSS, seconds, steps."""
    truncate_products()
    worker = start_worker()
    try:
        done, ready, job = import_through_api(http, path)
        rss = peak_rss_mb(worker.pid)
        return {"rss": rss, "done": done, "ready": ready, "steps": step_log(job)}
    finally:
        stop(worker)


def timing_rounds(
    http: httpx.Client, files: dict, rounds: int, *, skip_r: bool = False
) -> tuple[dict, dict]:
    """Each round: the floors, then the imports with a change record, then without one."""
    keys = ("R_bare", "R", "A", "A ready", "B", "C", "C ready", "A0", "B0", "C0", "P", "AP", "U")
    times: dict[str, list[float]] = {key: [] for key in keys}
    jobs, storage = {}, {}
    for round_number in range(1, rounds + 1):
        print(f"round {round_number}/{rounds}...", flush=True)
        times["R_bare"].append(reference(files["base"], BARE_TABLE))
        if not skip_r:
            times["R"].append(reference(files["base"], FULL_TABLE))
        worker = start_worker()
        try:
            storage = with_record(http, files, times, jobs)
        finally:
            stop(worker)
        worker = start_worker(IMPORT_CHANGE_RECORD="false")
        try:
            truncate_products()
            for key, name in (("A0", "base"), ("B0", "base"), ("C0", "changed")):
                done, _ready, jobs[key] = import_through_api(http, files[name])
                times[key].append(done)
        finally:
            stop(worker)
    # the jobs (and so the step logs) of the last round
    best = {
        key: (min(values), jobs.get(key), jobs.get(key) and step_log(jobs[key]), values)
        for key, values in times.items()
        if values
    }
    return best, storage


def with_record(http: httpx.Client, files: dict, times: dict, jobs: dict) -> dict:
    """A, its undo U, the plan P and its apply AP, then B and C; the record's sizes of A and C."""
    storage = {}
    truncate_products()
    truncate_changes()
    done, ready, jobs["A"] = import_through_api(http, files["base"])
    times["A"].append(done)
    times["A ready"].append(ready)
    storage["A"] = change_record_bytes()
    undo = follow(http, http.post(f"/api/imports/{jobs['A']['id']}/undo"))
    times["U"].append(undo[0])
    jobs["U"] = undo[2]
    done, _ready, jobs["P"] = import_through_api(http, files["base"], {"plan": "true"})
    times["P"].append(done)
    done, _ready, jobs["AP"] = follow(http, http.post(f"/api/imports/{jobs['P']['id']}/apply"))
    times["AP"].append(done)
    for key, name in (("B", "base"), ("C", "changed")):
        truncate_changes()
        done, ready, jobs[key] = import_through_api(http, files[name])
        times[key].append(done)
        if f"{key} ready" in times:
            times[f"{key} ready"].append(ready)
        storage[key] = change_record_bytes()
    return storage


LABELS = {
    "R_bare": "R_bare  COPY + upsert, pk and lower(sku) only",
    "R": "R       the same, with every products index",
    "A": "A       full import, empty catalog",
    "A ready": "A ready ... and its search index built",
    "B": "B       same file again (all unchanged)",
    "C": "C       half the products' names changed",
    "C ready": "C ready ... and its search index built",
    "A0": "A0      A without a change record",
    "B0": "B0      B without a change record",
    "C0": "C0      C without a change record",
    "P": "P       a plan of the file, empty catalog",
    "AP": "AP      applying that plan",
    "U": "U       undo of the fresh import A",
}
TARGETS = {"A": "<= 1.6", "A ready": "<= 4", "B": "<= 0.8", "C": "<= 1.6", "C ready": "<= 4"}
# Ratios of two runs of the same round (issue 10's cost limits).
PAIRS = (
    ("A", "A0", "change record on a fresh import", "<= 1.15"),
    ("C", "C0", "change record on a half-changed import", "<= 1.15"),
    ("B", "B0", "change record on an unchanged import", ""),
    ("P", "A", "plan / import", "<= 1"),
    ("AP", "A", "apply after plan / import", "<= 1"),
    ("U", "A", "undo of a fresh import / the import", "<= 1"),
)


def report_pairs(results: dict, storage: dict, rows: int) -> None:
    """The ratios between runs, and what the change record takes on disk."""
    print(f"\n{'ratio':<48}{'value':>9}{'target':>9}   each round")
    for top, bottom, label, target in PAIRS:
        rounds = zip(results[top][3], results[bottom][3], strict=True)
        spread = " ".join(f"{one / other:.2f}" for one, other in rounds)
        value = results[top][0] / results[bottom][0]
        print(f"{label:<48}{value:>9.2f}{target:>9}   {spread}")
    for key, size in storage.items():
        job = results[key][1]
        changed = job["created"] + job["updated"]
        per = f"{size / changed:,.0f} bytes per change" if changed else "no changes"
        print(f"change record of {key}: {size / 2**20:,.1f} MiB for {changed:,} changes ({per})")


def report(results: dict, rows: int) -> None:
    """Each run's best round against the best R_bare, then each round against its own R_bare
    (the spread: on a shared machine one round of a run can take half as long again)."""
    bare, bare_rounds = results["R_bare"][0], results["R_bare"][3]
    print(
        f"\n{'run':<48}{'seconds':>9}{'rows/s':>11}{'/R_bare':>9}{'target':>9}"
        "   each round / its R_bare"
    )
    for key, (seconds, job, _steps, rounds) in results.items():
        ratio, target = seconds / bare, TARGETS.get(key, "")
        if key == "R_bare":  # its own seconds: how far the machine moved between rounds
            spread = " ".join(f"{took:.2f}" for took in rounds) + " s"
        else:
            pairs = zip(rounds, bare_rounds, strict=True)
            spread = " ".join(f"{took / floor:.2f}" for took, floor in pairs)
        print(
            f"{LABELS[key]:<48}{seconds:>9.2f}{rows / seconds:>11,.0f}{ratio:>9.2f}{target:>9}"
            f"   {spread}"
        )
        if job and "ready" not in key:
            print(
                f"{'':<8}created {job['created']:,}, updated {job['updated']:,}, "
                f"unchanged {job['unchanged']:,}, superseded {job['rows_superseded']:,}"
            )
    for key in ("A", "A0", "P", "AP", "B", "C", "C0"):
        print(f"\nstep log of {key} (last round):")
        for line in results[key][2] or []:
            print(f"    {line}")


def report_fresh(fresh: dict) -> None:
    for size, found in fresh.items():
        print(
            f"\nfresh worker, {size} rows: peak RSS {found['rss']:.0f} MB, completed in "
            f"{found['done']:.1f} s, search index ready in {found['ready']:.1f} s"
        )
        if "bare" in found:
            print(
                f"    R_bare at {size}: {found['bare']:.1f} s; ready / R_bare "
                f"{found['ready'] / found['bare']:.2f} (target <= 4)"
            )
        for line in found["steps"]:
            print(f"    {line}")
    sizes = list(fresh)
    if len(sizes) == 2:
        small, big = fresh[sizes[0]], fresh[sizes[1]]
        print(f"\n{sizes[1]} / {sizes[0]} time: {big['done'] / small['done']:.1f} x (target <= 11)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--big-rows", type=int, default=5_000_000)
    parser.add_argument("--skip-big", action="store_true", help="skip the big fresh import")
    parser.add_argument("--skip-rounds", action="store_true", help="only the fresh imports")
    parser.add_argument("--skip-fresh", action="store_true", help="skip the fresh-worker runs")
    parser.add_argument("--skip-r", action="store_true", help="skip R (every index row by row)")
    args = parser.parse_args()
    files = {
        "base": generated_csv(f"bench_{args.rows}.csv", args.rows),
        "changed": generated_csv(f"bench_{args.rows}_changed.csv", args.rows, changed=True),
    }
    if not args.skip_big:
        files["big"] = generated_csv(f"bench_{args.big_rows}.csv", args.big_rows)
    recreate_database(DB_NAME)
    subprocess.run(
        [str(BIN / "product-importer"), "migrate"],
        env=environment(),
        check=True,
        capture_output=True,
    )
    server = start(["serve", "--port", str(PORT)], environment(), "server.log")
    url = f"http://127.0.0.1:{PORT}"
    try:
        wait_for_server(url, server, "server.log")
        with api_client(url, environment(), timeout=3600) as http:
            fresh = {}
            if not args.skip_fresh:
                fresh[f"{args.rows:,}"] = measure_fresh(http, files["base"])
            if not args.skip_big:
                big = measure_fresh(http, files["big"])
                truncate_products()
                big["bare"] = reference(files["big"], BARE_TABLE)
                fresh[f"{args.big_rows:,}"] = big
            results, storage = {}, {}
            if not args.skip_rounds:
                results, storage = timing_rounds(http, files, args.rounds, skip_r=args.skip_r)
    finally:
        stop(server)
    if results:
        report(results, args.rows)
        report_pairs(results, storage, args.rows)
    report_fresh(fresh)


if __name__ == "__main__":
    main()
