"""Exact list totals carried over edits by the edit log (migration 0012), through HTTP.

Every total, and every page, is checked against the products as they are, filtered here in
Python. A total is first counted and kept (with the ids of its matches, migration 0017); the
changes after it are what each test is about.
"""

from concurrent.futures import ThreadPoolExecutor
from math import ceil
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import text

from product_importer.products import totals
from product_importer.products.service import Filters, parse_filters
from tests.conftest import Held
from tests.helpers import import_csv, wait_for_job

from ..imports.conftest import csv_bytes, generate

# (query, the products it matches) for every kind of filter the list has
FILTERS = {
    "": lambda p: True,
    "name=widget": lambda p: "widget" in p["name"].lower(),
    "sku=wid": lambda p: "wid" in p["sku"].lower(),
    "description=steel": lambda p: "steel" in p["description"].lower(),
    "q=wood": lambda p: any("wood" in p[f].lower() for f in ("sku", "name", "description")),
    "active=false": lambda p: not p["active"],
    "active=true": lambda p: p["active"],
    "name=widget&active=true": lambda p: "widget" in p["name"].lower() and p["active"],
}
SEED = [
    ("WID-1", "Blue widget", "Made of steel", True),
    ("WID-2", "Red widget", "Made of wood", False),
    ("GAD-3", "Gadget", "Steel and glass", True),
    ("TOOL-4", "Hammer", "Wood handle", True),
    ("BOX-5", "Box", "Cardboard", False),
    ("WID-6", "Widget stand", "For widgets", True),
]
PRODUCTS = "SELECT id, sku, name, description, active FROM products"
KEPT = "SELECT version, counted_at, total FROM product_list_totals WHERE filters = :filters"
MATCHES = "SELECT matches FROM product_list_totals WHERE filters = :filters"
VERSION = "SELECT version, recount_from FROM products_version"
OID = "SELECT 'products'::regclass::oid"


@pytest.fixture
def seeded(sql) -> None:
    """The SEED products, written in one statement."""
    sql(
        "INSERT INTO products (sku, name, description, active) "
        "SELECT * FROM unnest(CAST(:s AS text[]), CAST(:n AS text[]), CAST(:d AS text[]), "
        "CAST(:a AS boolean[]))",
        s=[r[0] for r in SEED],
        n=[r[1] for r in SEED],
        d=[r[2] for r in SEED],
        a=[r[3] for r in SEED],
    )


def products(sql) -> list[dict]:
    return [row._asdict() for row in sql(PRODUCTS)]


def total(http, query: str, per_page: int = 1) -> int:
    """The list's total; one per page, so that it is carried or counted, not seen on a page."""
    response = http.get(f"/api/products?{query}&per_page={per_page}")
    assert response.status_code == 200, response.text
    return response.json()["total"]


def listed(http, query: str) -> list[str]:
    """The SKUs of every page of a filter by name, two a page, first to last."""
    skus, page = [], 1
    while True:
        response = http.get(f"/api/products?{query}&sort=name&per_page=2&page={page}")
        assert response.status_code == 200, response.text
        skus += [product["sku"] for product in response.json()["items"]]
        if page >= response.json()["pages"]:
            return skus
        page += 1


LISTED_AT_MOST = 20  # matches whose every page is checked, two a page


def assert_exact(http, sql) -> None:
    """Every filter's total is the number of products it matches now, and the pages of a few
    matches list them all, in order (read by the ids kept with the total, where a page found
    them)."""
    catalog = products(sql)
    for query, matches in FILTERS.items():
        assert total(http, query) == sum(map(matches, catalog)), query
        by_name = sorted(filter(matches, catalog), key=lambda p: (p["name"].lower(), p["id"]))
        if len(by_name) <= LISTED_AT_MOST:
            assert listed(http, query) == [product["sku"] for product in by_name], query


def kept_ids(sql, query: str) -> list[int] | None:
    """The ids kept with the total of a filter (None: not kept)."""
    return sql(MATCHES, filters=parse_filters(dict(parse_qsl(query))).key())[0][0]


def kept(sql, filters: Filters):
    """The kept total of the filters: (version, counted_at, total)."""
    return sql(KEPT, filters=filters.key())[0]


def product_id(sql, sku: str) -> int:
    return sql("SELECT id FROM products WHERE sku = :sku", sku=sku)[0][0]


def test_totals_stay_exact_over_creates_edits_and_deletes(http, sql, seeded):
    assert_exact(http, sql)
    created = http.post("/api/products", json={"sku": "NEW-1", "name": "Green widget"}).json()
    assert_exact(http, sql)
    steps = [
        (created["id"], {"name": "Green thing"}),  # out of name=widget
        (created["id"], {"description": "Steel wool"}),  # into description=steel
        (created["id"], {"active": False}),  # from active=true to active=false
        (product_id(sql, "GAD-3"), {"sku": "WID-3"}),  # into sku=wid
        (product_id(sql, "BOX-5"), {"name": "Wooden widget box", "active": True}),
    ]
    for product, fields in steps:
        assert http.patch(f"/api/products/{product}", json=fields).status_code == 200
        assert_exact(http, sql)
    for sku in ("WID-1", "NEW-1"):
        assert http.delete(f"/api/products/{product_id(sql, sku)}").status_code == 204
        assert_exact(http, sql)


def test_the_ids_of_a_small_totals_matches_are_kept_and_carried_over_edits(http, sql, seeded):
    """A text filter's total of few matches keeps their ids once a page has needed them (a
    page that finds every match); an edit adds the products it logged with a matching row;
    pages read by them list what matches now."""
    sql("TRUNCATE product_list_totals")  # not among the tables emptied before each test
    steel = [p["id"] for p in products(sql) if "steel" in p["description"].lower()]
    assert total(http, "description=steel", per_page=50) == len(steel)  # one page holds all
    assert kept_ids(sql, "description=steel") == sorted(steel)
    assert_exact(http, sql)
    for query, matches in FILTERS.items():
        ids = sorted(p["id"] for p in filter(matches, products(sql)))
        searches = parse_filters(dict(parse_qsl(query))).searches()
        assert kept_ids(sql, query) == (ids if searches else None), query  # the rest walk
    hammer, box = product_id(sql, "TOOL-4"), product_id(sql, "BOX-5")
    widgets = kept_ids(sql, "name=widget")

    http.patch(f"/api/products/{hammer}", json={"name": "Widget hammer"})  # into name=widget
    http.patch(f"/api/products/{product_id(sql, 'WID-1')}", json={"name": "Blue gizmo"})  # out
    http.patch(f"/api/products/{box}", json={"description": "Steel box"})  # not a name

    assert listed(http, "name=widget") == ["WID-2", "TOOL-4", "WID-6"]
    assert kept_ids(sql, "name=widget") == sorted({*widgets, hammer})  # a superset: WID-1 too
    assert_exact(http, sql)


def test_a_totals_kept_ids_are_dropped_when_they_grow_past_twice_its_bound(
    http, sql, seeded, db_session, monkeypatch
):
    """Carried over many edits, the ids would grow: past KEPT_IDS_AT_MOST they are dropped,
    and the next page that needs them finds them again."""
    from product_importer.products.service import list_products

    sql("TRUNCATE product_list_totals")
    assert_exact(http, sql)
    monkeypatch.setattr(totals, "KEPT_IDS_AT_MOST", 4)
    for n in range(3):  # three widgets, then six: two more than the bound
        http.post("/api/products", json={"sku": f"WID-{10 + n}", "name": f"Widget {n}"})
    widgets = Filters(name="widget")
    log_conditions = widgets.conditions(totals.EDIT_LOG.c)
    exact = totals.ExactTotal(db_session, widgets.key(), None, log_conditions)
    assert (exact.known, exact.matches) == (6, None)
    db_session.commit()
    page = list_products(db_session, filters=widgets, sort="name", per_page=50)
    db_session.commit()
    assert len(kept_ids(sql, "name=widget")) == 6  # found again by that page
    assert [p.sku for p in page.items] == listed(http, "name=widget")


@pytest.mark.parametrize(
    ("edit", "per_page", "page", "listed"),
    [
        ("create", 3, 1, ["WID-1", "WID-2", "WID-9"]),  # Blue, Red, then the new one
        ("create", 2, 2, ["WID-9", "WID-6"]),  # past the middle: read from the end before
        ("delete", 2, 2, None),  # no page 2 of two widgets
    ],
)
def test_a_page_that_finds_the_ids_lists_and_counts_them_in_the_same_snapshot(
    http, sql, seeded, db_session, edit, per_page, page, listed
):
    """A widget is created (or deleted) after the request carried its total of three and
    before it finds the ids of the matches: its page and its total both see the edit."""
    from sqlalchemy import event

    from product_importer.errors import Invalid
    from product_importer.products.service import list_products

    sql("TRUNCATE product_list_totals")
    assert total(http, "name=widget") == 3  # counted, one a page: no ids kept
    edits = []

    def edit_first(conn, cursor, statement, *args):
        # finding the ids (the carry aggregates logged ids): another request commits first
        if not edits and "array_agg" in statement and "product_edit_log" not in statement:
            if edit == "create":
                sent = http.post("/api/products", json={"sku": "WID-9", "name": "Widget new"})
            else:
                sent = http.delete(f"/api/products/{product_id(sql, 'WID-6')}")
            edits.append(sent.status_code)

    def list_page():
        widgets = Filters(name="widget")
        return list_products(db_session, filters=widgets, sort="name", page=page, per_page=per_page)

    engine = db_session.get_bind()
    event.listen(engine, "before_cursor_execute", edit_first)
    try:
        if listed is None:
            with pytest.raises(Invalid, match="the last page is 1"):
                list_page()
        else:
            found = list_page()
    finally:
        event.remove(engine, "before_cursor_execute", edit_first)
    assert edits == [201 if edit == "create" else 204]
    db_session.commit()
    widgets = [p["id"] for p in products(sql) if "widget" in p["name"].lower()]
    if listed is not None:
        assert (found.total, found.pages) == (4, ceil(4 / per_page))  # not the 3 carried
        assert [p.sku for p in found.items] == listed
    assert sorted(kept_ids(sql, "name=widget")) == sorted(widgets)


def test_a_total_after_an_edit_is_carried_over_it_not_counted_again(http, sql, seeded):
    before = total(http, "name=widget")
    version, counted_at, _ = kept(sql, Filters(name="widget"))
    assert counted_at == version  # counted

    http.patch(f"/api/products/{product_id(sql, 'TOOL-4')}", json={"name": "Widget hammer"})

    assert total(http, "name=widget") == before + 1
    now, counted_at, kept_total = kept(sql, Filters(name="widget"))
    assert (counted_at, kept_total) == (version, before + 1)  # carried from the count
    assert now == sql(VERSION)[0][0] > version
    logged = sql("SELECT sign, name FROM product_edit_log WHERE version > :v", v=version)
    assert sorted(logged) == [(-1, "Hammer"), (1, "Widget hammer")]


def test_an_edit_held_open_is_not_counted_until_it_commits_and_the_next_waits(
    http, sql, seeded, app
):
    from product_importer.extensions import db

    assert_exact(http, sql)
    with app.app_context(), db.engine.connect() as held:
        held.execute(text("UPDATE products SET name = 'Widget box' WHERE sku = 'BOX-5'"))
        assert_exact(http, sql)  # the held edit is not counted, nor carried
        with ThreadPoolExecutor(1) as pool:
            tool = product_id(sql, "TOOL-4")
            patch = pool.submit(http.patch, f"/api/products/{tool}", json={"name": "Widget"})
            Held(
                held, db.engine
            ).wait_until_blocking()  # its statement waits for the catalog version
            held.commit()
            assert patch.result().status_code == 200
    assert_exact(http, sql)
    assert total(http, "name=widget") == 5


@pytest.mark.parametrize("per_page", [1, 200])  # counted, or seen on the last page
def test_a_total_read_while_an_edit_commits_is_kept_at_the_version_it_saw(
    http, sql, seeded, app, per_page
):
    from product_importer.extensions import db

    assert_exact(http, sql)  # totals kept for other filters, the log up to date
    with app.app_context(), db.engine.connect() as held:
        held.execute(text("UPDATE products SET description = 'Fine' WHERE sku = 'WID-2'"))
        # the list reads the version first, then waits for the products until the commit
        held.execute(text("LOCK TABLE products IN ACCESS EXCLUSIVE MODE"))
        with ThreadPoolExecutor(1) as pool:
            reading = pool.submit(total, http, "q=o", per_page)
            Held(held, db.engine).wait_until_blocking()
            held.commit()
            first = reading.result()
    texts = [p["sku"] + p["name"] + p["description"] for p in products(sql)]
    assert first == sum("o" in t.lower() for t in texts) == 4  # with the edit, not without
    http.patch(f"/api/products/{product_id(sql, 'GAD-3')}", json={"name": "Gold gadget"})
    assert total(http, "q=o") == 5  # carried from the kept total, over one edit


def test_no_matches_sought_while_an_edit_commits_are_never_kept_under_the_version_before(
    http, sql, seeded, app
):
    """An edit takes the last match of 'quixotic' away while the list looks for it. Its 0 may
    be kept only at the version after the edit: kept under the version before, the next request
    would carry 0 over that edit (-1 match) to -1."""
    from product_importer.extensions import db

    sql("TRUNCATE product_list_totals")  # not one an earlier test kept
    created = http.post(
        "/api/products", json={"sku": "Q-1", "name": "Q", "description": "Quixotic"}
    )
    assert created.status_code == 201
    assert_exact(http, sql)
    with app.app_context(), db.engine.connect() as held:
        held.execute(text("UPDATE products SET description = 'Plain' WHERE sku = 'Q-1'"))
        held.execute(text("LOCK TABLE products IN ACCESS EXCLUSIVE MODE"))
        with ThreadPoolExecutor(1) as pool:
            reading = pool.submit(total, http, "description=quixotic", 200)
            Held(held, db.engine).wait_until_blocking()
            held.commit()
            assert reading.result() == 0
    after_edit = sql(VERSION)[0][0]
    assert [row[0] for row in sql(KEPT, filters=Filters(description="quixotic").key())] in (
        [],
        [after_edit],
    )
    assert total(http, "description=quixotic") == 0
    assert kept(sql, Filters(description="quixotic"))[2] == 0


@pytest.mark.parametrize("edited", [False, True])
def test_an_empty_page_keeps_its_zero_only_if_the_version_did_not_move(sql, seeded, app, edited):
    """`remember_if_unchanged`: the version read before the page (`seen_version`) is the
    version its 0 is kept under, and only if no change committed since."""
    from product_importer.extensions import db
    from product_importer.products import totals

    sql("TRUNCATE product_list_totals")  # not one an earlier test kept
    nothing = Filters(description="quixotic")
    with app.app_context():
        session = db.session
        exact = totals.ExactTotal(session, nothing.key(), lambda: None, [])
        before = exact.seen_version
        if edited:  # committed by another connection between the page and the check
            sql("UPDATE products SET name = 'Renamed' WHERE sku = 'BOX-5'")
        exact.remember_if_unchanged(0)
        session.rollback()
        session.remove()
    found = sql(KEPT, filters=nothing.key())
    assert found == ([] if edited else [(before, before, 0)])


def test_a_request_that_needs_a_count_waits_for_the_one_counting_and_carries_it(
    http, sql, seeded, app
):
    from product_importer.extensions import db
    from product_importer.products import totals

    filters = Filters(name="widget")
    with app.app_context(), db.engine.connect() as counting:  # as a request counting it
        lock = {"space": totals.COUNT_LOCKS, "filters": filters.key()}
        counting.execute(totals.WAIT_FOR_COUNT, lock)
        with ThreadPoolExecutor(1) as pool:
            reading = pool.submit(total, http, "name=widget")
            Held(counting, db.engine).wait_until_blocking()
            version = sql(VERSION)[0][0]
            sql(
                "INSERT INTO product_list_totals VALUES (:key, :v, 3, :v) ON CONFLICT (filters) "
                "DO UPDATE SET version = :v, total = 3, counted_at = :v",  # left by another test
                key=filters.key(),
                v=version,
            )
            http.patch(f"/api/products/{product_id(sql, 'TOOL-4')}", json={"name": "Widget"})
            counting.commit()
            assert reading.result() == 4  # the count filed meanwhile, carried over the edit
    assert kept(sql, filters)[1] == version  # not counted again


def test_many_rows_changed_without_saying_so_are_still_exact(http, sql, seeded):
    assert_exact(http, sql)
    version, recount_from = sql(VERSION)[0]
    sql("UPDATE products SET name = name || ' widget', active = NOT active")  # logs each row
    assert sql(VERSION)[0][1] == recount_from  # logged, so no recount needed
    assert_exact(http, sql)
    assert kept(sql, Filters(name="widget"))[1] == version  # carried


def test_a_bump_made_outside_the_triggers_marks_a_recount(http, sql, seeded):
    assert_exact(http, sql)
    sql("UPDATE products_version SET version = version + 1")
    version, recount_from = sql(VERSION)[0]
    assert recount_from == version
    assert_exact(http, sql)
    assert kept(sql, Filters(name="widget"))[1] == version  # counted again


def test_the_maintenance_loop_prunes_the_log_and_totals_stay_exact(http, sql, seeded, app):
    from product_importer.imports import maintenance
    from product_importer.products import totals

    assert_exact(http, sql)
    updates = totals.MAX_CARRIED // 2 // len(SEED) + 1  # more rows than a total is carried over
    for _ in range(updates):
        sql("UPDATE products SET description = description || ' steel'")
    assert_exact(http, sql)  # counted again: too long a log to carry
    with app.app_context():  # the worker's maintenance loop may have pruned it first
        maintenance.prune_edit_log()
    version, recount_from = sql(VERSION)[0]
    logged = sql("SELECT min(version), count(*) FROM product_edit_log")[0]
    assert logged[0] > recount_from and logged[1] <= totals.MAX_CARRIED
    assert_exact(http, sql)


@pytest.mark.usefixtures("live_worker")
def test_totals_are_exact_after_an_import_its_undo_and_delete_all(http, sql, seeded):
    assert_exact(http, sql)
    version = sql(VERSION)[0][0]
    rows = [("Widget box", "BOX-5", "Steel box"), ("Wood widget", "NEW-7", "Pine")]
    job = import_csv(http, csv_bytes(rows))
    assert job["status"] == "completed", job
    # the import logged nothing and marked a recount instead
    assert sql("SELECT count(*) FROM product_edit_log WHERE version > :v", v=version)[0][0] == 0
    assert sql(VERSION)[0][1] > version
    assert_exact(http, sql)
    undo = wait_for_job(http, http.post(f"/api/imports/{job['id']}/undo").json()["id"])
    assert undo["status"] == "completed", undo
    assert_exact(http, sql)
    assert http.delete("/api/products?confirm=true").json() == {"deleted": len(SEED)}
    assert_exact(http, sql)
    http.post("/api/products", json={"sku": "WID-9", "name": "Widget"})
    assert_exact(http, sql)


@pytest.mark.usefixtures("live_worker")
def test_totals_are_exact_after_a_bulk_import(http, sql, seeded):
    assert_exact(http, sql)
    table = sql(OID)
    generated = generate(12_000)
    job = import_csv(http, generated.data, timeout=120)
    assert job["status"] == "completed", job
    assert sql(OID) != table  # built anew and switched in
    assert sql("SELECT count(*) FROM products")[0][0] == len(generated.expected) + len(SEED)
    assert_exact(http, sql)
    http.patch(f"/api/products/{product_id(sql, 'BOX-5')}", json={"name": "Widget"})
    assert_exact(http, sql)
