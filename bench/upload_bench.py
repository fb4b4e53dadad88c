"""Upload benchmark: an import that reads a resumable upload while it arrives, against R_bare.

    python bench/upload_bench.py [--rounds N] [--rows N] [--rate MB/s]

On PostgreSQL (BENCH_PG_URL; the script creates and uses the database `pi_bench_upload` +
BENCH_DB_SUFFIX) and Redis (BENCH_REDIS_URL, default db 7), with `serve` and a Celery worker,
a --rows file (default 500K, the sample's shape) is sent through /api/uploads (tus) by a client
throttled to --rate MB/s (default 5), into an empty catalog each time, and it prints seconds
and ratios to R_bare (as bench/import_bench.py defines it, measured in the same run) for:

  F  follow: the import asked for as soon as the upload exists, so it reads the rows while
     they arrive; seconds from the upload's last byte to `completed`;
  S  after: the same upload, the import asked for once the upload is complete (a full import
     after the last byte, as a multipart upload has it); seconds from the last byte.

Each of R_bare, F, S runs `--rounds` times, interleaved; the best of each is reported, with the
upload's own duration.
"""

import argparse
import subprocess
import time
from pathlib import Path

import httpx
import psycopg

from harness import (
    BIN,
    admin_token,
    app_environment,
    database_url,
    generated_csv,
    recreate_database,
    start,
    stop,
    wait_for_server,
)
from import_bench import BARE_TABLE, REDIS, reference, start_worker

DB_NAME = "pi_bench_upload"
DB_URL = database_url(DB_NAME)
PORT = 8766
TUS = {"Tus-Resumable": "1.0.0"}
SLICE = 64 * 1024  # the throttled client sends this much, then waits for its pace


def environment() -> dict:
    return app_environment(DB_NAME, REDIS, "upload-instance", LOG_LEVEL="INFO")


def cli(*args: str) -> str:
    """Run `product-importer ARGS` on the benchmark's database; return its standard output."""
    run = subprocess.run(
        [str(BIN / "product-importer"), *args],
        env=environment(),
        check=True,
        capture_output=True,
        text=True,
    )
    return run.stdout.strip()


def throttled(path: Path, rate: float):
    """The file's bytes, sent no faster than `rate` bytes a second."""
    started, sent = time.perf_counter(), 0
    with open(path, "rb") as source:
        while chunk := source.read(SLICE):
            yield chunk
            sent += len(chunk)
            ahead = sent / rate - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)


def upload_and_import(http: httpx.Client, path: Path, rate: float, *, follow: bool) -> dict:
    """Send `path` through tus at `rate`; import it (from its creation when `follow`)."""
    size = path.stat().st_size
    created = http.post("/api/uploads", headers={**TUS, "Upload-Length": str(size)})
    created.raise_for_status()
    upload_url = created.headers["Location"]
    upload_id = upload_url.rsplit("/", 1)[-1]
    job_id = _ask_import(http, upload_id) if follow else None
    began = time.perf_counter()
    piece = {
        **TUS,
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(size),
    }
    http.patch(upload_url, content=throttled(path, rate), headers=piece).raise_for_status()
    last_byte = time.perf_counter()
    job_id = job_id or _ask_import(http, upload_id)
    while True:
        job = http.get(f"/api/imports/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    after = time.perf_counter() - last_byte
    if job["status"] != "completed":
        raise RuntimeError(f"import {job_id} ended {job['status']}: {job['error']}")
    return {"after": after, "upload": last_byte - began, "job": job}


def _ask_import(http: httpx.Client, upload_id: str) -> int:
    response = http.post("/api/imports", json={"upload": upload_id})
    response.raise_for_status()
    return response.json()["id"]


def truncate_products() -> None:
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("TRUNCATE products RESTART IDENTITY")


def rounds(http: httpx.Client, path: Path, rate: float, count: int) -> dict:
    found: dict[str, list] = {"R_bare": [], "F": [], "S": []}
    for number in range(1, count + 1):
        print(f"round {number}/{count}...", flush=True)
        found["R_bare"].append(reference(path, BARE_TABLE, db_url=DB_URL))
        print(f"    R_bare {found['R_bare'][-1]:.2f} s", flush=True)
        for key, follow in (("F", True), ("S", False)):
            truncate_products()
            found[key].append(upload_and_import(http, path, rate, follow=follow))
            result = found[key][-1]
            print(f"    {key}: upload {result['upload']:.2f} s, then {result['after']:.2f} s")
    return found


def report(found: dict, rows: int, rate: float) -> None:
    bare = min(found["R_bare"])
    print(f"\n{rows:,} rows sent at {rate / 1e6:.1f} MB/s; R_bare {bare:.2f} s (best of the run)")
    labels = {
        "F": "F  import follows the upload",
        "S": "S  import after the upload",
    }
    print(f"{'run':<36}{'upload s':>10}{'after last byte s':>19}{'/R_bare':>9}{'target':>8}")
    for key, label in labels.items():
        best = min(found[key], key=lambda result: result["after"])
        target = "<= 1.5" if key == "F" else ""
        ratio = best["after"] / bare
        print(f"{label:<36}{best['upload']:>10.2f}{best['after']:>19.2f}{ratio:>9.2f}{target:>8}")
        job = best["job"]
        print(f"{'':<4}created {job['created']:,}, rows read {job['rows_processed']:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rate", type=float, default=5.0, help="MB/s of the throttled client")
    args = parser.parse_args()
    path = generated_csv(f"bench_{args.rows}.csv", args.rows)
    recreate_database(DB_NAME)
    cli("migrate")
    token = admin_token(environment())
    server = start(["serve", "--port", str(PORT)], environment(), "upload-server.log")
    url = f"http://127.0.0.1:{PORT}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        wait_for_server(url, server, "upload-server.log")
        worker = start_worker(environment())
        try:
            with httpx.Client(base_url=url, timeout=3600, headers=headers) as http:
                found = rounds(http, path, args.rate * 1e6, args.rounds)
            report(found, args.rows, args.rate * 1e6)
        finally:
            stop(worker)
    finally:
        stop(server)


if __name__ == "__main__":
    main()
