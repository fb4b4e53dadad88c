"""Imports that write most of the catalog build it anew beside the live one and switch it in.

Where a test must act while the import switches, it holds a read of the catalog open: the
switch then waits for it, trying again and again, and lets other readers through meanwhile.
"""

import csv
import io
import re
import time

import pytest
from sqlalchemy import text

from product_importer.database import IMPORT_LOCK_KEY
from product_importer.timeutil import utcnow
from tests.conftest import database_refusing_connections, paused
from tests.helpers import (
    SESSION_SETTINGS,
    import_csv,
    pooled_settings,
    upload_csv,
    wait_for_job,
    wait_until,
)

from .conftest import TABLE_LOCK, csv_bytes, generate, products_by_key, wait_for

pytestmark = pytest.mark.usefixtures("live_worker")

READ_HELD = "SELECT count(*) FROM products"  # holds ACCESS SHARE on products until rollback
SCRATCH = ("import_staging", "import_plan", "products_build")
BULK_ROWS = 20_000
WAITING = ("queued", "running")
# jit, work_mem and maintenance_work_mem as the server's configuration sets them
SERVER_SETTINGS = text(
    "SELECT (SELECT reset_val FROM pg_settings WHERE name = 'jit'), "
    "pg_size_bytes((SELECT reset_val || coalesce(unit, '') FROM pg_settings "
    "WHERE name = 'work_mem')), "
    "pg_size_bytes((SELECT reset_val || coalesce(unit, '') FROM pg_settings "
    "WHERE name = 'maintenance_work_mem'))"
)
STATISTICS_OBJECTS = "SELECT stxname FROM pg_statistic_ext WHERE stxrelid = 'products'::regclass"


def products_oid(sql) -> int:
    """The products table's identity: a bulk import replaces the table, in place it stays."""
    return sql("SELECT 'products'::regclass::oid")[0][0]


def indexes(sql) -> list[tuple]:
    return sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'products' ORDER BY 1")


# The targets of migrations 0015 and 0016: the description is filtered on its lowered copy.
TARGETS = {"sku": 400, "name": 400, "description": 10, "description_lower": 400}


def statistics_targets(sql) -> dict[str, int]:
    """Columns with a statistics target of their own (migrations 0015, 0016), and the target."""
    found = sql(
        "SELECT attname, attstattarget FROM pg_attribute "
        "WHERE attrelid = 'products'::regclass AND attnum > 0 AND NOT attisdropped "
        "AND attstattarget >= 0"
    )
    return dict(found)


def statistics_objects(sql) -> list[str]:
    return [row[0] for row in sql(STATISTICS_OBJECTS)]


# The planner's histogram of each text column, as long as ANALYZE made it (none: not analyzed).
HISTOGRAMS = (
    "SELECT attname, coalesce(array_length(histogram_bounds::text::text[], 1), 0) FROM pg_stats "
    "WHERE schemaname = current_schema() AND tablename = 'products' AND attname = ANY(:names)"
)


def histogram_lengths(sql) -> dict[str, int]:
    """How many bounds the planner's histogram of sku, name and the lowered description has."""
    return dict(sql(HISTOGRAMS, names=["sku", "name", "description_lower"]))


def finer_histograms(sql) -> bool:
    """Whether ANALYZE has given each text column its statistics, with the targets of
    migrations 0015 and 0016: the SKUs (all distinct) more than the default target's 101
    bounds."""
    lengths = histogram_lengths(sql)
    return set(lengths) == {"sku", "name", "description_lower"} and lengths["sku"] > 101


def scratch_tables(sql) -> list[str]:
    found = sql(
        "SELECT relname FROM pg_class WHERE relname = ANY(:names) AND relkind = 'r'",
        names=list(SCRATCH),
    )
    return [row[0] for row in found]


def wait_until_search_ready(http, job_id: int, timeout: float = 90) -> dict:
    """Poll a finished job until its search index is ready."""
    deadline = time.monotonic() + timeout
    while (job := http.get(f"/api/imports/{job_id}").json())["search_index"] != "ready":
        assert job["search_index"] == "refreshing" or job["status"] in ("queued", "running")
        if time.monotonic() > deadline:
            raise TimeoutError(f"import {job_id}: search index not ready after {timeout}s")
        time.sleep(0.1)
    return job


def upload(http, data: bytes) -> dict:
    response = upload_csv(http, data)
    assert response.status_code == 202, response.text
    return response.json()


def test_a_fresh_import_is_built_in_bulk_with_exact_counts_and_every_index(http, catalog, sql):
    before_indexes, before_oid = indexes(sql), products_oid(sql)
    assert statistics_targets(sql) == TARGETS
    assert statistics_objects(sql) == ["products_id_parity"]  # migration 0006
    generated = generate(BULK_ROWS, seed=11)

    job = import_csv(http, generated.data)

    assert job["status"] == "completed"
    distinct = len(generated.expected)
    assert (job["created"], job["updated"], job["unchanged"]) == (distinct, 0, 0)
    assert job["rows_superseded"] == BULK_ROWS - distinct > 0
    assert job["search_index"] in ("refreshing", "ready")
    assert products_oid(sql) != before_oid  # switched in
    assert products_by_key(catalog()) == generated.expected
    assert wait_until_search_ready(http, job["id"])["message"] == "Import complete"
    assert indexes(sql) == before_indexes
    # the planner's finer histograms of the text columns went along with the table, and the
    # ANALYZE after the commit made them so
    assert statistics_targets(sql) == TARGETS
    assert finer_histograms(sql)
    assert statistics_objects(sql) == ["products_id_parity"]  # by the name it was made with
    assert scratch_tables(sql) == []
    rows = http.get("/api/products", params={"description": "church"}).json()
    expected = sum("church" in values[2].lower() for values in generated.expected.values())
    assert rows["total"] == expected


def test_a_bulk_import_keeps_the_ids_and_rows_of_existing_products(http, catalog, sql):
    generated = generate(BULK_ROWS, seed=12)
    keys = list(generated.expected)
    changed, same = generated.expected[keys[0]], generated.expected[keys[1]]
    seed = [("Old name", changed[0], changed[2]), (same[1], same[0], same[2])]
    import_csv(http, csv_bytes([*seed, ("Not in the file", "OTHER-1", "kept")]))
    before = {row[1].lower(): row for row in catalog()}
    oid, before_indexes = products_oid(sql), indexes(sql)

    job = import_csv(http, generated.data)

    assert products_oid(sql) != oid
    assert (job["created"], job["updated"], job["unchanged"]) == (len(keys) - 2, 1, 1)
    # into a catalog people read: its search indexes were built before the switch
    assert job["search_index"] is None
    assert indexes(sql) == before_indexes
    after = {row[1].lower(): row for row in catalog()}
    assert after["other-1"] == before["other-1"]  # not in the file: untouched
    assert after[keys[1]] == before[keys[1]]  # unchanged: not rewritten, updated_at kept
    was, now = before[keys[0]], after[keys[0]]
    assert (now[0], now[5]) == (was[0], was[5])  # same id, same created_at
    assert now[2] == changed[1] and now[6] > was[6]
    new_ids = [row[0] for key, row in after.items() if key not in before]
    assert min(new_ids) > max(row[0] for row in before.values())
    created = http.post("/api/products", json={"sku": "NEXT-1", "name": "Next"}).json()
    assert created["id"] > max(new_ids)  # the id sequence went along with the table


def test_an_import_that_changes_few_rows_merges_in_place(http, catalog, sql):
    generated = generate(BULK_ROWS, seed=13)
    import_csv(http, generated.data)
    oid = products_oid(sql)
    key = next(iter(generated.expected))
    sku, _name, description, _active = generated.expected[key]

    job = import_csv(http, csv_bytes([("Renamed", sku, description), ("New", "NEW-1", "")]))

    assert (job["created"], job["updated"]) == (1, 1)
    assert job["search_index"] is None
    assert products_oid(sql) == oid


def test_readers_are_not_held_up_while_a_bulk_import_waits_to_switch(http, catalog, sql, holding):
    import_csv(http, "sku,name\nA-1,Apple\n")
    with holding(READ_HELD):  # a long read: the switch must wait for it
        job = upload(http, generate(BULK_ROWS, seed=14).data)
        wait_for(http, job["id"], lambda j: "switching" in j["message"], "switching")
        for _ in range(5):  # each would queue behind the switch if it waited without pause
            listed = http.get("/api/products")
            assert listed.status_code == 200
            assert listed.json()["total"] == 1
        assert http.get(f"/api/imports/{job['id']}").json()["status"] == "running"

    done = wait_for_job(http, job["id"])
    assert done["status"] == "completed"
    assert http.get("/api/products").json()["total"] == done["created"] + 1


def test_a_cancel_while_a_bulk_import_switches_leaves_the_catalog_unchanged(
    http, catalog, sql, holding
):
    import_csv(http, "sku,name\nA-1,Apple\n")
    before, before_indexes, oid = catalog(), indexes(sql), products_oid(sql)
    with holding(READ_HELD):
        job = upload(http, generate(BULK_ROWS, seed=15).data)
        wait_for(http, job["id"], lambda j: "switching" in j["message"], "switching")
        assert http.post(f"/api/imports/{job['id']}/cancel").status_code == 202
        cancelled = wait_for_job(http, job["id"], timeout=20)  # the read is still held

    assert cancelled["status"] == "cancelled"
    assert catalog() == before
    assert (products_oid(sql), indexes(sql)) == (oid, before_indexes)
    assert scratch_tables(sql) == []


@pytest.fixture
def no_boom(sql):
    """A CHECK constraint on products (refusing the name BOOM) for the test."""
    sql("ALTER TABLE products ADD CONSTRAINT test_no_boom CHECK (name <> 'BOOM')")
    yield
    sql("ALTER TABLE products DROP CONSTRAINT IF EXISTS test_no_boom")


def test_a_failure_while_building_leaves_the_catalog_unchanged(http, catalog, sql, no_boom):
    import_csv(http, "sku,name\nA-1,Apple\n")
    before, oid = catalog(), products_oid(sql)
    rows = [(f"Name {n}", f"SKU-{n}", "") for n in range(BULK_ROWS)] + [("BOOM", "B-1", "")]

    job = import_csv(http, csv_bytes(rows))

    assert job["status"] == "failed"
    assert "test_no_boom" in job["error"]
    assert catalog() == before
    assert products_oid(sql) == oid
    assert scratch_tables(sql) == []


@pytest.fixture
def unique_names(sql):
    """A unique index on products' names for the test: a build with two alike fails on it."""
    sql("CREATE UNIQUE INDEX test_unique_name ON products (name)")
    yield
    sql("DROP INDEX IF EXISTS test_unique_name")


def test_a_failure_after_the_build_is_written_leaves_no_change_record(
    http, catalog, sql, unique_names
):
    import_csv(http, "sku,name\nA-1,Apple\nA-2,Pear\n")
    before, oid = catalog(), products_oid(sql)
    # both products change (their record is written with the build), then two new products
    # alike in name fail the build's indexing, after the fill
    rows = [("Apple 2", "A-1", ""), ("Pear 2", "A-2", "")]
    rows += [(f"Name {n}", f"SKU-{n}", "") for n in range(BULK_ROWS)] + [("Name 7", "T-1", "")]

    job = import_csv(http, csv_bytes(rows))

    assert job["status"] == "failed"
    assert "test_unique_name" in job["error"]
    assert (catalog(), products_oid(sql)) == (before, oid)
    assert sql("SELECT count(*) FROM import_changes WHERE job_id = :id", id=job["id"]) == [(0,)]
    assert http.get(f"/api/imports/{job['id']}/changes").json()["total"] == 0


SEARCH_INDEXES = (
    "ix_products_sku_trgm",
    "ix_products_name_trgm",
    "ix_products_description_lower_trgm_0",
    "ix_products_description_lower_trgm_1",
)


def test_a_search_index_left_unbuilt_by_a_lost_worker_is_built_again(http, sql):
    job = import_csv(http, generate(BULK_ROWS, seed=16).data)
    wait_until_search_ready(http, job["id"])
    # as a worker that died after the commit, before its ANALYZE and the index, leaves them
    sql(f"DROP INDEX {', '.join(SEARCH_INDEXES)}")
    sql("DELETE FROM pg_statistic WHERE starelid = 'products'::regclass")
    sql("UPDATE import_jobs SET search_index = 'refreshing' WHERE id = :id", id=job["id"])
    assert histogram_lengths(sql) == {}

    wait_until_search_ready(http, job["id"])  # the maintenance loop of a worker builds it

    names = [name for name, _definition in indexes(sql)]
    assert set(SEARCH_INDEXES) <= set(names)
    assert finer_histograms(sql)  # analyzed again, its targets kept


# The turn an import holds to apply, and to build the search indexes it left after its switch.
TURN_HELD = f"SELECT pg_advisory_xact_lock({IMPORT_LOCK_KEY})"
# Received, not ended: the task that built the index logs its end after the job says `ready`.
DRAIN_RECEIVED = re.compile(r"Task product_importer\.imports\.drain_imports\[\S+\] received")


def maintenance_round_passes(http, sql, n: int) -> None:
    """Wait until a worker's maintenance round sends a delivery that only its sweep finds."""
    hook = {"url": f"http://127.0.0.1:9/round-{n}", "events": ["product.created"]}
    hook_id = http.post("/api/webhooks", json=hook).json()["id"]
    [(delivery_id,)] = sql(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload, status, "
        "attempts, created_at, next_attempt_at) VALUES (:id, :event, 'product.created', '{}', "
        "'pending', 0, now(), now()) RETURNING id",
        id=hook_id,
        event=f"evt_round_{n}",
    )
    wait_until(
        lambda: sql("SELECT attempts FROM webhook_deliveries WHERE id = :id", id=delivery_id)[0][0],
        "the maintenance sweep to send the delivery",
    )


def test_workers_leave_a_search_index_alone_while_it_is_being_built(
    http, sql, holding, live_worker
):
    # Each worker's maintenance took an index being built after an import's switch for one a
    # lost worker had left: every second, each worker queued itself a task that did nothing
    # (`make run-prod` printed four Celery lines a second for the whole build).
    job = import_csv(http, generate(BULK_ROWS, seed=18).data)
    wait_until_search_ready(http, job["id"])

    with holding(TURN_HELD):  # as the worker that builds it holds the turn
        sql("UPDATE import_jobs SET search_index = 'refreshing' WHERE id = :id", id=job["id"])
        drains = len(DRAIN_RECEIVED.findall(live_worker.output()))
        for n in (1, 2):  # the second starts after the first: a whole round sees the build
            maintenance_round_passes(http, sql, n)
        assert len(DRAIN_RECEIVED.findall(live_worker.output())) == drains

    wait_until_search_ready(http, job["id"])  # its builder gone, a worker takes it over


def test_progress_moves_while_applying_and_never_goes_down(http, holding):
    # Two holds stop the import twice while it applies: an edit in progress at the start of
    # its merge (it waits to lock out edits), and a long read at its switch.
    with holding(READ_HELD), holding(TABLE_LOCK) as edit:
        job = upload(http, generate(BULK_ROWS, seed=16).data)
        edit.wait_until_blocking()
        early = http.get(f"/api/imports/{job['id']}").json()
        edit.release()
        late = wait_for(http, job["id"], lambda j: "switching" in j["message"], "switching")

    done = wait_for_job(http, job["id"])
    assert early["phase"] == late["phase"] == "applying"
    assert early["percent"] < late["percent"] < done["percent"] == 100


# --- the change record and undo of a bulk import ----------------------------------------------


def test_a_fresh_bulk_import_records_what_it_created_and_its_undo_empties_the_catalog(
    http, catalog
):
    job = import_csv(http, generate(BULK_ROWS, seed=17).data)
    download = http.get(f"/api/imports/{job['id']}/changes.csv", params={"kind": "created"})
    listed = list(csv.DictReader(io.StringIO(download.text)))
    assert len(listed) == job["created"]
    # every product, by its id and SKU
    assert {(int(row["product_id"]), row["sku"]) for row in listed} == {
        (product[0], product[1]) for product in catalog()
    }

    undo = wait_for_job(http, http.post(f"/api/imports/{job['id']}/undo").json()["id"])

    assert (undo["status"], undo["deleted"], undo["conflicts"]) == ("completed", job["created"], 0)
    assert catalog() == []


def test_undoing_a_bulk_update_restores_the_catalog_exactly(http, catalog):
    rows = [(f"Name {n}", f"SKU-{n}", f"Text {n}") for n in range(BULK_ROWS)]
    import_csv(http, csv_bytes(rows))
    before = catalog()
    changed = [(f"Name {n}", f"sku-{n}", f"Other {n}") for n in range(0, BULK_ROWS, 2)]
    job = import_csv(http, csv_bytes(changed + [("New", "NEW-1", "")]))
    assert (job["created"], job["updated"]) == (1, BULK_ROWS // 2)
    params = {"kind": "updated", "per_page": 1}
    record = http.get(f"/api/imports/{job['id']}/changes", params=params).json()
    assert record["total"] == BULK_ROWS // 2
    assert record["items"][0]["changes"] == {
        "sku": {"before": "SKU-0", "after": "sku-0"},
        "description": {"before": "Text 0", "after": "Other 0"},
    }

    undo = wait_for_job(http, http.post(f"/api/imports/{job['id']}/undo").json()["id"])

    assert (undo["status"], undo["updated"], undo["conflicts"]) == ("completed", BULK_ROWS // 2, 0)
    assert catalog() == before


@pytest.mark.parametrize(
    ("setting", "starting_catalog", "left_for_after"),
    [("true", "sku,name\nA-1,Apple\n", True), ("false", None, False)],
    ids=["after, into a catalog people read", "before, into an empty catalog"],
)
def test_a_bulk_import_told_when_to_build_its_search_indexes_does_so_whatever_the_catalog(
    http, catalog, sql, start_worker, live_worker, setting, starting_catalog, left_for_after
):
    if starting_catalog:
        import_csv(http, starting_catalog)
    before_indexes = indexes(sql)
    told = start_worker(IMPORT_SEARCH_INDEX_AFTER_SWITCH=setting)
    try:
        with paused(live_worker):  # so that this worker takes the job
            job = import_csv(http, generate(BULK_ROWS, seed=14).data)
            assert job["status"] == "completed", job
            if left_for_after:
                assert job["search_index"] in ("refreshing", "ready")
                wait_until_search_ready(http, job["id"])
            else:
                assert job["search_index"] is None  # nothing left to build after the commit
    finally:
        told.kill()

    assert indexes(sql) == before_indexes
    assert len(catalog()) == job["created"] + (1 if starting_catalog else 0)


def test_a_record_left_by_a_lost_attempt_goes_before_the_job_runs_again(
    http, catalog, sql, live_worker
):
    import_csv(http, "sku,name\nA-1,Apple\nA-2,Pear\n")
    with paused(live_worker):
        job = upload(http, b"sku,name\nA-1,Apple 2\n")
        # as the helpers of a bulk apply that died after writing the record leave it (whatever
        # the line numbering, one of them is the line this attempt records)
        for line in (1, 2):
            sql(
                "INSERT INTO import_changes (job_id, rn, kind, product_id, sku, name, active) "
                "VALUES (:id, :line, 'updated', 1, 'A-1', 'Lost', true)",
                id=job["id"],
                line=line,
            )

    done = wait_for_job(http, job["id"])

    assert done["status"] == "completed", done
    record = http.get(f"/api/imports/{job['id']}/changes").json()
    assert record["total"] == 1
    assert record["items"][0]["changes"]["name"] == {"before": "Apple", "after": "Apple 2"}


def test_a_helper_connection_goes_back_to_the_pool_as_the_server_set_it(app):
    """Its 256MB of work_mem is for the import's sorts, not for whoever takes it next."""
    from product_importer.extensions import db
    from product_importer.imports.bulk import helper_connection

    with app.app_context():
        with helper_connection(db.engine) as helper:
            pid, _, work_mem, maintenance = helper.execute(SESSION_SETTINGS).one()
            assert work_mem == maintenance == 256 * 1024 * 1024
            server = helper.execute(SERVER_SETTINGS).one()  # what RESET gives back
            assert work_mem > server[1]

        assert pooled_settings(db.engine, pid) == list(server)


def test_a_build_step_whose_helpers_cannot_connect_fails_rather_than_doing_nothing(app):
    """The server out of connections as a step starts: the build's helpers are refused. The
    step passed having done nothing: a catalog built empty and switched in, or an import
    without the change record its undo needs."""
    from product_importer.extensions import db
    from product_importer.imports.bulk import Build
    from product_importer.imports.failures import HelperNotConnected

    with app.app_context(), db.engine.connect() as conn:
        db.engine.pool.dispose()  # no idle connection for the helpers to take: they connect
        build = Build(conn, utcnow(), fresh=False, job=None)
        refused = pytest.raises(HelperNotConnected, match="not currently accepting connections")
        with database_refusing_connections(), refused:
            build.analyze()
