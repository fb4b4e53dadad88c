"""Imports on two worker processes: they read side by side and apply one at a time in upload
order; a worker stopped with SIGTERM hands its import back to the other at once."""

import os
import signal

import pytest

from tests.helpers import wait_for_job

from .conftest import TABLE_LOCK, csv_bytes, products_by_key, wait_for
from .test_import_jobs import upload

pytestmark = pytest.mark.slow  # two worker processes of their own for each test
WAITING_FOR_TURN = "waiting for the imports uploaded before it"


def job_row(sql, job_id: int):
    return sql("SELECT * FROM import_jobs WHERE id = :id", id=job_id)[0]


def pid_of(row) -> int:
    """The process id of the worker running the job (`host:pid`)."""
    return int(row.worker.rsplit(":", 1)[1])


def test_two_workers_read_side_by_side_and_apply_in_upload_order(
    two_workers, http, sql, catalog, held_file, holding_rejections
):
    shared_key = next(iter(held_file.expected))
    shared_sku = held_file.expected[shared_key][0]
    later = csv_bytes([("From the later file", shared_sku, ""), ("Only later", "LATER-1", "")])

    with holding_rejections() as held:
        first = upload(http, held_file.data)
        held.wait_until_blocking()  # the first import is half-way through its reading
        second = upload(http, later)
        # the second import is read and staged, on the other worker, while the first still
        # reads; then it waits for its turn to apply
        wait_for(http, second["id"], lambda j: WAITING_FOR_TURN in j["message"], "read")
        reading = http.get(f"/api/imports/{first['id']}").json()
        assert (reading["status"], reading["phase"]) == ("running", "reading")
        assert 0 < reading["rows_processed"] < held_file.rows
        assert pid_of(job_row(sql, first["id"])) != pid_of(job_row(sql, second["id"]))
        assert {pid_of(job_row(sql, j["id"])) for j in (first, second)} == {
            w.popen.pid for w in two_workers
        }

    done = [wait_for_job(http, job["id"]) for job in (first, second)]

    assert [job["status"] for job in done] == ["completed_with_errors", "completed"]
    assert done[0]["finished_at"] <= done[1]["finished_at"]
    assert (done[1]["created"], done[1]["updated"]) == (1, 1)  # applied after the first
    products = products_by_key(catalog())
    assert products[shared_key][1] == "From the later file"
    assert len(products) == len(held_file.expected) + 1


def test_a_worker_stopped_with_sigterm_hands_its_import_to_the_other(
    two_workers, http, sql, catalog, held_file, holding_rejections
):
    with holding_rejections() as held:
        job = upload(http, held_file.data)
        held.wait_until_blocking()  # half-way through its reading, on one of the workers
        first_pid = pid_of(job_row(sql, job["id"]))
        stopped = next(w for w in two_workers if w.popen.pid == first_pid)
        other = next(w for w in two_workers if w is not stopped)

        os.kill(first_pid, signal.SIGTERM)  # as a deploy stops a worker

        # It lets go while the import still cannot finish (the hold is still here), and
        # exits; the other worker, alive, takes the job and runs it again from the start.
        stopped.popen.wait(60)
        assert "handed back to the queue" in stopped.output()

    done = wait_for_job(http, job["id"])
    assert done["status"] == "completed_with_errors"
    row = job_row(sql, job["id"])
    assert pid_of(row) == other.popen.pid
    assert row.attempts == 1  # handed back, not lost: the heartbeat timeout would count one
    assert products_by_key(catalog()) == held_file.expected


def test_a_worker_stopped_while_an_import_applies_hands_it_over_unapplied(
    two_workers, http, sql, catalog, holding
):
    data = csv_bytes([("Applied once", "STOP-1", ""), ("Applied too", "STOP-2", "")])
    with holding(TABLE_LOCK) as held:
        job = upload(http, data)
        held.wait_until_blocking()  # in its merge, waiting for the catalog
        assert http.get(f"/api/imports/{job['id']}").json()["phase"] == "applying"
        first_pid = pid_of(job_row(sql, job["id"]))
        stopped = next(w for w in two_workers if w.popen.pid == first_pid)

        os.kill(first_pid, signal.SIGTERM)

        stopped.popen.wait(60)  # it rolled back and left while the catalog was still held
        assert "handed back to the queue" in stopped.output()
        assert catalog() == []

    done = wait_for_job(http, job["id"])
    assert (done["status"], done["created"]) == ("completed", 2)
    assert pid_of(job_row(sql, job["id"])) != first_pid
    assert sorted(row[1:3] for row in catalog()) == [
        ("STOP-1", "Applied once"),
        ("STOP-2", "Applied too"),
    ]
