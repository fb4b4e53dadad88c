"""A worker killed in the middle of an import: a live worker notices and runs the job again."""

import signal
from datetime import timedelta

import pytest

from tests.conftest import paused
from tests.helpers import upload_csv, wait_for_job, wait_until

from .conftest import TABLE_LOCK, products_by_key


def claimed_by(sql, job_id: int) -> int:
    """The process id of the worker that claimed the job."""
    worker = sql("SELECT worker FROM import_jobs WHERE id = :id", id=job_id)[0][0]
    return int(worker.rsplit(":", 1)[1])


def add_quiet_job(db_session, *, filename: str, **columns):
    """A running job whose worker stopped writing its heartbeat a minute ago."""
    from product_importer.imports.models import ImportJob
    from product_importer.timeutil import utcnow

    job = ImportJob(
        filename=filename,
        file_path=f"/nowhere/{filename}",
        bytes_total=100,
        status="running",
        phase="reading",
        started_at=utcnow() - timedelta(minutes=3),
        heartbeat_at=utcnow() - timedelta(minutes=1),
        warnings=[],
        **columns,
    )
    db_session.add(job)
    db_session.commit()
    return job


@pytest.mark.parametrize("moment", ["reading", "merging"])
def test_a_job_whose_worker_was_killed_is_recovered_and_imported_whole(
    http, catalog, sql, holding, holding_rejections, start_worker, live_worker, held_file, moment
):
    # The import waits at a known point while the worker is killed, however fast the machine
    # is: half-way through its reading (writing rejected rows), or, having read the whole
    # file, for this lock on the catalog, so the kill lands inside its merge transaction.
    hold = holding_rejections() if moment == "reading" else holding(TABLE_LOCK)
    doomed = start_worker()
    session_worker = live_worker.popen.pid
    with paused(live_worker), hold as held:  # paused, so that the doomed worker takes the job
        try:
            response = upload_csv(http, held_file.data, "sample.csv")
            job_id = response.json()["id"]
            # merging: the import's own session waits (not one an earlier test left running)
            held.wait_until_blocking(job=job_id if moment == "merging" else None)
            assert claimed_by(sql, job_id) == doomed.popen.pid
            job = http.get(f"/api/imports/{job_id}").json()
            assert (job["status"], job["phase"]) == (
                "running",
                moment.replace("merging", "applying"),
            )
        finally:
            doomed.kill(signal.SIGKILL)

    job = wait_for_job(http, job_id, timeout=90)

    assert job["status"] == "completed_with_errors", job
    assert claimed_by(sql, job_id) == session_worker
    assert (job["rows_processed"], job["rows_invalid"]) == (held_file.rows, held_file.rejected)
    assert (job["created"], job["updated"], job["unchanged"]) == (len(held_file.expected), 0, 0)
    assert job["percent"] == 100
    products = catalog()
    assert len(products) == len(held_file.expected)
    assert products_by_key(products) == held_file.expected


def test_a_job_whose_worker_was_lost_three_times_fails_saying_what_to_do(
    http, db_session, catalog, live_worker
):
    # What the third worker to die on this job leaves behind: a running job gone quiet.
    lost = add_quiet_job(db_session, filename="cursed.csv", percent=40.0, attempts=3)

    job = wait_for_job(http, lost.id, timeout=30)

    assert job["status"] == "failed"
    assert "stopped responding for 5 seconds, 3 times" in job["error"]
    assert "The catalog was not changed" in job["error"]
    assert "Check that workers are running" in job["error"]
    assert job["error_code"] is None  # not the file's fault: a retry of a kept file may work
    assert job["percent"] == 40  # kept where it stopped
    assert catalog() == []


def test_a_cancelled_job_whose_worker_was_lost_ends_cancelled_not_run_again(
    http, db_session, catalog, live_worker
):
    # A cancel was asked for, then the worker died before it noticed.
    lost = add_quiet_job(db_session, filename="unwanted.csv", attempts=1, cancel_requested=True)

    job = wait_for_job(http, lost.id, timeout=30)

    assert job["status"] == "cancelled"
    assert "catalog was not changed" in job["error"] and "Retry" in job["error"]
    assert catalog() == []


def test_recovery_ends_the_lost_imports_helpers_in_its_own_database_only(app):
    # Job ids start at 1 in every database: recovery of import 7 here ended the helpers of
    # import 7 of another database on the same server (a staging catalog, another test
    # process), whose import then ran again.
    import psycopg

    from product_importer import database
    from product_importer.extensions import db
    from product_importer.imports.runner import application_name
    from tests.conftest import PG_ADMIN_URL

    helper = database.helper_name(application_name(7))
    with app.app_context():
        here_url = db.engine.url.render_as_string(hide_password=False)
        here_url = here_url.replace("postgresql+psycopg://", "postgresql://")
        with (
            psycopg.connect(PG_ADMIN_URL, application_name=helper) as elsewhere,
            psycopg.connect(here_url, application_name=helper) as here,
            db.engine.connect() as conn,
        ):
            database.POSTGRES.end_session(conn, here.info.backend_pid, application_name(7))

            assert elsewhere.execute("SELECT 1").fetchone() == (1,)  # untouched
            with pytest.raises(psycopg.OperationalError):
                here.execute("SELECT 1")  # the lost import's helper, ended


def test_a_drain_leaves_the_build_a_lost_import_still_uses_for_later(app, live_worker):
    # A lost import's helpers may still hold its build until recovery ends them: the drain's
    # clean-up waited for them while it held the turn every import needs.
    import psycopg

    from product_importer.extensions import db
    from product_importer.imports import engine

    with app.app_context():
        url = db.engine.url.render_as_string(hide_password=False)
        url = url.replace("postgresql+psycopg://", "postgresql://")
        # paused: the worker's upkeep would drop the build meanwhile
        with paused(live_worker), psycopg.connect(url) as helper, db.engine.connect() as conn:
            helper.execute("CREATE TABLE products_build (id bigint)")
            helper.commit()
            try:
                helper.execute("SELECT count(*) FROM products_build")  # holds it, as a helper
                engine.drop_leftovers(conn)  # waited here for as long as the helper ran

                assert conn.exec_driver_sql("SELECT to_regclass('products_build')").scalar()
                helper.rollback()
                engine.drop_leftovers(conn)
                assert conn.exec_driver_sql("SELECT to_regclass('products_build')").scalar() is None
            finally:
                helper.rollback()
                helper.execute("DROP TABLE IF EXISTS products_build")
                helper.commit()


def test_a_build_left_by_a_lost_import_is_dropped_once_no_import_runs(app, live_worker, sql):
    # The drain recovery starts tried once: if the turn was taken then (another import's
    # search indexes, an undo) or the lost import's helpers still held its build, the build
    # (a second catalog on disk) stayed until the next import, which might never come.
    sql("CREATE TABLE products_build (id bigint)")  # as a lost import leaves it

    wait_until(lambda: sql("SELECT to_regclass('products_build')")[0][0] is None, "dropped")
