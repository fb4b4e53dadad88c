"""Import test helpers: generated files, catalog snapshots, waiting on jobs, reading SSE."""

import csv
import io
import json
import time
from dataclasses import dataclass

import pytest
from bench.generate_csv import rows as generated_rows

from tests.conftest import REJECTED_AT_ONCE
from tests.modes import snapshot

# The headers of a tus request, and of a tus request that sends a piece of the file.
TUS = {"Tus-Resumable": "1.0.0"}
PIECE = {**TUS, "Content-Type": "application/offset+octet-stream"}
# Held by a test (`holding`), these stop an import at a known point: a lock on the whole
# catalog (as any product edit in progress holds) makes it wait before its merge; a row lock,
# inside it. `holding_rejections` stops it in the middle of its reading.
TABLE_LOCK = "LOCK TABLE products IN ROW EXCLUSIVE MODE"
ROW_LOCK = "SELECT id FROM products WHERE lower(sku) = '{key}' FOR UPDATE"


def csv_bytes(rows, header=("name", "sku", "description")) -> bytes:
    """Write rows as CSV (CRLF, quoted where needed), as Excel and the sample file do."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


@dataclass(frozen=True)
class GeneratedFile:
    """A file shaped like the sample, and the catalog an import of it gives."""

    data: bytes
    rows: int
    expected: dict  # lower(sku) -> (sku, name, description, active)
    rejected: int = 0


def generate(count: int, seed: int = 7, *, rejected: int = 0) -> GeneratedFile:
    """`count` rows like the sample's; `rejected` rows without a name in the middle of them."""
    rows = list(generated_rows(count, changed=False, seed=seed))
    expected = {sku.lower(): (sku, name, text_, True) for name, sku, text_ in rows}
    nameless = [("", f"NAMELESS-{n}", "") for n in range(rejected)]
    middle = count // 2
    data = csv_bytes(rows[:middle] + nameless + rows[middle:])
    return GeneratedFile(data, count + rejected, expected, rejected)


@pytest.fixture(scope="session")
def held_file() -> GeneratedFile:
    """20,000 rows, and in their middle as many rejected rows as an import writes at once.

    Under `holding_rejections`, an import of it stops half-way through its reading.
    """
    return generate(20_000, rejected=REJECTED_AT_ONCE)


@pytest.fixture
def catalog(app):
    """Return a function that reads every product of the PostgreSQL database (`snapshot`)."""
    from product_importer.extensions import db

    with app.app_context():
        engine = db.engine
    return lambda: snapshot(engine)


def products_by_key(snapshot: list[tuple]) -> dict:
    """lower(sku) -> (sku, name, description, active), as `GeneratedFile.expected`."""
    return {row[1].lower(): (row[1], row[2], row[3], row[4]) for row in snapshot}


def wait_for(http, job_id: int, predicate, what: str, timeout: float = 60) -> dict:
    """Poll the job until `predicate(job)` holds; fail if it finishes first."""
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"/api/imports/{job_id}").json()
        if predicate(job):
            return job
        if job["status"] not in ("queued", "running"):
            pytest.fail(f"import {job_id} finished before it was {what}: {job}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"import {job_id} not {what} after {timeout}s: {job}")
        time.sleep(0.05)


def assert_retry_refused(http, job: dict, code: str, advice: str) -> None:
    """The job's file failed it by its bytes alone: its `error_code` says which way, a retry
    (with any options) is refused with a reason that says what to do, as the job's
    `retry_refusal` does, and neither import page offers a Retry."""
    assert (job["status"], job["error_code"]) == ("failed", code), job
    refusal = job["retry_refusal"]
    assert refusal and refusal.startswith("A retry reads the same file"), job
    assert advice in refusal, refusal
    for options in ({}, {"max_invalid": "100%", "columns": {"sku": "sku", "name": "name"}}):
        retried = http.post(f"/api/imports/{job['id']}/retry", json=options)
        assert retried.status_code == 409, retried.text
        assert retried.json()["error"]["message"] == refusal
    listed = http.get("/api/imports").json()["items"]
    assert [item["retry_refusal"] for item in listed if item["id"] == job["id"]] == [refusal]
    for page in (f"/imports/{job['id']}", "/imports"):
        html = http.get(page).text
        assert job["filename"] in html, page  # the page itself, not a sign-in form
        assert 'data-action="retry"' not in html and "data-retry=" not in html, page


def read_events(http, job_id: int) -> list[tuple[str, dict]]:
    """Read the job's server-sent events until the server closes the stream."""
    events, name = [], None
    with http.stream("GET", f"/api/imports/{job_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def errors_csv(http, job_id: int) -> list[list[str]]:
    """The job's rejected rows report, parsed."""
    response = http.get(f"/api/imports/{job_id}/errors.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text)))


def wait_for_heartbeats(sql, job_id: int, beats: int = 2, timeout: float = 30) -> None:
    """Wait until the running job's heartbeat has been written `beats` more times.

    Each beat reads the job's cancel request: once two have been written after a cancel was
    committed, the import has seen it (the second beat starts after the first one ended).
    """
    query = "SELECT heartbeat_at FROM import_jobs WHERE id = :id"
    seen = sql(query, id=job_id)[0][0]
    deadline = time.monotonic() + timeout
    while beats:
        if time.monotonic() > deadline:
            raise TimeoutError(f"import {job_id}: heartbeat not written within {timeout}s")
        time.sleep(0.05)
        latest = sql(query, id=job_id)[0][0]
        if latest != seen:
            seen, beats = latest, beats - 1


@pytest.fixture(autouse=True)
def _no_import_left_running(request):
    """After a test with the worker, wait for its imports to end (cancelling stragglers).

    A test that fails half-way must not leave an import running into the next test, whose
    first step empties the tables.
    """
    if "live_worker" not in request.fixturenames:
        yield
        return
    run = request.getfixturevalue("sql")
    yield
    unfinished = "WHERE status IN ('queued', 'running')"
    started = time.monotonic()
    while run(f"SELECT count(*) FROM import_jobs {unfinished}")[0][0]:
        waited = time.monotonic() - started
        if waited > 90:
            left = run(f"SELECT id, status, message FROM import_jobs {unfinished}")
            pytest.fail(f"imports still unfinished after the test: {left}")
        if waited > 30:
            run(f"UPDATE import_jobs SET cancel_requested = true {unfinished}")
        time.sleep(0.1)
