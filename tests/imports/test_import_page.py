"""The page of one import (/imports/<id>) as the server renders it: what it offers to whom."""

from datetime import timedelta

import pytest

from product_importer.imports.models import ImportJob
from product_importer.timeutil import utcnow


def completed_import(db_session, *, days_ago: float, created: int, updated: int) -> int:
    """A completed import that finished `days_ago` days ago; return its id."""
    finished = utcnow() - timedelta(days=days_ago)
    job = ImportJob(
        filename="done.csv",
        file_path="",
        status="completed",
        created=created,
        updated=updated,
        warnings=[],
        started_at=finished - timedelta(seconds=3),
        finished_at=finished,
    )
    db_session.add(job)
    db_session.commit()
    return job.id


@pytest.mark.parametrize(
    ("created", "updated", "question"),
    [
        (1204, 3551, "Delete 1,204 products it created and restore 3,551 it changed?"),
        (1, 0, "Delete 1 product it created?"),
        (0, 2, "Restore 2 products it changed?"),
    ],
)
def test_undo_asks_what_it_will_do(client, db_session, created, updated, question):
    job_id = completed_import(db_session, days_ago=1, created=created, updated=updated)
    page = client.get(f"/imports/{job_id}").get_data(as_text=True)
    assert "Undo this import" in page
    assert question in page


def test_past_the_undo_window_the_record_is_gone_and_undo_is_not_offered(client, db_session):
    job_id = completed_import(db_session, days_ago=8, created=3, updated=0)  # 7 days by default
    page = " ".join(client.get(f"/imports/{job_id}").get_data(as_text=True).split())
    assert "Undo this import" not in page
    assert "A change record is kept for 7 days after its import" in page


def test_a_viewer_is_offered_no_undo(client_as, db_session):
    job_id = completed_import(db_session, days_ago=0, created=3, updated=0)
    page = client_as("viewer").get(f"/imports/{job_id}")
    assert page.status_code == 200
    assert "Undo this import" not in page.get_data(as_text=True)


def test_the_history_says_what_an_undo_did_not_an_imports_counts(client, db_session):
    undone = completed_import(db_session, days_ago=0, created=5, updated=3)
    finished = utcnow()
    undo = ImportJob(
        filename="done.csv",
        file_path="",
        status="completed",
        kind="undo",
        undo_of=undone,
        deleted=5,
        updated=2,
        conflicts=1,
        warnings=[],
        started_at=finished - timedelta(seconds=1),
        finished_at=finished,
    )
    db_session.add(undo)
    db_session.commit()

    page = client.get("/imports").get_data(as_text=True)

    row = page.split(f'data-job-id="{undo.id}"')[1].split("</tr>")[0]
    assert "5 deleted, 2 restored, 1 changed since left as they are." in row
    for label in ("Created", "Updated", "Unchanged"):
        cell = row.split(f'data-label="{label}" class="num">')[1].split("</td>")[0]
        assert cell.strip() == "–", label


def test_an_import_being_undone_is_not_offered_its_undo_again(client, db_session):
    # An undo waits its turn behind other imports: until it ends, the import's page (open in
    # another tab, or by a colleague) says so, rather than offer an Undo answered 409.
    undone = completed_import(db_session, days_ago=0, created=5, updated=3)
    undo = ImportJob(
        filename="done.csv", file_path="", status="queued", kind="undo", undo_of=undone, warnings=[]
    )
    db_session.add(undo)
    db_session.commit()

    page = " ".join(client.get(f"/imports/{undone}").get_data(as_text=True).split())

    assert "Undo this import</button>" not in page
    assert "This import is being undone" in page
    assert f'By <a href="/imports/{undo.id}">import #{undo.id}</a>, which has not ended yet' in page


def test_a_warning_shows_the_earlier_imports_moment_locally_and_the_files_words_as_written(
    client, db_session
):
    job_id = completed_import(db_session, days_ago=0, created=1, updated=0)
    job = db_session.get(ImportJob, job_id)
    job.warnings = [
        "This file is identical to import #3 of 2026-12-04 19:24 UTC.",
        "Unknown columns ignored: 'export 2026-12-04 19:24 UTC'.",
    ]
    db_session.commit()

    page = client.get(f"/imports/{job_id}").get_data(as_text=True)

    # the page's script shows the <time> in the reader's zone; the file's own words stay
    assert 'import #3 of <time class="nowrap" datetime="2026-12-04T19:24Z" data-local>' in page
    assert "ignored: &#39;export 2026-12-04 19:24 UTC&#39;." in page


def test_a_job_handed_back_to_the_queue_after_a_cancel_request_offers_cancel_again(
    client, db_session
):
    """A cancel asked while it ran, then its upload stalled and the job went back to the queue
    with the request still set: it is no longer being stopped, a Cancel ends it at once."""
    job = ImportJob(
        filename="stalled.csv",
        file_path="",
        status="queued",
        message="Waiting for the upload to go on from 1.0 MB",
        cancel_requested=True,
        warnings=[],
    )
    db_session.add(job)
    db_session.commit()

    page = client.get(f"/imports/{job.id}").get_data(as_text=True)

    assert "Being cancelled" not in page
    assert 'data-action="cancel"' in page
    assert client.post(f"/api/imports/{job.id}/cancel").status_code == 202
    assert client.get(f"/api/imports/{job.id}").get_json()["status"] == "cancelled"


def test_a_plan_older_than_the_undo_window_still_shows_what_applying_would_change(
    client, db_session
):
    """A plan kept past IMPORT_UNDO_DAYS (UPLOAD_RETENTION_HOURS set longer) keeps its change
    record until applied or discarded: its page lists it rather than call it removed."""
    finished = utcnow() - timedelta(days=8)  # the undo window is 7 days by default
    job = ImportJob(
        filename="plan.csv",
        file_path="",
        status="planned",
        plan=True,
        created=2,
        warnings=[],
        started_at=finished - timedelta(seconds=3),
        finished_at=finished,
    )
    db_session.add(job)
    db_session.commit()

    page = client.get(f"/imports/{job.id}").get_data(as_text=True)

    assert 'data-action="apply"' in page
    assert "this one has been removed" not in page
    assert 'id="changes-slot"' in page


def plan_job(db_session, status: str) -> int:
    """A plan of 25 new products and 3 changed ones, `planned` or `discarded`; its id."""
    finished = utcnow()
    job = ImportJob(
        filename="plan.csv",
        file_path="",
        status=status,
        plan=True,
        created=25,
        updated=3,
        unchanged=1,
        rows_processed=29,
        warnings=[],
        started_at=finished - timedelta(seconds=1),
        finished_at=finished,
    )
    db_session.add(job)
    db_session.commit()
    return job.id


def count_cells(row: str) -> list[str]:
    """The Created, Updated and Unchanged cells of a history row, as shown."""
    return [
        row.split(f'data-label="{label}" class="num">')[1].split("</td>")[0].strip()
        for label in ("Created", "Updated", "Unchanged")
    ]


def test_the_history_counts_no_product_as_created_by_a_plan(client, db_session):
    """A plan (or a discarded one) changed nothing: not "Created 25" in its row."""
    planned, discarded = plan_job(db_session, "planned"), plan_job(db_session, "discarded")

    page = client.get("/imports").get_data(as_text=True)

    planned_row = page.split(f'data-job-id="{planned}"')[1].split("</tr>")[0]
    assert count_cells(planned_row) == ["–", "–", "–"]
    assert "Applying it would create 25, update 3 and leave 1 unchanged." in planned_row
    discarded_row = page.split(f'data-job-id="{discarded}"')[1].split("</tr>")[0]
    assert count_cells(discarded_row) == ["–", "–", "–"]
    assert "The catalog was not changed." in discarded_row


def test_a_discarded_plans_page_counts_no_product_as_created(client, db_session):
    """Its counts were what applying would have done: the page shows none as done."""
    job_id = plan_job(db_session, "discarded")

    page = client.get(f"/imports/{job_id}").get_data(as_text=True)

    for name in ("created", "updated", "unchanged"):
        cell = page.split(f'id="stat-{name}">')[1].split("</dd>")[0]
        assert ">–</span>" in cell and "25" not in cell, name


def test_a_plan_discarded_a_day_after_its_reading_is_not_said_to_have_run_a_day(client, db_session):
    """Discarded (by hand or after UPLOAD_RETENTION_HOURS), its end is the discard: not "24 h"."""
    job_id = plan_job(db_session, "discarded")
    job = db_session.get(ImportJob, job_id)
    job.started_at = job.finished_at - timedelta(hours=24, seconds=1)
    db_session.commit()

    history = client.get("/imports").get_data(as_text=True)
    row = history.split(f'data-job-id="{job_id}"')[1].split("</tr>")[0]
    cell = row.split('data-label="Duration" class="num">')[1].split("</td>")[0]
    assert cell.strip() == "–"
    page = client.get(f"/imports/{job_id}").get_data(as_text=True)
    assert page.split('id="stat-duration">')[1].split("</dd>")[0] == "–"
