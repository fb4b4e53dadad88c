"""What the import API says to people when it refuses or fails: words that fit the case."""

import pytest

from tests.helpers import import_csv, wait_for_job

pytestmark = pytest.mark.usefixtures("live_worker")


def test_a_file_whose_only_row_is_rejected_says_so_in_the_singular(http):
    """Not "all 1 rows were rejected ... (1 rows)", as a quick try with one row read."""
    job = import_csv(http, "sku,name\nONE-1\n")

    assert job["status"] == "failed", job
    assert "1 rows" not in job["error"]
    assert job["error"] == (
        "No valid rows: the file's only row was rejected: wrong number of fields. Download the "
        "rejected row, fix it and upload again."
    )


def test_a_reason_of_one_row_among_several_is_counted_in_the_singular(http):
    """Two rows rejected for two reasons: the most common one counts "1 row"."""
    job = import_csv(http, "sku,name\n,Nameless\nTWO-2\n")

    assert job["status"] == "failed", job
    assert job["error"].startswith("No valid rows: all 2 rows were rejected.")
    assert "(1 row)." in job["error"]
    assert "(1 rows)" not in job["error"]


def test_undoing_an_undo_says_an_undo_cannot_be_undone(http):
    """The 409 names the reason (not "is completed: only a completed import can be undone")."""
    done = import_csv(http, "sku,name\nUNDO-1,Undone\n")
    undo = http.post(f"/api/imports/{done['id']}/undo")
    assert undo.status_code == 202, undo.text
    undone = wait_for_job(http, undo.json()["id"])
    assert undone["status"] == "completed", undone

    again = http.post(f"/api/imports/{undone['id']}/undo")

    assert again.status_code == 409
    message = again.json()["error"]["message"]
    assert "only a completed import" not in message
    assert message == (
        f"Job {undone['id']} is an undo (of import {done['id']}): an undo cannot be undone. "
        f"To bring back what it removed, import the file of import {done['id']} again."
    )
