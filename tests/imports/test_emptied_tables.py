"""The harness empties the tables before each test, numbering jobs from 1 again: an import an
earlier test left running in the shared worker must not land on the next test's job 1."""

import re

from tests.conftest import empty_tables
from tests.helpers import wait_until
from tests.imports.conftest import PIECE, TUS, generate, products_by_key, wait_for


def import_upload(http, data: bytes, sent: int) -> int:
    """Upload the first `sent` bytes of `data`, ask for its import at once; return the job id."""
    created = http.post("/api/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    location = created.headers["Location"]
    piece = http.patch(location, content=data[:sent], headers={**PIECE, "Upload-Offset": "0"})
    assert piece.status_code == 204
    response = http.post("/api/imports", json={"upload": location.rsplit("/", 1)[-1]})
    assert response.status_code == 202
    return response.json()["id"]


def test_an_import_left_following_its_upload_writes_nothing_into_the_next_tests_job(
    app, account_rows, http, catalog, live_worker
):
    """An earlier test's import reading an upload it left unfinished could end the next test's
    job 1 `failed` (its own upload gone), having written its progress there: the harness
    cancels it and waits for its end before it empties the tables."""
    logged = len(live_worker.output())
    earlier = generate(20_000)
    assert import_upload(http, earlier.data, len(earlier.data) // 2) == 1
    wait_for(http, 1, lambda job: job["rows_processed"] > 0, "reading its upload")
    earlier_run = re.findall(r"drain_imports\[(\S+)\] received", live_worker.output()[logged:])[-1]

    empty_tables(app, account_rows)  # as the next test starts

    file = generate(3_000, seed=8)
    assert import_upload(http, file.data, len(file.data)) == 1
    wait_for(http, 1, lambda job: job["status"] not in ("queued", "running"), "done")
    wait_until(  # the earlier run's end (its task may have run this job too, then ended)
        lambda: f"drain_imports[{earlier_run}] succeeded" in live_worker.output(), "its end"
    )
    # Not waited for, it ran on into the emptied tables: it either found its job gone, or took
    # this job 1 for its own (its upload then gone, it ended that job `failed`).
    assert "attempt 1 was followed by another" not in live_worker.output()[logged:]
    job = http.get("/api/imports/1").json()
    assert job["status"] == "completed", job
    assert (job["bytes_processed"], job["created"]) == (len(file.data), len(file.expected))
    assert products_by_key(catalog()) == file.expected
