"""Import benchmark: the full import path against a hand-written floor, in one run.

    python bench/import_bench.py [--rounds N] [--skip-2m]

On PostgreSQL (BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432; the script creates
and uses the database `pi_bench_import`) and Redis (BENCH_REDIS_URL, default db 7), it prints
seconds, rows/s and ratios for:

  R  the reference: the file COPYed raw into a temp table, then one
     INSERT .. SELECT DISTINCT ON (lower(sku)) .. ORDER BY lower(sku), rn DESC
     .. ON CONFLICT (lower(sku)) DO UPDATE into an empty copy of the products table;
  A  a full import through the HTTP API and a Celery worker into an empty catalog, from the
     end of the upload to `completed`;
  B  the same file again (every product unchanged);
  C  a file that changes half of the products;

and the worker's peak RSS (VmHWM) for a 500K-row and a 2M-row import, each in a fresh worker.
Each of R, A, B, C runs `--rounds` times, interleaved; the best time of each is reported.
Data files are generated into bench/data/ (git-ignored) by bench/generate_csv.py.
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

REFERENCE_SQL = """
INSERT INTO ref_products (sku, name, description)
SELECT DISTINCT ON (lower(sku)) sku, name, description FROM raw
ORDER BY lower(sku), rn DESC
ON CONFLICT (lower(sku)) DO UPDATE
SET sku = EXCLUDED.sku, name = EXCLUDED.name, description = EXCLUDED.description
"""


def environment() -> dict:
    return app_environment(DB_NAME, REDIS, "instance", LOG_LEVEL="INFO", UPLOAD_RETENTION_HOURS="0")


def start_worker() -> subprocess.Popen:
    worker = start(["worker", "--concurrency", "2"], environment(), "worker.log")
    deadline = time.monotonic() + 60
    while b" ready." not in (DATA / "worker.log").read_bytes():
        if time.monotonic() > deadline or worker.poll() is not None:
            raise RuntimeError((DATA / "worker.log").read_text())
        time.sleep(0.2)
    return worker


def reference(path: Path) -> float:
    """R: raw COPY into a temp table + one INSERT .. ON CONFLICT into an empty products copy."""
    with psycopg.connect(DB_URL) as conn:
        conn.execute("DROP TABLE IF EXISTS ref_products")
        conn.execute("CREATE TABLE ref_products (LIKE products INCLUDING ALL)")
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
        conn.execute(REFERENCE_SQL)
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE ref_products")
        conn.commit()
    return elapsed


def import_through_api(http: httpx.Client, path: Path) -> tuple[float, dict]:
    """Upload `path`; return seconds from the end of the upload to `completed`, and the job."""
    with open(path, "rb") as source:
        response = http.post("/api/imports", files={"file": (path.name, source, "text/csv")})
    uploaded = time.perf_counter()
    response.raise_for_status()
    job_id = response.json()["id"]
    while True:
        job = http.get(f"/api/imports/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - uploaded
    if job["status"] != "completed":
        raise RuntimeError(f"import {job_id} ended {job['status']}: {job['error']}")
    return elapsed, job


def truncate_products() -> None:
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("TRUNCATE products RESTART IDENTITY")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def measure_rss(http: httpx.Client, path: Path) -> float:
    """Import `path` in a fresh worker into an empty catalog; return the worker's peak RSS."""
    truncate_products()
    worker = start_worker()
    try:
        import_through_api(http, path)
        return peak_rss_mb(worker.pid)
    finally:
        stop(worker)


def timing_rounds(http: httpx.Client, files: dict, rounds: int) -> dict:
    times: dict[str, list[float]] = {key: [] for key in "RABC"}
    jobs = {}
    for round_number in range(1, rounds + 1):
        print(f"round {round_number}/{rounds}...", flush=True)
        times["R"].append(reference(files["base"]))
        truncate_products()
        for key, name in (("A", "base"), ("B", "base"), ("C", "changed")):
            elapsed, jobs[key] = import_through_api(http, files[name])
            times[key].append(elapsed)
    return {key: (min(values), jobs.get(key)) for key, values in times.items()}


def report(results: dict, rows: int, rss: dict) -> None:
    reference_seconds = results["R"][0]
    targets = {"A": 1.25, "B": 0.9, "C": 1.6}
    print(f"\n{'run':<44}{'seconds':>9}{'rows/s':>11}{'x R':>8}{'target':>9}")
    labels = {
        "R": "R  reference (COPY + INSERT .. ON CONFLICT)",
        "A": "A  full import, empty catalog",
        "B": "B  same file again (all unchanged)",
        "C": "C  half the products changed",
    }
    for key, (seconds, job) in results.items():
        ratio = seconds / reference_seconds
        target = f"<= {targets[key]}" if key in targets else ""
        print(f"{labels[key]:<44}{seconds:>9.2f}{rows / seconds:>11,.0f}{ratio:>8.2f}{target:>9}")
        if job:
            print(
                f"{'':<6}created {job['created']:,}, updated {job['updated']:,}, "
                f"unchanged {job['unchanged']:,}"
            )
    if rss:
        print(
            f"\nworker peak RSS: {rss['500K']:.0f} MB at 500K rows, "
            f"{rss.get('2M', float('nan')):.0f} MB at 2M rows "
            f"(difference {rss.get('2M', float('nan')) - rss['500K']:.0f} MB; "
            "targets < 150 MB, difference <= 30 MB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--skip-2m", action="store_true", help="skip the 2M-row RSS run")
    args = parser.parse_args()
    files = {
        "base": generated_csv(f"bench_{args.rows}.csv", args.rows),
        "changed": generated_csv(f"bench_{args.rows}_changed.csv", args.rows, changed=True),
    }
    if not args.skip_2m:
        files["2M"] = generated_csv("bench_2000000.csv", 2_000_000)
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
        with httpx.Client(base_url=url, timeout=600) as http:
            rss = {"500K": measure_rss(http, files["base"])}
            if not args.skip_2m:
                rss["2M"] = measure_rss(http, files["2M"])
            worker = start_worker()
            try:
                results = timing_rounds(http, files, args.rounds)
            finally:
                stop(worker)
    finally:
        stop(server)
    report(results, args.rows, rss)


if __name__ == "__main__":
    main()
