"""Import jobs while they run: live progress, cancel, retry, the queue, failures mid-merge.

Where a test must act while an import is at a given point, it holds a lock the import needs
there (on the catalog, or on its rejected rows) and waits until the import waits for it,
instead of hoping to be fast enough.
"""

import gzip
import io
import json
import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import paused
from tests.helpers import import_csv, upload_csv, wait_for_job

from .conftest import (
    ROW_LOCK,
    TABLE_LOCK,
    assert_retry_refused,
    csv_bytes,
    errors_csv,
    generate,
    products_by_key,
    read_events,
    wait_for,
    wait_for_heartbeats,
)

pytestmark = pytest.mark.usefixtures("live_worker")

NOT_CHANGED = "the catalog was not changed"


def upload(http, data, filename="products.csv") -> dict:
    response = upload_csv(http, data, filename)
    assert response.status_code == 202, response.text
    return response.json()


def seed_from(http, generated, count: int = 2) -> list[str]:
    """Import `count` of the file's products under other names, and one product it lacks."""
    keys = list(generated.expected)[:count]
    rows = [("Old name", generated.expected[key][0], "Old description") for key in keys]
    job = import_csv(http, csv_bytes([*rows, ("Not in the file", "OTHER-1", "")]))
    assert job["created"] == count + 1
    return keys


def cancel(http, job_id: int):
    return http.post(f"/api/imports/{job_id}/cancel")


def retry(http, job_id: int):
    return http.post(f"/api/imports/{job_id}/retry")


# --- progress -------------------------------------------------------------------------------


class Events:
    """An import's event stream, read one event at a time."""

    def __init__(self, response):
        self.response, self.seen, self._name = response, [], None
        self._lines = response.iter_lines()

    def until(self, predicate) -> tuple[str, dict]:
        """Read events until one satisfies `predicate(name, data)`; return it."""
        for line in self._lines:
            if line.startswith("event: "):
                self._name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                self.seen.append((self._name, json.loads(line.removeprefix("data: "))))
                if predicate(*self.seen[-1]):
                    return self.seen[-1]
        pytest.fail(f"the stream ended before the event looked for: {self.seen[-3:]}")

    def rest(self) -> list[str]:
        """The lines left until the server ends the stream."""
        return [line for line in self._lines if line]


def test_an_applied_plan_goes_on_from_the_percent_the_plan_reached(http, holding):
    plan = import_csv(http, "sku,name\r\nA-1,Apple\r\nB-2,Banana\r\n", data={"plan": "true"})
    # read and compared, not written: the bar stops short, with what is left for the apply
    assert plan["status"] == "planned" and 0 < plan["percent"] < 100, plan
    with holding(TABLE_LOCK) as catalog:  # the apply waits for the catalog, inside its merge
        queued = http.post(f"/api/imports/{plan['id']}/apply").json()
        with http.stream("GET", f"/api/imports/{plan['id']}/events") as response:
            events = Events(response)
            events.until(lambda name, data: data["phase"] == "applying")
            catalog.wait_until_blocking(job=plan["id"])
            catalog.release()
            events.until(lambda name, data: name == "done")

    percents = [queued["percent"]] + [data["percent"] for _, data in events.seen]
    assert percents == sorted(percents), percents  # no jump back to 0 when the apply starts
    assert percents[0] == plan["percent"], percents
    assert all(percent < 100 for percent in percents[:-1]), percents
    assert events.seen[-1][1]["status"] == "completed" and percents[-1] == 100


def test_a_plan_comparing_with_the_catalog_has_its_bar_near_the_plan_end(
    http, sql, holding, held_file
):
    from product_importer.imports.progress import READING_SHARE

    # Comparing is a plan's last step: it reads the catalog, which the test holds meanwhile.
    with holding("LOCK TABLE products IN ACCESS EXCLUSIVE MODE") as catalog:
        job = upload_csv(http, held_file.data, data={"plan": "true"}).json()
        catalog.wait_until_blocking(job=job["id"])
        wait_for_heartbeats(sql, job["id"])  # what the step shows is written
        held = http.get(f"/api/imports/{job['id']}").json()
    plan = wait_for_job(http, job["id"])

    assert held["message"].endswith("(comparing)"), held
    assert plan["status"] == "planned", plan
    # The bar's part after the reading, up to where the plan stops, is a plan's dedup and
    # comparison: none of it is kept for writes a plan never makes, to jump over at its end.
    merge_part = plan["percent"] - READING_SHARE
    assert plan["percent"] - held["percent"] < merge_part / 2, (held["percent"], plan)


def test_an_apply_that_reads_the_file_again_moves_the_bar_while_it_reads(
    http, sql, holding, holding_rejections, held_file
):
    plan = import_csv(http, held_file.data, data={"plan": "true"})
    sql(f"TRUNCATE import_planned_{plan['id']}")  # its kept rows lost: the apply reads the file
    # The apply stops half-way through its reading, then again inside its merge.
    with holding(TABLE_LOCK) as catalog, holding_rejections() as reading:
        queued = http.post(f"/api/imports/{plan['id']}/apply").json()
        reading.wait_until_blocking()
        wait_for_heartbeats(sql, plan["id"])  # what it has read is written
        with http.stream("GET", f"/api/imports/{plan['id']}/events") as response:
            events = Events(response)
            held = events.until(lambda name, data: data["phase"] == "reading")[1]
            reading.release()
            merging = events.until(lambda name, data: data["phase"] == "applying")[1]
            catalog.wait_until_blocking(job=plan["id"])
            catalog.release()
            events.until(lambda name, data: name == "done")

    percents = [queued["percent"]] + [data["percent"] for _, data in events.seen]
    assert percents == sorted(percents), percents
    assert 0 < held["rows_processed"] < held_file.rows
    assert plan["percent"] < held["percent"] < merging["percent"] < 100, percents
    assert events.seen[-1][1]["status"] == "completed_with_errors" and percents[-1] == 100


def test_progress_is_streamed_then_done_with_percent_never_going_down(
    http, catalog, holding, holding_rejections, held_file
):
    keys = seed_from(http, held_file, count=1)
    # The import stops half-way through its reading, then again inside its merge, so the
    # stream sees both phases whatever the machine's speed.
    with holding(ROW_LOCK.format(key=keys[0])) as merge, holding_rejections() as reading:
        job = upload(http, held_file.data, "sample.csv")
        reading.wait_until_blocking()
        with http.stream("GET", f"/api/imports/{job['id']}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = Events(response)
            held = events.until(lambda _, data: data["phase"] == "reading" and data["percent"] > 0)
            reading.release()  # the import reads on
            events.until(lambda name, data: data["phase"] == "applying")
            merge.wait_until_blocking()
            merge.release()  # the merge goes on
            events.until(lambda name, data: name == "done")
            assert events.rest() == []  # the server ended the stream after `done`

    names = [name for name, _ in events.seen]
    assert names[0] == "progress"
    assert names[-1] == "done" and names.count("done") == 1
    progress = [data for name, data in events.seen if name == "progress"]
    percents = [data["percent"] for data in progress]
    assert percents == sorted(percents), percents
    assert len(set(percents)) >= 2, percents
    assert all(data["status"] in ("queued", "running") for data in progress)
    assert all(percent < 100 for percent in percents)
    assert 0 < held[1]["rows_processed"] < held_file.rows

    done = events.seen[-1][1]
    assert done["status"] == "completed_with_errors"
    assert done["percent"] == 100 >= percents[-1]
    assert done["rows_processed"] == held_file.rows
    assert done["rows_invalid"] == held_file.rejected
    assert (done["created"], done["updated"]) == (len(held_file.expected) - 1, 1)
    products = products_by_key(catalog())
    assert products.pop("other-1")
    assert products == held_file.expected


def test_the_stream_of_a_finished_import_is_just_done(any_http):
    job = import_csv(any_http, "sku,name\nA-1,Apple\n")

    assert read_events(any_http, job["id"]) == [("done", job)]


# --- cancel and retry -----------------------------------------------------------------------


def test_a_cancel_while_reading_leaves_the_catalog_unchanged_and_retry_runs_it_again(
    http, catalog, sql, holding_rejections, held_file
):
    seed_from(http, held_file)
    before = catalog()
    with holding_rejections() as reading:  # the import stops half-way through the file
        job = upload(http, held_file.data, "sample.csv")
        reading.wait_until_blocking()
        assert http.get(f"/api/imports/{job['id']}").json()["phase"] == "reading"

        response = retry(http, job["id"])
        assert response.status_code == 409
        assert "still running" in response.json()["error"]["message"]

        response = cancel(http, job["id"])
        assert response.status_code == 202
        assert response.json()["id"] == job["id"]
        wait_for_heartbeats(sql, job["id"])  # the import has seen the cancel
    cancelled = wait_for_job(http, job["id"])

    assert cancelled["status"] == "cancelled"
    assert NOT_CHANGED in cancelled["error"] and "Retry" in cancelled["error"]
    assert (cancelled["error_code"], cancelled["retry_refusal"]) == (None, None)
    assert 0 < cancelled["percent"] < 100
    assert 0 < cancelled["rows_processed"] < held_file.rows  # it stopped reading
    assert cancelled["phase"] is None
    assert catalog() == before
    assert cancel(http, job["id"]).status_code == 409

    response = retry(http, job["id"])

    assert response.status_code == 202
    again = response.json()
    assert again["id"] != job["id"]
    assert response.headers["Location"].endswith(f"/api/imports/{again['id']}")
    assert (again["filename"], again["bytes_total"]) == ("sample.csv", len(held_file.data))
    done = wait_for_job(http, again["id"])
    assert done["status"] == "completed_with_errors"
    assert (done["rows_processed"], done["rows_invalid"]) == (held_file.rows, held_file.rejected)
    assert (done["created"], done["updated"]) == (len(held_file.expected) - 2, 2)
    assert len(errors_csv(http, again["id"])) == held_file.rejected + 1
    products = products_by_key(catalog())
    assert products.pop("other-1") == ("OTHER-1", "Not in the file", "", True)
    assert products == held_file.expected


def test_a_cancel_its_worker_ends_after_the_upload_was_removed_says_to_upload_again(
    http, live_server, catalog, sql, holding_rejections, held_file
):
    # The upload page's Cancel cancels the import, then removes its unfinished upload. A worker
    # that ends the cancel only after that removal finds no cancelled import to reword when
    # it happens: the worker's own end must say the file never arrived whole.
    tus = {"Tus-Resumable": "1.0.0"}
    data = held_file.data
    created = http.post("/api/uploads", headers={**tus, "Upload-Length": str(len(data))})
    url = live_server + created.headers["Location"]
    sent = len(data) * 4 // 5  # past the rejected rows in the middle, short of the last byte
    piece = {**tus, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    assert http.patch(url, content=data[:sent], headers=piece).status_code == 204
    with holding_rejections() as reading:  # the import stops half-way through what arrived
        job_id = http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]}).json()["id"]
        reading.wait_until_blocking()
        assert http.delete(url, headers=tus).status_code == 204  # the upload is removed...
        assert http.get(f"/api/imports/{job_id}").json()["status"] == "running"
        assert cancel(http, job_id).status_code == 202  # ...and the import not ended yet
        wait_for_heartbeats(sql, job_id)  # the import has seen the cancel
    cancelled = wait_for_job(http, job_id)

    assert cancelled["status"] == "cancelled", cancelled
    assert cancelled["error"].startswith("The import was cancelled with its upload, before")
    assert "Upload the file again" in cancelled["error"]
    assert "Retry it" not in cancelled["error"]
    assert "never arrived whole" in cancelled["retry_refusal"]
    retried = retry(http, job_id)
    assert retried.status_code == 409
    assert retried.json()["error"]["message"] == cancelled["retry_refusal"]
    assert catalog() == []


@pytest.mark.parametrize("cancelled", [True, False], ids=["cancelled first", "not cancelled"])
def test_an_upload_removed_under_its_import_fails_it_unless_a_cancel_came_first(
    app, http, live_worker, tmp_path, cancelled
):
    """The import page's Discard cancels the import, then removes its unfinished upload. An
    import following that upload may find it gone before a heartbeat brings the cancel: it
    ends cancelled, as asked, not failed (the file did not arrive whole: it never could)."""
    from product_importer.extensions import db
    from product_importer.imports.failures import Cancelled, FileRejected
    from product_importer.imports.growing import GrowingFile

    with paused(live_worker):  # the job waits in the queue: this test reads for it
        job_id = upload_csv(http, "sku,name\nA-1,One\n").json()["id"]
        if cancelled:
            assert cancel(http, job_id).status_code == 202
    arrived = tmp_path / "arrived.csv"
    arrived.write_bytes(b"sku,name\n")  # what came of a file of 100 bytes
    with app.app_context():
        following = GrowingFile(
            str(arrived),
            "an-upload-since-removed",
            100,
            job_id=job_id,
            engine=db.engine,
            stall_seconds=600,
            stopping=lambda: False,  # no heartbeat has brought the cancel yet
        )
        with following, pytest.raises(Cancelled if cancelled else FileRejected):
            following.read(100)


def test_a_cancel_while_applying_interrupts_the_merge(http, catalog, holding):
    generated = generate(20_000, seed=3)
    keys = seed_from(http, generated)
    before = catalog()
    with holding(ROW_LOCK.format(key=keys[0])):  # the merge's UPDATE waits on this row
        job = upload(http, generated.data)
        wait_for(http, job["id"], lambda j: j["phase"] == "applying", "applying")

        assert cancel(http, job["id"]).status_code == 202
        cancelled = wait_for_job(http, job["id"])  # no need to release the row

    assert cancelled["status"] == "cancelled"
    assert NOT_CHANGED in cancelled["error"]
    assert cancelled["rows_processed"] == 20_000
    assert catalog() == before


def test_a_cancel_while_the_import_waits_for_the_catalog_is_not_lost(http, catalog, holding):
    import_csv(http, "sku,name\nA-1,Apple\n")
    before = catalog()
    with holding(TABLE_LOCK):  # a product edit in progress: the merge must wait for it
        job = upload(http, "sku,name\nA-1,Apple 2\nB-2,Banana\n")
        wait_for(http, job["id"], lambda j: j["rows_processed"] == 2, "read to the end")

        assert cancel(http, job["id"]).status_code == 202
        cancelled = wait_for_job(http, job["id"])  # while the catalog is still busy

    assert cancelled["status"] == "cancelled"
    assert catalog() == before


def test_a_queued_import_is_cancelled_at_once_and_never_runs(http, catalog, holding, live_worker):
    with holding(TABLE_LOCK):  # keeps the first import running
        first = upload(http, "sku,name\nA-1,Apple\n")
        wait_for(http, first["id"], lambda j: j["rows_processed"] == 1, "read")
        # The worker's other slot would start reading the second import at once: paused, it
        # leaves the second queued until the cancel has come, however fast it is.
        with paused(live_worker):
            second = upload(http, "sku,name\nB-2,Banana\n")
            response = cancel(http, second["id"])

        assert response.status_code == 202
        assert response.json()["status"] == "cancelled"
        assert NOT_CHANGED in response.json()["error"]
        assert http.get(f"/api/imports/{first['id']}").json()["status"] == "running"

    assert wait_for_job(http, first["id"])["status"] == "completed"
    third = import_csv(http, "sku,name\nC-3,Cherry\n")  # the queue went on past the cancelled
    assert third["status"] == "completed"
    assert http.get(f"/api/imports/{second['id']}").json()["status"] == "cancelled"
    assert [row[1] for row in catalog()] == ["A-1", "C-3"]
    assert cancel(http, first["id"]).status_code == 409
    assert cancel(http, second["id"]).status_code == 409


def test_a_retry_of_a_completed_import_runs_the_same_file_again(any_http):
    job = import_csv(any_http, "sku,name\nA-1,Apple\nB-2,Banana\n", filename="fruit.csv")

    response = retry(any_http, job["id"])

    assert response.status_code == 202
    again = wait_for_job(any_http, response.json()["id"])
    assert again["id"] != job["id"]
    assert again["filename"] == "fruit.csv"
    assert again["status"] == "completed"
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert [item["id"] for item in any_http.get("/api/imports").json()["items"]] == [
        again["id"],
        job["id"],
    ]


def test_an_upload_is_kept_for_retry_until_its_jobs_end_and_its_retention_passes(
    http, sql, holding, app, monkeypatch
):
    from product_importer.imports import maintenance

    job = import_csv(http, "sku,name\nA-1,Apple\n")
    path = sql("SELECT file_path FROM import_jobs WHERE id = :id", id=job["id"])[0][0]
    monkeypatch.setitem(app.config, "UPLOAD_RETENTION_HOURS", 0)
    with holding(TABLE_LOCK):  # keeps the retry running
        again = retry(http, job["id"]).json()
        wait_for(http, again["id"], lambda j: j["rows_processed"] == 1, "read")
        with app.app_context():
            assert maintenance.remove_expired_uploads() == 0  # a job still needs the file
        assert os.path.exists(path)
    assert wait_for_job(http, again["id"])["status"] == "completed"

    with app.app_context():
        assert maintenance.remove_expired_uploads() == 1

    assert not os.path.exists(path)
    response = retry(http, again["id"])
    assert response.status_code == 409
    assert "no longer kept" in response.json()["error"]["message"]
    assert "Upload it again" in response.json()["error"]["message"]


# --- the queue ------------------------------------------------------------------------------


def test_imports_apply_one_at_a_time_in_upload_order(http, catalog, holding):
    files = [f"sku,name\nSAME-1,From file {n}\nONLY-{n},Only in {n}\n" for n in range(3)]
    with holding(TABLE_LOCK):  # the first import waits to apply; the others wait behind it
        jobs = [upload(http, data) for data in files]
        wait_for(http, jobs[0]["id"], lambda j: j["phase"] == "applying", "applying")
        # the second is read meanwhile (a worker reads two at once), and waits for its turn
        wait_for(http, jobs[1]["id"], lambda j: "waiting" in j["message"], "read")
        statuses = [http.get(f"/api/imports/{job['id']}").json()["status"] for job in jobs]
        assert statuses == ["running", "running", "queued"]

    done = [wait_for_job(http, job["id"]) for job in jobs]

    assert [job["status"] for job in done] == ["completed"] * 3
    assert [(job["created"], job["updated"]) for job in done] == [(2, 0), (1, 1), (1, 1)]
    for earlier, later in zip(done, done[1:], strict=False):
        assert earlier["finished_at"] <= later["finished_at"]
    assert sorted(row[1:3] for row in catalog()) == [
        ("ONLY-0", "Only in 0"),
        ("ONLY-1", "Only in 1"),
        ("ONLY-2", "Only in 2"),
        ("SAME-1", "From file 2"),
    ]


def test_an_import_stamps_what_it_writes_after_the_edits_it_overwrites(
    http, holding_rejections, held_file
):
    """An edit committed while an import still reads its file is overwritten by the import,
    which then says it changed the product after the edit: the newest change is listed first."""
    key = seed_from(http, held_file, count=1)[0]
    product = http.get("/api/products", params={"sku": key}).json()["items"][0]
    with holding_rejections() as reading:  # the import stops half-way through the file
        job = upload(http, held_file.data, "sample.csv")
        reading.wait_until_blocking()
        edit = http.patch(f"/api/products/{product['id']}", json={"name": "Edited meanwhile"})
        assert edit.status_code == 200, edit.text

    done = wait_for_job(http, job["id"])

    written = http.get(f"/api/products/{product['id']}").json()
    assert written["name"] == held_file.expected[key][1]  # the import's row, the last write
    assert datetime.fromisoformat(written["updated_at"]) > datetime.fromisoformat(
        edit.json()["updated_at"]
    )
    assert done["updated"] == 1
    newest = http.get("/api/products", params={"per_page": 1}).json()["items"][0]
    assert newest["updated_at"] == written["updated_at"]


# --- failures -------------------------------------------------------------------------------


@pytest.fixture
def products_check(sql):
    """Add a CHECK constraint on products for the test (refusing the name BOOM), then drop it."""
    sql("ALTER TABLE products ADD CONSTRAINT test_no_boom CHECK (name <> 'BOOM') NOT VALID")
    yield
    sql("ALTER TABLE products DROP CONSTRAINT IF EXISTS test_no_boom")


def test_a_failure_during_the_merge_leaves_the_catalog_unchanged(
    http, catalog, sql, products_check
):
    import_csv(http, "sku,name,description\nA-1,Apple,Red\nB-2,Banana,Yellow\n")
    before = catalog()
    data = "sku,name,description\na-1,Apple 2,Green\nB-2,Banana,Yellow\nC-3,BOOM,x\nD-4,Date,y\n"

    job = import_csv(http, data)

    assert job["status"] == "failed"
    assert NOT_CHANGED in job["error"]
    assert "test_no_boom" in job["error"]  # what went wrong
    assert "Retry the import" in job["error"]  # what to do
    # not the file's fault: a retry may succeed, and the pages offer it
    assert (job["error_code"], job["retry_refusal"]) == (None, None)
    assert f'data-retry="{job["id"]}"' in http.get("/imports").text
    assert job["percent"] < 100
    assert (job["created"], job["updated"], job["unchanged"]) == (0, 0, 0)
    assert catalog() == before

    sql("ALTER TABLE products DROP CONSTRAINT test_no_boom")
    again = wait_for_job(http, retry(http, job["id"]).json()["id"])
    assert again["status"] == "completed"
    assert (again["created"], again["updated"], again["unchanged"]) == (2, 1, 1)
    assert [row[1:3] for row in catalog()] == [
        ("a-1", "Apple 2"),
        ("B-2", "Banana"),
        ("C-3", "BOOM"),
        ("D-4", "Date"),
    ]


def test_a_gzip_file_expanding_past_ten_times_the_upload_limit_fails_saying_so(
    http, client, app, catalog, live_worker, monkeypatch
):
    from product_importer.imports import queue

    data = gzip.compress(b"sku,name\n" + b"A-1,Name\n" * 200_000)  # 1.8 MB from a few KB
    monkeypatch.setitem(app.config, "MAX_UPLOAD_BYTES", 100_000)  # this process's limit
    with paused(live_worker):  # the import runs here, with the limit above
        response = client.post("/api/imports", data={"file": (io.BytesIO(data), "big.csv.gz")})
        assert response.status_code == 202
        with app.app_context():
            assert queue.drain_queue() == 1

    job = http.get(response.headers["Location"]).json()
    assert job["status"] == "failed"
    assert "expands to more than 1,000,000 bytes" in job["error"]
    assert "Split it into smaller files" in job["error"]
    assert catalog() == []
    assert_retry_refused(http, job, "decompressed_too_large", "Split it into smaller files")


def test_half_received_uploads_left_for_a_day_are_removed(app, test_env):
    from product_importer.imports import maintenance

    folder = Path(test_env["UPLOAD_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    abandoned = folder / ".incoming-abandoned.part"
    receiving = folder / ".incoming-receiving.part"
    for part in (abandoned, receiving):
        part.write_bytes(b"sku,name\n")
    day_ago = time.time() - 25 * 3600
    os.utime(abandoned, (day_ago, day_ago))

    with app.app_context():
        assert maintenance.remove_abandoned_parts() == 1

    assert not abandoned.exists()
    assert receiving.exists()  # an upload still arriving
    receiving.unlink()
