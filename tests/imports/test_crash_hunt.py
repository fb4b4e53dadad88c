"""A worker killed (SIGKILL, as an OOM kill does) or stopped (SIGTERM, as a deploy does) at each
later step of a bulk import, of a plan's apply, of an undo, and while the search indexes are
built after the commit: with a worker running again, the catalog is one of its two states, the
job ends saying so, and the next import and an undo work.

The import is held at a step by an advisory lock the test holds, which the product named PAUSE
takes in that step's statement (a CHECK constraint while the build is filled, an expression
index while it is indexed and analyzed); at the switch, by a read of the catalog.
"""

import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.conftest import BIN, Process, database_refusing_connections, paused
from tests.helpers import import_csv, upload_csv, wait_for_job, wait_until

from .conftest import ROW_LOCK, csv_bytes, generate, products_by_key, wait_for
from .test_bulk_imports import READ_HELD, SEARCH_INDEXES, wait_until_search_ready

pytestmark = pytest.mark.slow  # a worker of its own for each test, killed
ROWS = 20_000
# The PAUSE product's statement in each step takes this lock, shared, until it ends.
PAUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION test_pause(name text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF name = 'PAUSE' THEN
        PERFORM pg_advisory_xact_lock_shared(CASE
            WHEN current_query() ILIKE 'ANALYZE%' THEN 7003
            WHEN current_query() ILIKE '%CREATE%INDEX%' THEN 7002
            ELSE 7001 END);
    END IF;
    RETURN true;
END $$
"""
STEP_LOCKS = {"copying": 7001, "indexing": 7002, "analyzing": 7003}
UNFINISHED = "SELECT id FROM import_jobs WHERE status IN ('queued', 'running')"
# what an import applying builds beside the catalog, and their indexes
SCRATCH = (
    "SELECT relname FROM pg_class WHERE relname IN ('import_staging', 'import_plan') "
    "OR relname LIKE '%\\_build' ORDER BY 1"
)
BLOCKED_BY = "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
BLOCKED = "SELECT pid FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
ALIVE = "SELECT pid FROM pg_stat_activity WHERE pid = ANY(:pids)"
END_BLOCKED = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
)
VALID_INDEXES = (
    "SELECT i.relname FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid "
    "WHERE x.indrelid = 'products'::regclass AND x.indisvalid"
)


@pytest.fixture
def pausing(sql):
    """The PAUSE product's CHECK constraint and expression index, for the test."""
    sql(PAUSE_FUNCTION)
    sql("ALTER TABLE products ADD CONSTRAINT test_pause CHECK (test_pause(name))")
    sql("CREATE INDEX test_pause_ix ON products ((test_pause(name)))")
    yield
    # an import a failed test left would wait for these drops, and they for it
    sql("UPDATE import_jobs SET cancel_requested = true WHERE status IN ('queued', 'running')")
    wait_until(lambda: not sql(UNFINISHED), "no import running")
    sql("DROP INDEX IF EXISTS test_pause_ix")
    sql("ALTER TABLE products DROP CONSTRAINT IF EXISTS test_pause")


def hold_step(holding, step: str):
    """Hold the import's PAUSE product at `step` until the context exits (or `release`)."""
    return holding(f"SELECT pg_advisory_xact_lock({STEP_LOCKS[step]})")


def seed(http) -> dict:
    """A catalog of ROWS products; return it by key."""
    rows = [(f"Name {n}", f"SKU-{n}", f"Text {n}") for n in range(ROWS)]
    job = import_csv(http, csv_bytes(rows), timeout=120)
    assert job["status"] == "completed", job


def changed_file() -> bytes:
    """Half the products renamed and one new, named PAUSE: a bulk import with a record."""
    rows = [(f"Renamed {n}", f"SKU-{n}", f"Text {n}") for n in range(0, ROWS, 2)]
    return csv_bytes([*rows, ("PAUSE", "PAUSE-1", "held")])


def waiting_besides(sql, pid: int, lost: list[int]) -> set[int]:
    """The sessions that wait for session `pid`'s locks, other than the `lost` ones."""
    return {found for (found,) in sql(BLOCKED, pid=pid)} - set(lost)


def worker_of(sql, job_id: int) -> int:
    """The process id of the worker that claimed the job last."""
    worker = sql("SELECT worker FROM import_jobs WHERE id = :id", id=job_id)[0][0]
    return int(worker.rsplit(":", 1)[1])


def attempts(sql, job_id: int) -> int:
    return sql("SELECT attempts FROM import_jobs WHERE id = :id", id=job_id)[0][0]


def no_scratch_left(sql) -> None:
    """Wait until the build, its indexes and the staging tables are gone (an import drops its
    own just after its end is committed)."""
    wait_until(lambda: not sql(SCRATCH), f"scratch tables dropped: {sql(SCRATCH)}")


def assert_applied_whole(
    http, sql, catalog, job_id: int, before: dict, *, then_undo: bool = False
) -> None:
    """The import ended completed and whole: catalog, totals, record; `then_undo`: its undo
    gives `before` back exactly, and a second import of the file applies (one test checks
    that much: each check is an undo and an import more, ~10 s on a busy 2-core machine)."""
    job = wait_for_job(http, job_id, timeout=120)
    assert (job["status"], job["created"], job["updated"]) == ("completed", 1, ROWS // 2), job
    products = products_by_key(catalog())
    assert len(products) == len(before) + 1
    assert products["sku-0"][1] == "Renamed 0"
    assert http.get("/api/products").json()["total"] == len(before) + 1
    assert http.get("/api/products", params={"name": "renamed"}).json()["total"] == ROWS // 2
    record = http.get(f"/api/imports/{job_id}/changes", params={"kind": "updated"}).json()
    assert record["total"] == ROWS // 2
    no_scratch_left(sql)
    if not then_undo:
        return

    undo = wait_for_job(http, http.post(f"/api/imports/{job_id}/undo").json()["id"], timeout=120)
    assert (undo["status"], undo["conflicts"]) == ("completed", 0), undo
    assert products_by_key(catalog()) == before
    assert http.get("/api/products").json()["total"] == len(before)

    again = import_csv(http, changed_file(), timeout=120)
    assert (again["status"], again["updated"]) == ("completed", ROWS // 2), again
    no_scratch_left(sql)


@pytest.mark.parametrize(
    ("step", "sig"),
    [
        ("copying", signal.SIGKILL),
        ("indexing", signal.SIGKILL),
        ("analyzing", signal.SIGKILL),  # the record of its updates is written already
        ("analyzing", signal.SIGTERM),
    ],
    ids=["killed copying", "killed indexing", "killed analyzing", "stopped analyzing"],
)
def test_a_worker_lost_in_a_bulk_step_leaves_the_catalog_and_the_import_applies_whole(
    http, sql, catalog, holding, start_worker, live_worker, pausing, step, sig
):
    seed(http)
    before = products_by_key(catalog())
    doomed = start_worker()
    with paused(live_worker), hold_step(holding, step) as held:  # the doomed worker takes it
        try:
            job = upload_csv(http, changed_file()).json()
            held.wait_until_blocking(timeout=120)
            assert worker_of(sql, job["id"]) == doomed.popen.pid
            wait_for(http, job["id"], lambda j: f"({step}" in j["message"], step)
        finally:
            doomed.kill(sig, timeout=60)
        assert products_by_key(catalog()) == before
        held.release()

    assert_applied_whole(http, sql, catalog, job["id"], before, then_undo=step == "copying")


def test_a_worker_killed_while_it_waits_to_switch_leaves_the_catalog(
    http, sql, catalog, holding, start_worker, live_worker, pausing
):
    seed(http)
    before = products_by_key(catalog())
    doomed = start_worker()
    with paused(live_worker), holding(READ_HELD) as read:
        try:
            job = upload_csv(http, changed_file()).json()
            wait_for(http, job["id"], lambda j: "(switching" in j["message"], "switching")
            assert worker_of(sql, job["id"]) == doomed.popen.pid
        finally:
            doomed.kill(signal.SIGKILL, timeout=60)
        assert products_by_key(catalog()) == before
        read.release()

    assert_applied_whole(http, sql, catalog, job["id"], before)


def test_a_plan_whose_apply_lost_its_worker_is_applied_whole(
    http, sql, catalog, holding, start_worker, live_worker, pausing
):
    seed(http)
    before = products_by_key(catalog())
    plan = import_csv(http, changed_file(), data={"plan": "true"}, timeout=120)
    assert plan["status"] == "planned", plan
    doomed = start_worker()
    with paused(live_worker), hold_step(holding, "copying") as held:
        try:
            assert http.post(f"/api/imports/{plan['id']}/apply").status_code == 202
            held.wait_until_blocking(timeout=120)
            assert worker_of(sql, plan["id"]) == doomed.popen.pid
        finally:
            doomed.kill(signal.SIGKILL, timeout=60)
        held.release()

    assert_applied_whole(http, sql, catalog, plan["id"], before)


def test_an_undo_whose_worker_was_killed_undoes_whole(
    http, sql, catalog, holding, start_worker, live_worker
):
    seed(http)
    before = products_by_key(catalog())
    done = import_csv(http, changed_file(), timeout=120)
    doomed = start_worker()
    # the undo waits to delete the product the import created, its record half written
    with paused(live_worker), holding(ROW_LOCK.format(key="pause-1")) as held:
        try:
            undo = http.post(f"/api/imports/{done['id']}/undo").json()
            held.wait_until_blocking(timeout=120)
            assert worker_of(sql, undo["id"]) == doomed.popen.pid
        finally:
            doomed.kill(signal.SIGKILL, timeout=60)
        assert len(catalog()) == len(before) + 1
        held.release()

    undone = wait_for_job(http, undo["id"], timeout=120)
    assert (undone["status"], undone["deleted"], undone["updated"]) == ("completed", 1, ROWS // 2)
    assert products_by_key(catalog()) == before
    assert http.get(f"/api/imports/{done['id']}").json()["undone_by"] == undo["id"]
    assert import_csv(http, changed_file(), timeout=120)["status"] == "completed"


def edit_waiting_at_the_switch(http, sql, holding, edit, data: bytes) -> dict:
    """Upload `data`, a bulk import, and hold it at its switch until the `edit` connection's
    lock waits for it; return its job. The edit then holds the new catalog as the import
    commits: the search indexes built after the commit wait for it (`edit.rollback()`)."""
    with holding(READ_HELD):
        job = upload_csv(http, data).json()
        wait_for(http, job["id"], lambda j: "(switching" in j["message"], "switching")
        lock = "LOCK TABLE products IN ROW EXCLUSIVE MODE"
        editing = threading.Thread(target=edit.execute, args=(lock,))
        editing.start()
        blocked = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :p"
        wait_until(lambda: sql(blocked, p=edit.info.backend_pid)[0][0], "edit waits")
    editing.join()
    return job


def test_a_worker_killed_while_it_builds_the_search_indexes_after_the_commit(
    http, sql, catalog, holding, start_worker, live_worker, test_env
):
    generated = generate(ROWS, seed=21)
    doomed = start_worker()
    logged = len(live_worker.output())
    edit = psycopg.connect(test_env["DATABASE_URL"])
    try:
        with paused(live_worker):
            try:
                job = edit_waiting_at_the_switch(http, sql, holding, edit, generated.data)
            except BaseException:
                doomed.kill(signal.SIGKILL)
                raise
            edit_pid = edit.info.backend_pid
            try:
                job = wait_for_job(http, job["id"])
                assert (job["status"], job["search_index"]) == ("completed", "refreshing"), job
                # both lanes of index builds wait for the edit
                wait_until(lambda: sql(BLOCKED_BY, pid=edit_pid)[0][0] == 2, "indexes wait")
                lost = [pid for (pid,) in sql(BLOCKED, pid=edit_pid)]
            finally:
                doomed.kill(signal.SIGKILL)
        # The server runs the lost lanes' statements on: the next worker's build of the same
        # indexes raced them, into an error. It ends them before it builds.
        next_lanes = lambda: len(waiting_besides(sql, edit_pid, lost)) == 2  # noqa: E731
        wait_until(next_lanes, "the next build waits")
        # pg_terminate_backend does not wait for the session to end
        wait_until(lambda: not sql(ALIVE, pids=lost), "the lost lanes ended")
        edit.rollback()
    finally:
        edit.close()

    page = http.get(f"/imports/{job['id']}").text
    assert "search index is being refreshed" in page
    done = wait_until_search_ready(http, job["id"])
    assert (done["status"], done["message"]) == ("completed", "Import complete")
    assert set(SEARCH_INDEXES) <= {row[0] for row in sql(VALID_INDEXES)}
    assert http.get("/api/products").json()["total"] == len(generated.expected)
    name = next(iter(generated.expected.values()))[1]
    assert http.get("/api/products", params={"name": name}).json()["total"] >= 1
    no_scratch_left(sql)
    undo = wait_for_job(http, http.post(f"/api/imports/{job['id']}/undo").json()["id"])
    assert (undo["status"], catalog()) == ("completed", [])
    assert "search index not built" not in live_worker.output()[logged:]


def test_an_import_cancelled_after_its_worker_was_killed_leaves_no_build_behind(
    http, sql, catalog, holding, start_worker, live_worker, pausing
):
    seed(http)
    before = products_by_key(catalog())
    doomed = start_worker()
    with paused(live_worker), hold_step(holding, "indexing") as held:
        try:
            job = upload_csv(http, changed_file()).json()
            held.wait_until_blocking(timeout=120)
        finally:
            doomed.kill(signal.SIGKILL, timeout=60)
        # the person sees it stuck and cancels it: recovery ends it, never to run again
        assert http.post(f"/api/imports/{job['id']}/cancel").status_code == 202
        held.release()

    cancelled = wait_for_job(http, job["id"])
    assert cancelled["status"] == "cancelled"
    assert "the catalog was not changed. Retry it" in cancelled["error"]
    assert products_by_key(catalog()) == before
    # the build of the whole catalog, and its indexes, are not left for the next import
    no_scratch_left(sql)
    page = http.get(f"/imports/{job['id']}").text
    assert "the catalog was not changed" in page and 'data-action="retry"' in page


def test_the_next_attempt_of_a_killed_bulk_import_does_not_wait_for_its_helpers(
    http, sql, catalog, holding, start_worker, live_worker, pausing
):
    seed(http)
    before = products_by_key(catalog())
    doomed = start_worker()
    with hold_step(holding, "copying") as held:
        with paused(live_worker):
            try:
                job = upload_csv(http, changed_file()).json()
                held.wait_until_blocking(timeout=120)  # a helper writes the build
            finally:
                doomed.kill(signal.SIGKILL, timeout=60)
        # The server ran the dead worker's helper statement on, and the next attempt waited
        # for it (at 5M rows, minutes of two cores): recovery ends the helpers with the import.
        wait_for(
            http,
            job["id"],
            lambda j: "(copying" in j["message"] and attempts(sql, job["id"]) == 2,
            "copying again",
        )
        assert worker_of(sql, job["id"]) == live_worker.popen.pid
        # its own helper, once it waits for the test's lock; the dead one's gone
        wait_until(lambda: sql(BLOCKED_BY, pid=held.pid) == [(1,)], "the new helper waiting")

    assert_applied_whole(http, sql, catalog, job["id"], before)


def test_an_import_whose_helpers_are_refused_a_connection_runs_again(
    http, sql, catalog, holding, live_worker, pausing
):
    """The server out of connections as a bulk step starts: its helpers cannot connect. The
    step did nothing and the import went on; then the attempt ended "failed unexpectedly"."""
    seed(http)
    before = products_by_key(catalog())
    with hold_step(holding, "indexing") as held:
        job = upload_csv(http, changed_file()).json()
        held.wait_until_blocking(timeout=120)
        logged = len(live_worker.output())
        with database_refusing_connections():  # open sessions go on; new ones are refused
            held.release()  # the indexes are built; the analyzing step's helpers connect
            failed = f"import {job['id']} failed"
            wait_until(lambda: failed in live_worker.output()[logged:], "the attempt failed")

    assert_applied_whole(http, sql, catalog, job["id"], before)
    assert attempts(sql, job["id"]) == 2


def test_an_import_waiting_for_the_search_indexes_of_the_last_one_says_so(
    http, sql, catalog, holding, live_worker, test_env
):
    generated = generate(ROWS, seed=22)
    edit = psycopg.connect(test_env["DATABASE_URL"])
    try:
        first = edit_waiting_at_the_switch(http, sql, holding, edit, generated.data)
        wait_until(lambda: sql(BLOCKED_BY, pid=edit.info.backend_pid)[0][0] == 2, "indexes wait")
        assert http.get(f"/api/imports/{first['id']}").json()["status"] == "completed"

        # It said it waited for imports uploaded before it, which had all ended.
        second = upload_csv(http, csv_bytes([("Later", "LATER-1", "")])).json()
        wait_for(http, second["id"], lambda j: "search indexes" in j["message"], "waiting")
        edit.rollback()
    finally:
        edit.close()

    assert wait_for_job(http, second["id"])["status"] == "completed"
    assert http.get("/api/products").json()["total"] == len(generated.expected) + 1


@pytest.mark.parametrize("session", ["import", "helper"])
def test_an_import_whose_connection_was_cut_while_it_built_the_catalog_runs_again(
    http, sql, catalog, holding, live_worker, pausing, session
):
    seed(http)
    before = products_by_key(catalog())
    with hold_step(holding, "copying") as held:
        job = upload_csv(http, changed_file()).json()
        held.wait_until_blocking(timeout=120)
        # as a network cut, a proxy, or an administrator ends a session of the import
        if session == "import":
            end = "SELECT pg_terminate_backend(db_pid) FROM import_jobs WHERE id = :id"
            sql(end, id=job["id"])
        else:  # the helper that waits for the test
            sql(END_BLOCKED, pid=held.pid)
        held.release()

    # It failed "unexpectedly", asking for a retry, where the database was back at once.
    assert_applied_whole(http, sql, catalog, job["id"], before)
    assert attempts(sql, job["id"]) == 2


def test_search_index_builds_cut_off_after_the_commit_are_built_again(
    http, sql, holding, live_worker, test_env
):
    generated = generate(ROWS, seed=23)
    logged = len(live_worker.output())
    edit = psycopg.connect(test_env["DATABASE_URL"])
    try:
        job = edit_waiting_at_the_switch(http, sql, holding, edit, generated.data)
        wait_until(lambda: sql(BLOCKED_BY, pid=edit.info.backend_pid)[0][0] == 2, "indexes wait")
        # both lanes' connections cut, as a database restart or a network cut does
        assert sql(END_BLOCKED, pid=edit.info.backend_pid) == [(True,), (True,)]
        edit.rollback()
    finally:
        edit.close()

    wait_until_search_ready(http, job["id"])  # by the maintenance loop
    assert set(SEARCH_INDEXES) <= {row[0] for row in sql(VALID_INDEXES)}
    assert http.get("/api/products").json()["total"] == len(generated.expected)
    # said in a line, not a traceback of each lane's thread
    assert "Exception in thread" not in live_worker.output()[logged:]
    assert "search indexes not built, connection lost" in live_worker.output()[logged:]


def test_an_undo_cancelled_after_its_worker_was_killed_says_to_undo_again(
    http, sql, catalog, holding, start_worker, live_worker
):
    seed(http)
    done = import_csv(http, changed_file(), timeout=120)
    after = products_by_key(catalog())
    doomed = start_worker()
    with paused(live_worker), holding(ROW_LOCK.format(key="pause-1")) as held:
        try:
            undo = http.post(f"/api/imports/{done['id']}/undo").json()
            held.wait_until_blocking(timeout=120)
        finally:
            doomed.kill(signal.SIGKILL, timeout=60)
        assert http.post(f"/api/imports/{undo['id']}/cancel").status_code == 202
        held.release()

    cancelled = wait_for_job(http, undo["id"])
    assert products_by_key(catalog()) == after
    # It said "Retry it to run it again", which an undo refuses (409).
    again = f"Undo import #{done['id']} again from its page"
    assert cancelled["status"] == "cancelled" and again in cancelled["error"], cancelled
    assert http.post(f"/api/imports/{undo['id']}/retry").status_code == 409
    assert again in http.get(f"/imports/{undo['id']}").text
    assert 'data-action="undo"' in http.get(f"/imports/{done['id']}").text
    redone = wait_for_job(http, http.post(f"/api/imports/{done['id']}/undo").json()["id"])
    assert (redone["status"], redone["deleted"]) == ("completed", 1)


# The sessions that began while a setting the test gave the database applied: they keep it.
BEGUN_SINCE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_start >= %s "
    "AND backend_type = 'client backend'"
)
# A session that has waited for the test's lock for longer than the test's timeouts.
WAITED_LONG = (
    "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid)) "
    "AND clock_timestamp() - query_start > interval '2 s'"
)
FIRST_ATTEMPT = (
    "SELECT status IN ('queued', 'running') AND attempts <= 1 FROM import_jobs WHERE id = :id"
)


@pytest.fixture
def database_setting(sql, test_env):
    """Give every new session of the test database a setting, as an operator's ALTER DATABASE
    does; afterwards reset it and end the sessions that began with it (the pools make new)."""
    named, since = [], sql("SELECT clock_timestamp()")[0][0]

    def setting(name: str, value: str) -> None:
        sql(f"ALTER DATABASE {sql('SELECT current_database()')[0][0]} SET {name} = '{value}'")
        named.append(name)

    yield setting
    with psycopg.connect(test_env["DATABASE_URL"], autocommit=True) as own:
        for name in named:
            own.execute(f"ALTER DATABASE {own.info.dbname} RESET {name}")
        own.execute(BEGUN_SINCE, (since,))


def waited_or_ended(sql, held: int, job_id: int) -> str | None:
    """'waited' once a session has waited for the lock of `held` past the timeouts, 'ended'
    once the job's first attempt has ended (a timeout cut it), else None."""
    if sql(WAITED_LONG, pid=held)[0][0]:
        return "waited"
    return None if sql(FIRST_ATTEMPT, id=job_id)[0][0] else "ended"


@pytest.mark.parametrize("name", ["idle_in_transaction_session_timeout", "statement_timeout"])
def test_an_import_outlasts_the_timeouts_a_server_sets_for_everyone(
    http, sql, holding, live_worker, pausing, database_setting, name
):
    database_setting(name, "1s")
    rows = [(f"Name {n}", f"SKU-{n}", f"Text {n}") for n in range(ROWS)]
    # The fill of the new catalog waits for the test (a helper's statement) twice the timeout,
    # the import's own session idle in its transaction meanwhile: each was cut there.
    own_timeouts_off = "set_config('idle_in_transaction_session_timeout', '0', false)"
    with holding(f"SELECT {own_timeouts_off}, pg_advisory_xact_lock(7001)") as held:
        job = upload_csv(http, csv_bytes([*rows, ("PAUSE", "PAUSE-1", "held")])).json()
        seen = wait_until(
            lambda: waited_or_ended(sql, held.pid, job["id"]), "the fill waited", timeout=120
        )
        # one that never waited here (its attempt ended first) met no timeout at all
        assert seen == "waited", sql("SELECT status, message FROM import_jobs")

    done = wait_for_job(http, job["id"], timeout=120)
    assert (done["status"], done["created"]) == ("completed", ROWS + 1), done
    assert attempts(sql, job["id"]) == 1
    assert wait_until_search_ready(http, job["id"])["search_index"] == "ready"


def in_app(app, work):
    """Run `work()` in an application context (of a thread of the test's)."""
    with app.app_context():
        return work()


def test_upkeep_outlasts_the_statement_timeout_a_server_sets_for_everyone(
    app, http, sql, holding, live_worker, database_setting
):
    from product_importer.extensions import db
    from product_importer.imports import maintenance

    failed = import_csv(http, "name\nNo sku\n")
    assert failed["status"] == "failed"
    with paused(live_worker):  # its own upkeep would remove the record first
        # a row of its record, as the helpers of a bulk apply that died before its end leave it
        sql(
            "INSERT INTO import_changes (job_id, rn, kind, product_id, sku, name, active) "
            "VALUES (:id, 2, 'updated', 1, 'X-1', 'Lost', true)",
            id=failed["id"],
        )
        database_setting("statement_timeout", "1s")
        with app.app_context():
            db.engine.dispose()  # its sessions began before the setting
        # The delete of old records (millions of rows at 5M products) waits past the timeout.
        hold = f"SELECT FROM import_changes WHERE job_id = {failed['id']} FOR UPDATE"
        with holding(hold) as held, ThreadPoolExecutor(1) as pool:
            upkeep = pool.submit(in_app, app, maintenance._expire_plans_and_changes)
            seen = wait_until(
                lambda: "waited" if sql(WAITED_LONG, pid=held.pid)[0][0] else upkeep.done(),
                "the delete waited",
            )
            held.release()
            assert seen == "waited", upkeep.exception()  # it was cut at 1 s
            upkeep.result()
    assert sql("SELECT count(*) FROM import_changes") == [(0,)]


# The PAUSE product's CHECK, run by the session that inserts it: an import in place, its own.
# It waits for one lock of two, by whether the session has the import's settings.
SETTINGS_FUNCTION = """
CREATE OR REPLACE FUNCTION test_settings(product text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF product = 'PAUSE' THEN
        PERFORM pg_advisory_xact_lock_shared(CASE
            WHEN (SELECT setting <> reset_val FROM pg_settings WHERE name = 'work_mem') THEN 7101
            ELSE 7102 END);
    END IF;
    RETURN true;
END $$
"""
PREPARED, UNPREPARED = 7101, 7102
WAITS_FOR = (
    "SELECT l.objid FROM pg_locks AS l JOIN import_jobs AS j ON l.pid = j.db_pid "
    "WHERE j.id = :id AND l.locktype = 'advisory' AND NOT l.granted"
)


@pytest.fixture
def telling_settings(sql):
    """The PAUSE product's CHECK constraint that tells the import session's settings."""
    sql(SETTINGS_FUNCTION)
    sql("ALTER TABLE products ADD CONSTRAINT test_settings CHECK (test_settings(name))")
    yield
    sql("UPDATE import_jobs SET cancel_requested = true WHERE status IN ('queued', 'running')")
    wait_until(lambda: not sql(UNFINISHED), "no import running")
    sql("ALTER TABLE products DROP CONSTRAINT IF EXISTS test_settings")


def test_the_attempt_after_a_cut_session_has_the_import_sessions_settings(
    http, sql, holding, start_worker, live_worker, telling_settings
):
    data = csv_bytes([("PAUSE", "PAUSE-1", "held")])
    with paused(live_worker):
        # one slot: the next attempt runs where the cut one ran, if that one goes on
        own = start_worker(IMPORT_SLOTS="1")
        try:
            with holding(
                f"SELECT pg_advisory_xact_lock({PREPARED}), pg_advisory_xact_lock({UNPREPARED})"
            ) as held:
                job = upload_csv(http, data).json()
                held.wait_until_blocking(job=job["id"], timeout=120)
                assert sql(WAITS_FOR, id=job["id"]) == [(PREPARED,)]
                # as a network cut, a proxy, or an administrator ends the import's session
                end = "SELECT pg_terminate_backend(db_pid) FROM import_jobs WHERE id = :id"
                sql(end, id=job["id"])
                wait_until(lambda: attempts(sql, job["id"]) == 2, "the next attempt")
                held.wait_until_blocking(job=job["id"], timeout=120)
                # Its session was made anew by SQLAlchemy, without work_mem and the rest.
                assert sql(WAITS_FOR, id=job["id"]) == [(PREPARED,)]
            done = wait_for_job(http, job["id"])
        finally:
            own.kill()
    assert (done["status"], done["created"]) == ("completed", 1), done


def test_an_import_whose_session_was_cut_leaves_the_next_holder_of_the_turn_its_search_build(
    http, sql, catalog, holding, live_worker, pausing, test_env
):
    seed(http)
    logged = len(live_worker.output())
    edit = psycopg.connect(test_env["DATABASE_URL"])
    try:
        with hold_step(holding, "copying") as held:
            job = upload_csv(http, changed_file()).json()
            held.wait_until_blocking(timeout=120)  # it holds the turn, its helper fills
            # what a lost import left: its search indexes to build by the next holder of the turn
            sql("UPDATE import_jobs SET search_index = 'refreshing' WHERE id < :id", id=job["id"])
            # as a network cut, a proxy, or an administrator ends the import's session
            pid = sql("SELECT db_pid FROM import_jobs WHERE id = :id", id=job["id"])[0][0]
            sql("SELECT pg_terminate_backend(:pid)", pid=pid)
            wait_until(lambda: not sql(ALIVE, pids=[pid]), "its session ended")
            # the next holder's build waits for an edit, its lanes alive meanwhile
            edit.execute("LOCK TABLE products IN ROW EXCLUSIVE MODE")
            later = upload_csv(http, csv_bytes([("Later", "LATER-1", "")])).json()
            edit_pid = edit.info.backend_pid
            wait_until(lambda: sql(BLOCKED_BY, pid=edit_pid)[0][0] == 2, "the next build waits")
            lanes = sorted(pid for (pid,) in sql(BLOCKED, pid=edit_pid))
            held.release()  # the cut import goes on, finds its session gone, and ends
            wait_until(
                lambda: attempts(sql, job["id"]) == 2 or len(sql(ALIVE, pids=lanes)) < 2,
                "the cut attempt ended",
            )
            # It rolled back on a session made anew, then built the indexes, ending the lanes.
            assert sorted(pid for (pid,) in sql(ALIVE, pids=lanes)) == lanes
        edit.rollback()
    finally:
        edit.close()

    done = wait_for_job(http, job["id"], timeout=120)
    assert (done["status"], done["created"], done["updated"]) == ("completed", 1, ROWS // 2)
    assert wait_for_job(http, later["id"])["status"] == "completed"
    assert wait_until_search_ready(http, job["id"] - 1)["search_index"] == "ready"
    assert len(catalog()) == ROWS + 2
    said = live_worker.output()[logged:]
    assert "lanes of a lost search index build" not in said
    assert "search indexes not built" not in said


def test_an_import_command_whose_session_was_cut_runs_its_next_attempt_itself(
    http, sql, holding, live_worker, telling_settings, tmp_path
):
    path = tmp_path / "held.csv"
    path.write_bytes(csv_bytes([("PAUSE", "PAUSE-1", "held")]))
    args = [str(BIN / "product-importer"), "import", str(path)]
    with paused(live_worker):  # no worker runs the queue: the command alone
        command = Process(args, {}, tmp_path / "command.log")
        try:
            with holding(
                f"SELECT pg_advisory_xact_lock({PREPARED}), pg_advisory_xact_lock({UNPREPARED})"
            ) as held:
                held.wait_until_blocking(timeout=120)
                (job_id,) = sql("SELECT id FROM import_jobs")[0]
                # as a network cut, a proxy, or an administrator ends the import's session
                end = "SELECT pg_terminate_backend(db_pid) FROM import_jobs WHERE id = :id"
                sql(end, id=job_id)
                # It was queued again for a worker's wake-up, which none would answer.
                wait_until(lambda: attempts(sql, job_id) == 2, "the next attempt, by the command")
                held.wait_until_blocking(job=job_id, timeout=120)
                assert sql(WAITS_FOR, id=job_id) == [(PREPARED,)]  # on a prepared session
            assert command.popen.wait(120) == 0, command.output()
        finally:
            command.kill()
    assert wait_for_job(http, job_id)["status"] == "completed"


TUS = {"Tus-Resumable": "1.0.0"}
# Whether the job's session waits for a lock session `pid` holds.
JOB_WAITS_FOR = (
    "SELECT count(*) FROM pg_stat_activity AS a JOIN import_jobs AS j ON a.pid = j.db_pid "
    "WHERE j.id = :id AND :pid = ANY(pg_blocking_pids(a.pid))"
)
FILLED = "SELECT count(*) FROM products_build"


def test_a_cut_import_leaves_the_next_holder_of_the_turn_its_staged_rows(
    http, sql, live_server, holding, live_worker, pausing, test_env
):
    seed(http)
    data = csv_bytes([("Later", "LATER-1", "")])
    # Uploaded first, its import waits for its upload's bytes: it holds no later one up.
    created = http.post("/api/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    url = live_server + created.headers["Location"]
    later = http.post("/api/imports", json={"upload": url.rsplit("/", 1)[-1]}).json()
    edit = psycopg.connect(test_env["DATABASE_URL"])
    try:
        with hold_step(holding, "copying") as held:
            job = upload_csv(http, changed_file()).json()
            held.wait_until_blocking(timeout=120)  # it holds the turn, a helper fills
            # the other helper's statements ended: none waits for the later import (below)
            wait_until(lambda: sql(FILLED)[0][0] == ROWS, "all but the held row filled")
            # as a network cut, a proxy, or an administrator ends the import's session
            pid = sql("SELECT db_pid FROM import_jobs WHERE id = :id", id=job["id"])[0][0]
            sql("SELECT pg_terminate_backend(:pid)", pid=pid)
            wait_until(lambda: not sql(ALIVE, pids=[pid]), "its session ended")
            # the later import, once it has taken the shared names over, waits for an edit
            edit.execute("LOCK TABLE products IN ROW EXCLUSIVE MODE")
            piece = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
            assert http.patch(url, content=data, headers=piece).status_code == 204
            ((helper,),) = sql(BLOCKED, pid=held.pid)
            taking_over = lambda: sql(JOB_WAITS_FOR, id=later["id"], pid=helper)[0][0]  # noqa: E731
            wait_until(taking_over, "the later import takes the names over")
            held.release()  # the cut import's fill ends, and it finds its session gone
            edit_pid = edit.info.backend_pid
            waiting = lambda: sql(JOB_WAITS_FOR, id=later["id"], pid=edit_pid)[0][0]  # noqa: E731
            ended = lambda: not sql(FIRST_ATTEMPT, id=later["id"])[0][0]  # noqa: E731
            wait_until(lambda: waiting() or ended(), "the later import waits for the edit")
            # the cut attempt cleaned up, and another waits for the turn
            wait_until(lambda: attempts(sql, job["id"]) == 2, "the cut attempt ended")
        edit.rollback()
    finally:
        edit.close()

    done = wait_for_job(http, later["id"])
    assert (done["status"], done["created"]) == ("completed", 1), done
    assert attempts(sql, later["id"]) == 1  # its staged rows were its own to the end
    done = wait_for_job(http, job["id"], timeout=120)
    assert (done["status"], done["created"], done["updated"]) == ("completed", 1, ROWS // 2)
    assert attempts(sql, job["id"]) == 2
    assert http.get("/api/products").json()["total"] == ROWS + 2
    no_scratch_left(sql)


def test_an_import_cancelled_after_its_session_was_cut_ends_cancelled_on_its_last_attempt(
    http, sql, catalog, holding, live_worker, pausing
):
    from product_importer.imports.failures import MAX_ATTEMPTS

    seed(http)
    before = products_by_key(catalog())
    with hold_step(holding, "copying") as held:
        with paused(live_worker):
            job = upload_csv(http, changed_file()).json()
            # as two attempts lost to cuts leave it: how this one ends, the job ends
            last = "UPDATE import_jobs SET attempts = :n WHERE id = :id"
            sql(last, n=MAX_ATTEMPTS - 1, id=job["id"])
        held.wait_until_blocking(timeout=120)  # it holds the turn, a helper fills
        # as a network cut, a proxy, or an administrator ends the import's session
        pid = sql("SELECT db_pid FROM import_jobs WHERE id = :id", id=job["id"])[0][0]
        sql("SELECT pg_terminate_backend(:pid)", pid=pid)
        wait_until(lambda: not sql(ALIVE, pids=[pid]), "its session ended")
        # The person cancels it: its helper is interrupted, and its rollback found the session
        # gone. That error was raised over the cancel: the job ended "failed unexpectedly".
        assert http.post(f"/api/imports/{job['id']}/cancel").status_code == 202
        cancelled = wait_for_job(http, job["id"], timeout=120)

    assert cancelled["status"] == "cancelled", cancelled
    assert "failed unexpectedly" not in (cancelled["error"] or ""), cancelled
    assert attempts(sql, job["id"]) == MAX_ATTEMPTS
    assert products_by_key(catalog()) == before
    no_scratch_left(sql)  # the build of the whole catalog is not left for the next import
    later = import_csv(http, csv_bytes([("Later", "LATER-1", "")]), timeout=120)
    assert (later["status"], later["created"]) == ("completed", 1), later


def test_an_import_whose_session_was_cut_while_it_read_its_file_runs_again(
    http, sql, catalog, holding_rejections, held_file, live_worker
):
    with holding_rejections() as reading:  # the import stops half-way through its file
        job = upload_csv(http, held_file.data).json()
        reading.wait_until_blocking(timeout=120)
        # as a network cut, a proxy, or an administrator ends the import's session, its COPY
        pid = sql("SELECT db_pid FROM import_jobs WHERE id = :id", id=job["id"])[0][0]
        sql("SELECT pg_terminate_backend(:pid)", pid=pid)
        wait_until(lambda: not sql(ALIVE, pids=[pid]), "its session ended")

    # The COPY's error is the driver's own, not marked as a cut: once its clean-up connects
    # anew, only the session it began with tells that it was lost (else "failed unexpectedly").
    done = wait_for_job(http, job["id"], timeout=120)
    assert (done["status"], done["created"]) == ("completed_with_errors", len(held_file.expected))
    assert attempts(sql, job["id"]) == 2
    assert products_by_key(catalog()).keys() == held_file.expected.keys()


def test_an_attempt_that_lost_its_job_to_a_later_one_leaves_it_its_change_record(
    http, sql, holding, live_worker, pausing
):
    seed(http)
    with hold_step(holding, "copying") as held:
        job = upload_csv(http, changed_file()).json()
        held.wait_until_blocking(timeout=120)
        # As a stall past the heartbeat's timeout leaves it: the job queued again and claimed
        # by another worker, which beats (here for ever) and has written part of its change
        # record (this row; helpers commit theirs); then this attempt's session is cut.
        sql(LATER_ATTEMPT, id=job["id"])
        sql(LATER_RECORD, id=job["id"])
        pid = sql("SELECT db_pid FROM import_jobs WHERE id = :id", id=job["id"])[0][0]
        logged = len(live_worker.output())
        sql("SELECT pg_terminate_backend(:pid)", pid=pid)
        wait_until(lambda: not sql(ALIVE, pids=[pid]), "its session ended")
    # released: the cut attempt's fill ends, it finds its session gone and cleans up

    left = f"import {job['id']}: attempt 1 was followed by another, its tables left to it"
    later_rows = "SELECT count(*) FROM import_changes WHERE job_id = :id AND sku = 'LATER-1'"
    kept = lambda: sql(later_rows, id=job["id"])[0][0] == 1  # noqa: E731
    wait_until(lambda: left in live_worker.output()[logged:] or not kept(), "its clean-up")
    assert kept(), "the cut attempt deleted the later attempt's change record"
    # Once the later attempt stops beating, the job is queued again and applies whole.
    sql(
        "UPDATE import_jobs SET heartbeat_at = now() - interval '1 day' WHERE id = :id",
        id=job["id"],
    )
    done = wait_for_job(http, job["id"], timeout=120)
    assert (done["status"], done["created"], done["updated"]) == ("completed", 1, ROWS // 2)
    assert sql(later_rows, id=job["id"])[0][0] == 0  # its next attempt began its own record
    no_scratch_left(sql)


LATER_ATTEMPT = (
    "UPDATE import_jobs SET attempts = 2, heartbeat_at = now() + interval '1 day' WHERE id = :id"
)
LATER_RECORD = (
    "INSERT INTO import_changes (job_id, rn, kind, sku, name, active) "
    "VALUES (:id, 1000000, 'updated', 'LATER-1', 'Later', true)"
)
