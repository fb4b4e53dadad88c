"""GET /api/products: filters, sorting, pages and totals, in both modes (`api`)."""

import re
import unicodedata
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, text

from tests.helpers import SESSION_SETTINGS, pooled_settings


@pytest.fixture
def catalog(any_engine):
    """Eleven products written in one statement, as an import writes them (same updated_at)."""
    rows = [
        ("WID-001", "Blue widget", "Made of steel", True),
        ("wid-002", "blue Widget XL", "Made of wood", True),
        ("GAD-003", "Red gadget", "Steel and glass", False),
        ("gad-004", "Green gadget", "100% recycled_paper", True),
        ("TOOL-005", "Hammer", "Forged STEEL head", True),
        ("tool-006", "Saw", "Wood handle", False),
        ("BOX_007", "Box 50%", "Cardboard", True),
        ("CRATE-008", "Crate", "Pine wood\r\nwith lid", True),
        ("MISC-010", "Widget stand", "For widgets", True),
        ("MISC-011", "Clamp", "Cast iron", False),
        ("MISC-012", "Vice", "Back\\slash", True),
    ]
    with any_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO products (sku, name, description, active) VALUES (:s, :n, :d, :a)"),
            [{"s": s, "n": n, "d": d, "a": a} for s, n, d, a in rows],
        )
    return rows


def skus(api, query: str = "") -> list[str]:
    response = api.get(f"/api/products?per_page=200&{query}")
    assert response.status_code == 200, response.get_json()
    return [product["sku"] for product in response.get_json()["items"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sku=wid", {"WID-001", "wid-002"}),
        ("sku=WID-00", {"WID-001", "wid-002"}),
        ("name=WIDGET", {"WID-001", "wid-002", "MISC-010"}),
        ("description=steel", {"WID-001", "GAD-003", "TOOL-005"}),
        ("description=wood", {"wid-002", "tool-006", "CRATE-008"}),
        ("q=widget", {"WID-001", "wid-002", "MISC-010"}),
        ("q=steel", {"WID-001", "GAD-003", "TOOL-005"}),
        ("q=box", {"BOX_007"}),
        ("q=crate", {"CRATE-008"}),
        ("active=false", {"GAD-003", "tool-006", "MISC-011"}),
        ("active=true&name=gadget", {"gad-004"}),
        ("name=gadget&description=steel", {"GAD-003"}),
        ("sku=%20wid%20", {"WID-001", "wid-002"}),  # the term is trimmed
        ("sku=&name=", None),  # empty text filters: every product
        # LIKE's wildcards are matched as themselves
        ("name=50%25", {"BOX_007"}),
        ("sku=_", {"BOX_007"}),
        ("description=100%25", {"gad-004"}),
        ("description=d_p", {"gad-004"}),
        ("description=k%5Cs", {"MISC-012"}),
        ("description=with%20lid", {"CRATE-008"}),
        ("name=nothing-like-this", set()),
    ],
)
def test_filters_match_substrings_ignoring_case(api, catalog, query, expected):
    expected = expected if expected is not None else {row[0] for row in catalog}
    assert set(skus(api, query)) == expected
    body = api.get(f"/api/products?{query}").get_json()
    assert body["total"] == len(expected)


def test_non_ascii_text_matches_ignoring_case(api, catalog):
    response = api.post(
        "/api/products", json={"sku": "ÉCLAIR-9", "name": "Éclair", "description": "Pâtisserie"}
    )
    assert response.status_code == 201
    assert skus(api, "sku=éclair") == ["ÉCLAIR-9"]
    assert skus(api, "description=PÂTISSERIE") == ["ÉCLAIR-9"]
    assert api.post("/api/products", json={"sku": "éclair-9", "name": "x"}).status_code == 409


def test_a_term_with_its_accent_written_decomposed_finds_the_composed_text(api, catalog):
    """A term pasted from a macOS file (e + U+0301) finds what a browser typed (U+00E9)."""
    fields = {"sku": "CRÈME-1", "name": "Café crème", "description": "Brûlée"}
    assert api.post("/api/products", json=fields).status_code == 201

    for field, term in [
        ("sku", "crème"),
        ("name", "café"),
        ("description", "BRÛLÉE"),
        ("q", "é c"),
    ]:
        query = f"{field}={quote(unicodedata.normalize('NFD', term))}"
        assert skus(api, query) == ["CRÈME-1"]
        export = api.get(f"/api/products/export.csv?{query}").get_data(as_text=True)
        assert export.splitlines()[1:] == ["CRÈME-1,Café crème,Brûlée,true"]


# Letters whose lower case is special: a final sigma, a dotted capital I, the Kelvin sign
# (lowered to 'k'), a sharp s, a title-case digraph, a ligature.
UNUSUAL_DESCRIPTIONS = ("ΣΟΦΊΑΣ σοφίας", "İstanbul", "5 K and 7 k", "Straße", "ǅemal", "ﬁne")
UNUSUAL_TERMS = ("σοφίας", "ΣΟΦΊΑΣ", "istanbul", "İSTANBUL", "5 k", "STRASSE", "ß", "ǆ", "ﬁ", "fi")


def test_a_description_matches_a_term_as_ilike_does_whatever_their_letters(api, any_engine):
    """The filter reads the description's lowered copy (`description_lower`): it finds what
    `description ILIKE '%term%'` finds, for letters that lower in unusual ways too, and follows
    an edit of the description."""
    from urllib.parse import quote

    from sqlalchemy import select

    from product_importer.products.models import Product

    for n, description in enumerate(UNUSUAL_DESCRIPTIONS):
        product = {"sku": f"U-{n}", "name": "Unusual", "description": description}
        assert api.post("/api/products", json=product).status_code == 201

    def ilike(term: str) -> set[str]:
        with any_engine.connect() as conn:
            matching = Product.description.ilike(f"%{term}%")
            return set(conn.scalars(select(Product.sku).where(matching)))

    found = {term: set(skus(api, f"description={quote(term)}")) for term in UNUSUAL_TERMS}
    assert found == {term: ilike(term) for term in UNUSUAL_TERMS}
    assert found["σοφίας"] == found["ΣΟΦΊΑΣ"] == {"U-0"}  # not every term finds nothing
    edited = api.patch(f"/api/products/{product_id(api, 'U-3')}", json={"description": "Gasse"})
    assert edited.status_code == 200
    assert skus(api, "description=gasse") == ["U-3"]
    assert skus(api, "description=straße") == []


def product_id(api, sku: str) -> int:
    return api.get(f"/api/products?sku={sku}").get_json()["items"][0]["id"]


@pytest.mark.parametrize(
    ("sort", "first", "last"),
    [
        ("sku", "BOX_007", "wid-002"),
        ("-sku", "wid-002", "BOX_007"),
        ("name", "WID-001", "MISC-010"),  # lower(name): 'blue widget' .. 'widget stand'
        ("-name", "MISC-010", "WID-001"),
        ("updated_at", "WID-001", "MISC-012"),  # equal times: ties go by id
        ("-updated_at", "MISC-012", "WID-001"),
    ],
)
def test_sort_orders_and_breaks_ties_by_id(api, catalog, sort, first, last):
    found = skus(api, f"sort={sort}")
    assert (found[0], found[-1], len(found)) == (first, last, 11)


def test_sku_sort_ignores_case(api, catalog):
    assert skus(api, "sort=sku&sku=wid") == ["WID-001", "wid-002"]
    assert skus(api, "sort=sku&sku=gad") == ["GAD-003", "gad-004"]


def test_the_default_order_is_newest_change_first(api, catalog):
    product = api.get("/api/products?sku=GAD-003").get_json()["items"][0]
    api.patch(f"/api/products/{product['id']}", json={"name": "Red gadget 2"})
    assert skus(api)[0] == "GAD-003"


def test_pages_cover_every_product_once_with_totals(api, catalog):
    seen = []
    for page in (1, 2, 3):
        body = api.get(f"/api/products?per_page=5&page={page}&sort=name").get_json()
        assert (body["page"], body["per_page"], body["total"], body["pages"]) == (page, 5, 11, 3)
        seen += [product["sku"] for product in body["items"]]
    assert len(seen) == len(set(seen)) == 11
    assert seen == skus(api, "sort=name")


@pytest.mark.parametrize("sort", ["sku", "-sku", "name", "-updated_at", "updated_at"])
def test_the_last_pages_read_from_the_other_end_match_the_first(api, catalog, sort):
    every = skus(api, f"sort={sort}")
    for per_page in (1, 5, 7):
        pages = -(-11 // per_page)
        found = []
        for page in range(1, pages + 1):
            body = api.get(f"/api/products?per_page={per_page}&page={page}&sort={sort}")
            found += [product["sku"] for product in body.get_json()["items"]]
        assert found == every, (sort, per_page)


@pytest.mark.parametrize(
    ("term", "numbers"), [("gad", range(200, 0, -1)), ("wid", range(400, 200, -1))]
)
def test_every_page_of_a_term_of_the_oldest_or_the_newest_products_is_in_order(
    api, any_engine, term, numbers
):
    """Whether a page is found by walking the newest-first order or among every match sorted
    (on PostgreSQL the walk stops after as many products as there are matches), it holds the
    right ones. SQLite keeps no totals: there every page is looked up and counted."""
    with any_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO products (sku, name, description) VALUES (:sku, :name, 'Plain')"),
            [
                {"sku": f"{'GAD' if i <= 200 else 'WID'}-{i:04}", "name": f"Product {i}"}
                for i in range(1, 401)
            ],
        )
    api.get(f"/api/products?sku={term}&per_page=10")  # PostgreSQL keeps the total it counts
    listed = []
    for page in range(1, 21):
        body = api.get(f"/api/products?sku={term}&per_page=10&page={page}").get_json()
        assert (body["total"], body["pages"]) == (200, 20)
        listed += [product["sku"] for product in body["items"]]
    assert listed == [f"{term.upper()}-{i:04}" for i in numbers]


def test_filtered_pages_give_totals_too(api, catalog):
    first = api.get("/api/products?active=true&per_page=3").get_json()
    last = api.get("/api/products?active=true&per_page=3&page=3").get_json()
    assert (first["total"], first["pages"], len(first["items"])) == (8, 3, 3)
    assert (last["total"], last["pages"], len(last["items"])) == (8, 3, 2)
    middle = api.get("/api/products?q=o&per_page=2&page=2").get_json()
    assert middle["total"] == len(skus(api, "q=o"))


def test_an_empty_catalog_has_one_empty_page(api):
    body = api.get("/api/products").get_json()
    assert body == {
        "items": [],
        "page": 1,
        "per_page": 50,
        "total": 0,
        "pages": 1,  # was 0: page 1 of 0, where the other lists say 1
    }
    assert api.get("/api/products?name=x").get_json()["total"] == 0


@pytest.mark.parametrize("any_app", ["production"], indirect=True)  # kept totals: PostgreSQL
def test_a_filter_kept_at_no_matches_finds_the_first_product_that_matches(api, catalog):
    for _ in range(2):  # counted, then known to match nothing
        assert api.get("/api/products?name=sprocket").get_json()["items"] == []
    created = api.post("/api/products", json={"sku": "SPR-1", "name": "Sprocket"})
    assert created.status_code == 201
    body = api.get("/api/products?name=sprocket").get_json()
    assert ([item["sku"] for item in body["items"]], body["total"]) == (["SPR-1"], 1)


@pytest.mark.parametrize("any_app", ["production"], indirect=True)  # kept totals: PostgreSQL
def test_a_page_read_again_for_a_change_meanwhile_shows_the_products_new_values(
    api, any_engine, sql
):
    """The catalog changed between a page's total and its rows: the page is read again, and
    the products read the first time kept their old values in their new places (a product
    renamed to "Widget ZZZ" listed last, still named "Widget A")."""
    for sku, name in [("W-1", "Widget A"), ("W-2", "Widget B"), ("W-3", "Widget C")]:
        assert api.post("/api/products", json={"sku": sku, "name": name}).status_code == 201
    listed = "/api/products?name=widget&sort=name"
    for _ in range(3):  # counted, kept, then its matches kept: the page is read by their ids
        api.get(listed)
    [(renamed,)] = sql("SELECT id FROM products WHERE sku = 'W-1'")

    def rename_once(conn, cursor, statement, *_):
        if " listed" in statement and not renamed_already:  # the page was read by its ids
            renamed_already.append(True)
            sql("UPDATE products SET name = 'Widget ZZZ' WHERE id = :id", id=renamed)

    renamed_already = []
    event.listen(any_engine, "after_cursor_execute", rename_once)
    try:
        page = api.get(listed).get_json()
    finally:
        event.remove(any_engine, "after_cursor_execute", rename_once)

    assert renamed_already
    assert [item["name"] for item in page["items"]] == ["Widget B", "Widget C", "Widget ZZZ"]


@pytest.mark.parametrize("any_app", ["production"], indirect=True)  # kept totals: PostgreSQL
def test_filtered_totals_follow_every_change_to_the_catalog(api, catalog, db_session):
    def total(query: str) -> int:
        # two per page, so the total is counted rather than seen on the last page
        return api.get(f"/api/products?{query}&per_page=2").get_json()["total"]

    before = total("description=e")
    assert before == len(skus(api, "description=e")) > 2
    # counted once, then kept for every web process until the catalog changes
    kept = db_session.execute(text("SELECT filters, total FROM product_list_totals")).all()
    assert [total for filters, total in kept if '"description": "e"' in filters] == [before]
    assert total("description=e") == before

    created = api.post("/api/products", json={"sku": "NEW-1", "name": "n", "description": "e"})
    assert total("description=e") == before + 1
    api.patch(f"/api/products/{created.get_json()['id']}", json={"description": "xyz"})
    assert total("description=e") == before
    api.patch(f"/api/products/{created.get_json()['id']}", json={"description": "eee"})
    assert total("description=e") == before + 1
    api.delete(f"/api/products/{created.get_json()['id']}")
    assert total("description=e") == before


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("per_page=0", "per_page"),
        ("per_page=201", "per_page"),
        ("per_page=ten", "per_page"),
        ("per_page=-5", "per_page"),
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=1.5", "page"),
        ("page=99999999999999999999", "page"),
        ("page=%C2%B2", "page"),  # "²": a digit to str.isdigit(), not to int()
        ("per_page=%D9%A3", "per_page"),  # Arabic-Indic three
        ("page=4&per_page=5", "page"),  # 11 products: 3 pages
        ("page=2&name=nothing", "page"),
        ("page=3&name=gadget&per_page=1", "page"),  # 2 match
        ("sort=price", "sort"),
        ("sort=--sku", "sort"),
        ("active=maybe", "active"),
        ("active=FALSE", "active"),  # the document's enum is lower case
        ("active=%1C", "active"),  # not trimmed away: a control character is not blank
        ("sort=%1C", "sort"),  # not trimmed away: a control character is no sort
        ("name=%00", "name"),
        ("q=%1F", "q"),
    ],
)
def test_out_of_range_arguments_are_422(api, catalog, query, field):
    response = api.get(f"/api/products?{query}")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert (error["code"], set(error["details"])) == ("invalid", {field})


@pytest.mark.parametrize(
    "query",
    [
        "active=",  # a form's blank "any" choice
        "sort=",
        "page=",
        "per_page=",
        "active=%20&sort=%09&page=%20%20&per_page=%E3%80%80",  # blank, as text filters trim
    ],
)
def test_an_argument_sent_empty_is_taken_as_left_out(api, catalog, query):
    """As an empty text filter is no filter: every product, first page, default size and order."""
    response = api.get(f"/api/products?{query}")

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["total"], body["page"], body["per_page"]) == (len(catalog), 1, 50)
    assert [item["sku"] for item in body["items"]] == skus(api)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("active=yes", "The filters are not valid; see details."),
        ("sort=price", "Unknown sort 'price'."),
        ("page=%201", "page must be a whole number."),  # blank is left out; padded is not
        ("per_page=x", "per_page must be a whole number."),
    ],
)
def test_an_argument_not_blank_is_still_checked(api, query, says):
    response = api.get(f"/api/products?{query}")
    assert (response.status_code, response.get_json()["error"]["message"]) == (422, says)


@pytest.mark.parametrize(
    ("page", "says"),
    [
        ("0", "page must be 1 or more."),
        ("10000001", "page must be from 1 to 10,000,000."),  # past any there can be
        ("99999999", "page must be from 1 to 10,000,000."),  # not "1 or more"
        ("1000000000", "page must be from 1 to 10,000,000."),  # not "page is out of range."
        ("99999999999999999999", "page must be from 1 to 10,000,000."),
    ],
)
def test_a_page_out_of_range_says_which_way(api, page, says):
    response = api.get(f"/api/products?page={page}")
    assert (response.status_code, response.get_json()["error"]["message"]) == (422, says)


@pytest.mark.parametrize("per_page", ["201", "1000000000"])
def test_a_page_size_out_of_range_names_the_range_however_large(api, per_page):
    response = api.get(f"/api/products?per_page={per_page}")
    error = response.get_json()["error"]
    assert (response.status_code, error["message"]) == (422, "per_page must be from 1 to 200.")
    assert error["details"] == {"per_page": "From 1 to 200."}


def test_per_page_200_is_allowed(api, catalog):
    assert api.get("/api/products?per_page=200").get_json()["per_page"] == 200


@pytest.mark.parametrize("any_app", ["production"], indirect=True)  # PostgreSQL's planner
def test_a_list_plans_without_jit_and_with_room_for_exact_bitmaps_for_its_transaction_only(
    catalog, db_session
):
    """Both settings were measured at 5M products (`database.plan_for_lists`)."""
    from product_importer.extensions import db
    from product_importer.products.service import Filters, list_products

    # in the list's own transaction, so on its connection
    before_pid, *before = db_session.execute(SESSION_SETTINGS).one()

    page = list_products(db_session, filters=Filters(description="steel"))

    assert page.total == 3
    pid, jit, work_mem, _ = db_session.execute(SESSION_SETTINGS).one()
    assert pid == before_pid
    # work_mem is raised to 32MB, never lowered (a connection may hold more)
    assert (jit, work_mem) == ("off", max(before[1], 32 * 1024 * 1024))
    db_session.commit()  # a SET of the session (not the transaction) would outlive a commit
    assert pooled_settings(db.engine, pid) == before


@contextmanager
def page_plans(engine):
    """Collect what the list runs: its statements, and the plan of each page query as it runs."""
    from sqlalchemy import event

    seen = {"statements": [], "plans": []}

    def explain_pages(conn, cursor, statement, parameters, context, executemany):
        seen["statements"].append(statement)
        page = statement.startswith(("SELECT products.id", "SELECT walk.id"))
        if page and " LIMIT " in statement:
            explained = cursor.connection.execute("EXPLAIN " + statement, parameters)
            seen["plans"].append("\n".join(row[0] for row in explained))

    event.listen(engine, "before_cursor_execute", explain_pages)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", explain_pages)


def plan_asked(seen: dict) -> int:
    return sum(statement.startswith("EXPLAIN") for statement in seen["statements"])


def counted(seen: dict) -> int:
    """How many statements counted the products that match (the filter is a LIKE or ILIKE)."""
    return sum("count(*)" in q and searches(q) for q in seen["statements"])


@pytest.fixture
def without_kept_ids(monkeypatch):
    """Pages looked up as for a term of more matches than a kept total keeps the ids of
    (`totals.MATCHES_AT_MOST`): these tests' catalogs are small, their terms' totals too."""
    from product_importer.products import totals

    monkeypatch.setattr(totals, "MATCHES_AT_MOST", 0)


def searches(statement: str) -> bool:
    """Whether a statement matches a text filter (ILIKE, or LIKE on the lowered description)."""
    return " ILIKE " in statement or " LIKE " in statement


def reads_products(statement: str) -> bool:
    """Whether a statement reads the products (not only the version, totals or edit log)."""
    return not statement.startswith("EXPLAIN") and bool(re.search(r"FROM products\b", statement))


def gadgets(sql, every: int) -> None:
    """20,000 products, S-7 and one in `every` after it named 'Gadget ..', analyzed (autovacuum
    off until reset)."""
    sql("ALTER TABLE products SET (autovacuum_enabled = false)")
    sql(
        "INSERT INTO products (sku, name, description) "
        f"SELECT 'S-' || i, CASE WHEN i % {every} = {7 % every} THEN 'Gadget ' ELSE 'Widget ' END "
        "|| i, 'Plain' FROM generate_series(1, 20000) AS i"
    )
    sql("ANALYZE products")


def test_a_term_that_matches_nothing_is_searched_for_once(db_session, sql):
    """A first page with no rows gives the total, 0, without a count; it is kept (under the
    version read before the page, unchanged after it), so the next request searches nothing.
    """
    from product_importer.extensions import db
    from product_importer.products.service import Filters, list_products

    gadgets(sql, every=20)
    nothing = Filters(description="quixotic")
    for request in range(2):
        with plans_of_searches(db.engine) as seen:
            page = list_products(db_session, filters=nothing)
            db_session.commit()
        assert (page.items, page.total) == ([], 0)
        searched = [s for s in seen["statements"] if reads_products(s) and searches(s)]
        assert len(searched) == (1 if request == 0 else 0), searched
        assert counted(seen) == 0  # the empty page told the total


@pytest.mark.usefixtures("without_kept_ids")
def test_a_page_of_few_matches_comes_through_the_search_index_not_the_sort_order(db_session, sql):
    """The planner overestimates a rare term; its exact total, counted first, says so.

    20,000 products are analyzed while 1,000 names hold 'gadget', then all but three renamed.
    Asked alone, the planner would walk the `updated_at` order looking for 50 matches (reading
    all 20,000: there are three). The list sees the walk in the plan and counts them first,
    then takes every match (by the name's trigram index, or at this size a scan of the table)
    and sorts them; the next request finds the total kept.
    """
    from product_importer.extensions import db
    from product_importer.products.service import Filters, list_products

    page_query = (
        "SELECT * FROM products WHERE name ILIKE '%gadget%' "
        "ORDER BY updated_at DESC, id DESC LIMIT 50"
    )
    try:
        gadgets(sql, every=20)
        sql(
            "UPDATE products SET name = 'Widget ' || id "
            "WHERE name LIKE 'Gadget%' AND sku NOT IN ('S-7', 'S-207', 'S-2007')"
        )
        alone = "\n".join(row[0] for row in sql("EXPLAIN " + page_query))
        pages, settings, runs = [], [], []
        for _ in range(2):  # counted, then kept
            with page_plans(db.engine) as seen:
                pages.append(list_products(db_session, filters=Filters(name="gadget")))
                settings.append(db_session.execute(text("SHOW enable_indexscan")).scalar())
                db_session.commit()
            runs.append(seen)
    finally:
        sql("ALTER TABLE products RESET (autovacuum_enabled)")

    assert "Index Scan Backward using ix_products_updated_at_id" in alone  # the walk
    expected = ["S-2007", "S-207", "S-7"]  # newest first, by id on the same updated_at
    for page in pages:
        assert ([p.sku for p in page.items], page.total) == (expected, 3)
    first, second = runs
    # the first request asks for the plan and counts; the second finds the total kept
    assert [plan_asked(first), counted(first)] == [1, 1]
    assert [plan_asked(second), counted(second)] == [0, 0]
    for run in runs:
        (plan,) = run["plans"]
        assert "ix_products_updated_at_id" not in plan
        assert "Sort Key: updated_at DESC, id DESC" in plan
    assert settings == ["on", "on"]  # index scans were off for the page query only


def test_the_pages_of_a_common_term_still_walk_the_sort_order(db_session, sql):
    """A quarter of the products match: the first and the last page each walk one end."""
    from product_importer.extensions import db
    from product_importer.products.service import Filters, list_products

    try:
        gadgets(sql, every=4)
        with page_plans(db.engine) as seen:
            for page in (1, 1, 100):  # counted, kept, the last page (5,000 / 50)
                found = list_products(db_session, filters=Filters(name="gadget"), page=page)
                assert (len(found.items), found.total) == (50, 5000)
                db_session.commit()
    finally:
        sql("ALTER TABLE products RESET (autovacuum_enabled)")

    assert len(seen["plans"]) == 3
    for plan in seen["plans"]:
        assert "Index Scan" in plan and "using ix_products_updated_at_id" in plan
    assert "Index Scan Backward" not in seen["plans"][2]  # the last page, from the other end


@pytest.mark.usefixtures("without_kept_ids")
@pytest.mark.parametrize("field", ["description", "q"])
def test_two_common_words_walk_the_sort_order_not_every_candidate(db_session, sql, field):
    """'owner culture': each word is in half of the 20,000 descriptions, the two together in
    one in forty. The index hands the recheck the quarter that holds both words (~5,000), far
    more than the 500 matches; walking the newest products finds the first page's 50 in ~2,000.
    So the page walks the sort order, bounded by the candidates, not by the matches."""
    from product_importer import database
    from product_importer.extensions import db
    from product_importer.products.service import Filters, list_products

    sql(
        "INSERT INTO products (sku, name, description) "
        "SELECT 'S-' || i, 'Gadget ' || i, CASE "
        "  WHEN i % 40 = 0 THEN 'x' || i || ' Owner Culture y' "
        "  WHEN i % 4 = 1 THEN 'culture ' || i || ' owner' "
        "  WHEN i % 2 = 0 THEN 'owner ' || i ELSE 'culture ' || i END "
        "FROM generate_series(1, 20000) AS i"
    )
    sql("ANALYZE products")
    database.of(db_session)._statistics.clear()  # this catalog's sample, not an earlier test's
    filters = Filters(**{field: "owner culture"})
    list_products(db_session, filters=filters)  # counted, then kept
    db_session.commit()
    with page_plans(db.engine) as seen:
        page = list_products(db_session, filters=filters)
        db_session.commit()

    rows = sql(
        "SELECT sku FROM products WHERE description ILIKE '%owner culture%' "
        "ORDER BY updated_at DESC, id DESC LIMIT 50"
    )
    assert ([product.sku for product in page.items], page.total) == ([s for (s,) in rows], 500)
    assert page_kinds(seen) == ["walk"]

    # by SKU a walk would read a page of the table per product: bounded by the matches again
    with page_plans(db.engine) as seen:
        by_sku = list_products(db_session, filters=filters, sort="sku")
        db_session.commit()
    rows = sql(
        "SELECT sku FROM products WHERE description ILIKE '%owner culture%' "
        "ORDER BY lower(sku), id LIMIT 50"
    )
    assert [product.sku for product in by_sku.items] == [s for (s,) in rows]
    assert page_kinds(seen) == ["sorted"]


def page_kinds(seen: dict) -> list[str]:
    """Each page query the list ran: a walk of the sort order, or every match sorted."""
    page_queries = ("SELECT products.id", "SELECT walk", "SELECT matches")
    pages = [s for s in seen["statements"] if s.startswith(page_queries)]
    return ["walk" if s.startswith("SELECT walk") else "sorted" for s in pages]


@pytest.mark.usefixtures("without_kept_ids")
@pytest.mark.parametrize(
    ("matching", "queries"),
    [
        ("i <= 2000", ["walk", "sorted"]),
        ("i > 18000", ["walk"]),
        ("i % 40 = 0", ["sorted"]),
    ],
    ids=["the oldest", "the newest", "spread thin"],
)
def test_a_walk_of_the_sort_order_reads_no_more_products_than_there_are_matches(
    db_session, sql, matching, queries
):
    """SKUs numbered in the order they were added: the newest page of an old number is at the
    far end of the newest-first order. Its walk stops after as many products as there are
    matches (2,000 of 20,000), then the matches are found through the index and sorted; the
    page of new numbers is found by the walk alone. 500 matches spread evenly would need a walk
    of 2,000 products, four times their number: they are sorted at once. Every page, in every
    sort, is the one ORDER BY gives."""
    from product_importer import database
    from product_importer.extensions import db
    from product_importer.products.service import Filters, list_products

    sql(
        "INSERT INTO products (sku, name, description) "
        f"SELECT CASE WHEN {matching} THEN 'Gadget-' ELSE 'Widget-' END || i, "
        "md5(i::text), 'Plain' FROM generate_series(1, 20000) AS i"
    )
    sql("ANALYZE products")
    database.of(db_session)._statistics.clear()  # this catalog's count, not an earlier test's
    gadgets = Filters(sku="gadget")
    total = list_products(db_session, filters=gadgets).total  # counted, then kept
    db_session.commit()
    walks = {}
    for sort in ("-updated_at", "name", "sku"):
        with page_plans(db.engine) as seen:
            page = list_products(db_session, filters=gadgets, sort=sort)
            db_session.commit()
        pages = [
            s for s in seen["statements"] if s.startswith(("SELECT products.id", "SELECT walk"))
        ]
        # by name (an md5: the matches spread evenly) or SKU ('gadget-' first) the walk finds
        # its page
        expected = queries if sort == "-updated_at" else queries[:1]
        assert ["walk" if "walk" in statement else "sorted" for statement in pages] == expected
        if queries[0] == "walk":
            walks[sort] = seen["plans"][0]
        if sort == "-updated_at":
            newest = sql(
                "SELECT sku FROM products WHERE sku ILIKE '%gadget%' ORDER BY id DESC LIMIT 50"
            )
            assert [p.sku for p in page.items] == [sku for (sku,) in newest]

    assert total == (500 if "40" in matching else 2000)
    for walk in walks.values():
        above, below = walk.split("Subquery Scan")
        assert "Sort" not in above  # the walk's rows come in the page's order: it can stop
        assert "Limit  " in below  # and it reads at most as many products as there are matches
    if walks:
        assert "Index Scan Backward using ix_products_updated_at_id" in walks["-updated_at"]
        assert "using ix_products_lower_name_id" in walks["name"]
    order = {
        "-updated_at": "id DESC",
        "sku": "lower(sku), id",
        "-name": "lower(name) DESC, id DESC",
    }
    for sort, by in order.items():
        rows = sql(f"SELECT sku FROM products WHERE sku ILIKE '%gadget%' ORDER BY {by}")
        assert every_page(db_session, gadgets, sort, per_page=50) == [sku for (sku,) in rows]


@contextmanager
def plans_of_searches(engine):
    """Collect the statements the list runs, and the plan of each that matches a text term."""
    from sqlalchemy import event

    seen = {"statements": [], "plans": []}  # plans: (statement, plan), in the order run

    def explain(conn, cursor, statement, parameters, context, executemany):
        seen["statements"].append(statement)
        if searches(statement) and not statement.startswith("EXPLAIN"):
            explained = cursor.connection.execute("EXPLAIN " + statement, parameters)
            seen["plans"].append((statement, "\n".join(row[0] for row in explained)))

    event.listen(engine, "before_cursor_execute", explain)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", explain)


PLANNER_SETTINGS = (
    "SELECT current_setting('parallel_setup_cost'), current_setting('min_parallel_table_scan_size')"
)


def test_q_tests_each_row_first_against_the_field_that_holds_its_term_most_often(db_session, sql):
    """PostgreSQL tests an OR's conditions in order and stops at the first that holds: `q`
    puts first the field whose sampled values hold the term most often: the description for a
    word of a third of the descriptions, the name for a word of every name, the SKU for a SKU's
    prefix; and finds what ILIKE finds either way."""
    from product_importer import database
    from product_importer.extensions import db
    from product_importer.products.service import Filters, list_products

    sql(
        "INSERT INTO products (sku, name, description) "
        "SELECT 'S-' || i, 'Gadget ' || i, CASE WHEN i % 3 = 0 THEN 'Old church ' "
        "ELSE 'Plain ' END || md5(i::text) FROM generate_series(1, 3000) AS i"
    )
    sql("ANALYZE products")
    database.of(db_session)._statistics.clear()  # this catalog's sample, not an earlier test's
    found = {}
    with plans_of_searches(db.engine) as seen:
        for term in ("church", "gadget", "S-12"):
            found[term] = list_products(db_session, filters=Filters(q=term)).total
    db_session.commit()

    [word, name, prefix] = [
        statement
        for statement in seen["statements"]
        if "count(*)" in statement and not statement.startswith("EXPLAIN")
    ]
    assert word.index("description_lower LIKE") < word.index("sku ILIKE")
    assert name.index("name ILIKE") < name.index("sku ILIKE")
    assert prefix.index("sku ILIKE") < prefix.index("description_lower LIKE")
    for term, total in found.items():
        like = f"'%{term}%'"
        matches = f"sku ILIKE {like} OR name ILIKE {like} OR description ILIKE {like}"
        assert total == sql(f"SELECT count(*) FROM products WHERE {matches}")[0][0]
    assert found == {"church": 1000, "gadget": 3000, "S-12": 111}


@pytest.mark.usefixtures("without_kept_ids")
def test_a_term_whose_trigram_is_in_most_descriptions_is_read_in_two_processes(db_session, sql):
    """'e. t' is in one description in 500, but its one trigram ('  t', a word that starts with
    t) in all of them: PostgreSQL, expecting few rows, would read the two halves of the index
    one after the other, and their recheck tests every row. Its count, and a page that sorts
    every match, read the halves side by side; a term whose trigram is rare is planned as
    PostgreSQL plans it. Totals and pages are those of ILIKE, and the planner's settings are as
    they were once each request is over."""
    from product_importer import database
    from product_importer.extensions import db
    from product_importer.products.service import Filters, list_products

    sql(
        "INSERT INTO products (sku, name, description) "
        "SELECT 'S-' || i, 'Gadget ' || i, CASE WHEN i % 500 = 0 THEN 'Large. Tall tree ' "
        "ELSE 'Large tall tree ' END || md5(i::text) FROM generate_series(1, 20000) AS i"
    )
    for half in (0, 1):  # into the index proper, as VACUUM would: PostgreSQL then expects it cheap
        sql(f"SELECT gin_clean_pending_list('ix_products_description_lower_trgm_{half}'::regclass)")
    sql("ANALYZE products")
    database.of(db_session)._statistics.clear()  # this catalog's sample, not an earlier test's
    before = db_session.execute(text(PLANNER_SETTINGS)).one()
    term = Filters(description="e. t")
    with plans_of_searches(db.engine) as seen:
        first = list_products(db_session, filters=term, per_page=10)
        deep = list_products(db_session, filters=term, page=3, per_page=10)  # past the walk
        after = db_session.execute(text(PLANNER_SETTINGS)).one()
    db_session.commit()

    rows = sql("SELECT sku FROM products WHERE description ILIKE '%e. t%' ORDER BY id DESC")
    assert first.total == deep.total == len(rows) == 40
    assert [product.sku for product in deep.items] == [sku for (sku,) in rows[20:30]]
    counts = [plan for statement, plan in seen["plans"] if "count(*)" in statement]
    pages = [
        plan
        for statement, plan in seen["plans"]
        if statement.startswith("SELECT matches.id")  # every match, sorted
    ]
    assert (len(counts), len(pages)) == (1, 2)
    for plan in counts + pages:
        assert "Parallel Append" in plan
        assert plan.count("Bitmap Index Scan on ix_products_description_lower_trgm_") == 2
    assert after == before

    with plans_of_searches(db.engine) as seen:
        rare = list_products(db_session, filters=Filters(description="e. x"))
    db_session.commit()
    assert rare.total == 0
    assert not any("parallel_setup_cost" in statement for statement in seen["statements"])


def test_a_small_catalog_is_read_in_one_process_whatever_its_trigrams(db_session, sql):
    """Every description of 2,000 products holds the one trigram of 'e. t': rechecking them
    all is short, and the planner's settings are left alone."""
    from product_importer import database
    from product_importer.extensions import db
    from product_importer.products.service import Filters, list_products

    sql(
        "INSERT INTO products (sku, name, description) "
        "SELECT 'S-' || i, 'Gadget ' || i, CASE WHEN i % 50 = 0 THEN 'Large. Tall tree' "
        "ELSE 'Large tall tree' END FROM generate_series(1, 2000) AS i"
    )
    sql("ANALYZE products")
    database.of(db_session)._statistics.clear()
    with plans_of_searches(db.engine) as seen:
        listed = list_products(db_session, filters=Filters(description="e. t"), page=3, per_page=10)
    db_session.commit()

    assert listed.total == 40
    assert not any("parallel_setup_cost" in statement for statement in seen["statements"])


def common_words(sql, db_session) -> None:
    """20,000 products: 'behavior', 'owner' and 'culture' each in one description in five, the
    phrase in 20 (and 20 more with LIKE's wildcards and a dotted I between the words, 20 with
    other characters there), analyzed."""
    from product_importer import database

    sql(
        "INSERT INTO products (sku, name, description) "
        "SELECT 'S-' || i, 'Gadget ' || i, concat_ws(' ', "
        "  CASE WHEN i % 5 = 0 THEN 'behavior' ELSE 'w' || i END, 'v' || i, "
        "  CASE WHEN i / 5 % 5 = 0 THEN 'owner' ELSE 'x' || i END, 'v' || i, "
        "  CASE WHEN i / 25 % 5 = 0 THEN 'culture' ELSE 'y' || i END, "
        "  CASE WHEN i % 997 = 0 THEN 'Behavior Owner CULTURE.' "
        "       WHEN i % 991 = 0 THEN 'Behavior_Owner% CULTURE\\İ' "
        "       WHEN i % 983 = 0 THEN 'BehaviorXOwner CULTURE\\I' END) "
        "FROM generate_series(1, 20000) AS i"
    )
    for half in (0, 1):  # as a bulk import leaves them: built, nothing pending
        sql(f"SELECT gin_clean_pending_list('ix_products_description_lower_trgm_{half}')")
    sql("ANALYZE products")
    database.of(db_session)._statistics.clear()  # this catalog's sample, not an earlier test's


def test_a_narrowed_term_is_matched_whole_as_ilike_matches_it_wildcards_and_all(db_session, sql):
    """A term of common words with LIKE's wildcards, a backslash and a dotted capital I is
    narrowed to a few trigrams like any other; its wildcards are matched as themselves and its
    letters lowered as `ILIKE` lowers them."""
    from product_importer.products.service import Filters, list_products, narrowed

    common_words(sql, db_session)
    term = "behavior_owner% culture\\İ"
    assert ("description", term) in narrowed(db_session, Filters(description=term)).narrow
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = sql(
        "SELECT sku FROM products WHERE description ILIKE :pattern "
        "ORDER BY updated_at DESC, id DESC",
        pattern=f"%{escaped}%",
    )
    assert len(rows) == 20  # the wildcards as themselves: not 'BehaviorXOwner'
    for field in ("description", "q"):
        page = list_products(db_session, filters=Filters(**{field: term}), per_page=100)
        db_session.commit()
        assert ([product.sku for product in page.items], page.total) == ([r for (r,) in rows], 20)


def test_a_phrase_of_common_words_is_looked_up_by_a_few_trigrams_and_matched_whole(db_session, sql):
    """'behavior owner culture': each word is in one description in five, so the index is
    asked for a trigram of a few ('beh%own'), not for the 20 trigrams of the phrase; the
    products listed are those that hold the whole phrase, ignoring case, and no other."""
    from product_importer.extensions import db
    from product_importer.products.service import Filters, list_products, narrowed

    common_words(sql, db_session)
    phrase = Filters(description="behavior owner culture")
    pattern = narrowed(db_session, phrase).narrow[("description", phrase.description)]
    # a trigram or two of a few of the words, in order: which ones the sample tells
    assert re.fullmatch(r"[a-z]{3,5}(%[a-z]{3,5}){1,2}", pattern), pattern
    assert re.search(pattern.replace("%", ".*"), phrase.description)
    with plans_of_searches(db.engine) as seen:
        found = [
            list_products(db_session, filters=Filters(**{field: phrase.description}), per_page=100)
            for field in ("description", "q")
        ]
    db_session.commit()

    rows = sql(
        "SELECT sku FROM products WHERE description ILIKE '%behavior owner culture%' "
        "ORDER BY updated_at DESC, id DESC"
    )
    assert len(rows) == 20
    for page in found:
        assert [product.sku for product in page.items] == [sku for (sku,) in rows]
        assert page.total == len(rows)
    plans = "\n".join(plan for _statement, plan in seen["plans"])
    assert f"Index Cond: (description_lower ~~ '%{pattern}%'::text)" in plans
    assert "Index Cond: (description_lower ~~ '%behavior owner culture%'::text)" not in plans


def test_the_pages_of_a_term_with_few_matches_are_read_by_their_kept_ids(db_session, sql):
    """'behavior owner culture' (20 of 20,000 products, each word in one in five): once its
    total is kept, one request finds its matches and keeps their ids; every page then reads
    those products by primary key, without the trigram index and its 4,000 candidates."""
    from product_importer.extensions import db
    from product_importer.products.service import Filters, list_products

    common_words(sql, db_session)
    sql("TRUNCATE product_list_totals")  # not among the tables emptied before each test
    phrase = Filters(description="behavior owner culture")
    assert list_products(db_session, filters=phrase, per_page=5).total == 20  # counted
    db_session.commit()
    with plans_of_searches(db.engine) as seen:
        pages = every_page(db_session, phrase, "name", per_page=5)

    rows = sql(
        "SELECT sku FROM products WHERE description ILIKE '%behavior owner culture%' "
        "ORDER BY lower(name), id"
    )
    assert pages == [sku for (sku,) in rows]
    plans = [(s, plan) for s, plan in seen["plans"] if reads_products(s)]
    found = [plan for statement, plan in plans if "array_agg" in statement]
    by_id = [plan for statement, plan in plans if "array_agg" not in statement]
    assert len(found) == 1 and "_trgm" in found[0]  # the ids, found once
    assert len(by_id) == 4  # the four pages
    assert all("Index Scan using pk_products" in plan and "_trgm" not in plan for plan in by_id)


def every_page(db_session, filters, sort: str, per_page: int = 100) -> list[str]:
    """The SKUs of every page of a list, first to last; each page gives the same total."""
    from product_importer.products.service import list_products

    skus, totals = [], []
    for page in range(1, 1000):
        listed = list_products(db_session, filters=filters, sort=sort, page=page, per_page=per_page)
        skus += [product.sku for product in listed.items]
        totals.append(listed.total)
        db_session.commit()
        if page >= listed.pages:
            break
    assert set(totals) == {len(skus)}
    return skus


def test_a_description_filter_sorts_and_counts_its_matches_read_from_both_halves_at_once(
    db_session, sql
):
    """Where every match is sorted (or counted), each half of the description index is read in
    a branch of its own, which PostgreSQL runs in a process of its own; the pages, in every
    sort and from both ends, are the ones a plain ORDER BY gives."""
    from sqlalchemy import event

    from product_importer.extensions import db
    from product_importer.products.service import Filters

    sql(
        "INSERT INTO products (sku, name, description, updated_at) "
        "SELECT CASE WHEN i % 113 = 0 THEN 'Gadget-' ELSE 's-' END || i, "
        "CASE WHEN i % 3 = 0 THEN 'widget ' ELSE 'Widget ' END || (i % 40), "
        "CASE WHEN i % 97 = 0 THEN 'A GADGET, ' ELSE 'Plain, ' END || i, "
        "now() - (i % 50) * interval '1 minute' FROM generate_series(1, 20000) AS i"
    )
    for half in (0, 1):  # as a bulk import leaves them: built, nothing pending
        sql(f"SELECT gin_clean_pending_list('ix_products_description_lower_trgm_{half}')")
    sql("ANALYZE products")
    where = {
        "description": "description ILIKE '%gadget%'",
        "q": "sku ILIKE '%gadget%' OR name ILIKE '%gadget%' OR description ILIKE '%gadget%'",
    }
    order = {"sku": "lower(sku) {0}, id {0}", "name": "lower(name) {0}, id {0}"}
    order["updated_at"] = "updated_at {0}, id {0}"
    statements, asked = [], [""]

    def explain_halves(conn, cursor, statement, parameters, context, executemany):
        if " UNION ALL " in statement and not statement.startswith("EXPLAIN"):
            explained = cursor.connection.execute("EXPLAIN " + statement, parameters)
            statements.append((asked[0], statement, "\n".join(row[0] for row in explained)))

    event.listen(db.engine, "before_cursor_execute", explain_halves)
    try:
        for field, condition in where.items():
            asked[0] = field
            for sort, direction in [(key, way) for key in order for way in ("", "-")]:
                by = order[sort].format("DESC" if direction else "ASC")
                rows = sql(f"SELECT sku FROM products WHERE {condition} ORDER BY {by}")
                expected = [sku for (sku,) in rows]
                found = every_page(db_session, Filters(**{field: "gadget"}), direction + sort)
                assert found == expected, (field, direction + sort)
        asked[0] = "no trigram"  # 'ga' has none: each branch would scan the whole table
        rows = sql("SELECT sku FROM products WHERE description ILIKE '%ga%' ORDER BY sku")
        found = every_page(db_session, Filters(description="ga"), "sku")
        assert found == [sku for (sku,) in rows]
    finally:
        event.remove(db.engine, "before_cursor_execute", explain_halves)

    # q's count may scan the table for its 1 in 55 products; the planner has the last word
    counts = {field for field, statement, _ in statements if "count(*)" in statement}
    pages = {field for field, statement, _ in statements if " LIMIT " in statement}
    assert "description" in counts and pages == {"description", "q"}  # none for 'ga'
    for field, _, plan in statements:
        halves = re.findall(r"Scan on products(?: products_1)?  ", plan)
        assert "Append" in plan and len(halves) == 2  # a scan of each half
        if field == "description":  # 206 of 20,000: through each half's own index
            assert "ix_products_description_lower_trgm_0" in plan
            assert "ix_products_description_lower_trgm_1" in plan


def test_a_whole_sku_is_looked_up_by_its_rare_word_and_still_matched_as_a_substring(
    db_session, sql
):
    """The trigram index is asked for the SKU's number alone (the rows of its common words'
    trigrams are not read); every product that holds the whole SKU is listed, no other."""
    from product_importer import database
    from product_importer.extensions import db
    from product_importer.products.service import Filters, list_products

    words = "(ARRAY['visit', 'moment', 'paper', 'light', 'road', 'quite'])"
    sql(
        "INSERT INTO products (sku, name, description) "
        f"SELECT {words}[1 + i % 6] || '-' || {words}[1 + i / 6 % 6] || '-' || "
        f"{words}[1 + i / 36 % 6] || '-' || i, 'Widget ' || i, 'Plain' "
        "FROM generate_series(1, 20000) AS i"
    )
    (target,) = sql("SELECT sku FROM products WHERE sku LIKE '%-12345'")[0]
    sql(
        "INSERT INTO products (sku, name, description) VALUES "
        "(:around, 'Around', 'Plain'), ('road-road-road-12345', 'Same number', 'Plain'), "
        "('greek-1', 'ΕΛΛΗΝΙΚΟΣ ΚΑΦΕΣ', 'Plain')",
        around=f"X{target.upper()}0",
    )
    sql("SELECT gin_clean_pending_list('ix_products_sku_trgm')")
    sql("ANALYZE products")
    database.of(db_session)._statistics.clear()  # this catalog's sample, not an earlier test's
    with page_plans(db.engine) as seen:
        found = [
            list_products(db_session, filters=Filters(**{field: target})) for field in ("sku", "q")
        ]

    for page in found:
        assert sorted(product.sku for product in page.items) == [f"X{target.upper()}0", target]
        assert page.total == 2
    # PostgreSQL lowers Σ to σ wherever it is, Python to ς at a word's end: no narrowing by it
    greek = list_products(db_session, filters=Filters(name="ΕΛΛΗΝΙΚΟΣ ΚΑΦΕΣ"))
    assert [product.sku for product in greek.items] == ["greek-1"]
    (plan, *_) = seen["plans"]
    assert "Index Cond: ((sku)::text ~~* '%12345%'::text)" in plan
    assert f"Filter: (lower((sku)::text) ~~ '%{target}%'::text)" in plan


@pytest.mark.parametrize(
    ("term", "sample", "word"),
    [
        # the rarest word of 3 letters or more, found ignoring case, given as the term has it
        ("Visit-MOMENT-1279867", ["visit-moment-2", "visit-road-3"], "1279867"),
        ("visit MOMENT", ["visit 1", "visit 2", "moment 3"], "MOMENT"),
        ("ΕΛΛΗΝΙΚΟΣ ΚΑΦΕΣ", ["x"], None),  # Σ: lowered otherwise by PostgreSQL and Python
        ("İSTANBUL kilim", ["kilim 1", "kilim 2"], None),  # İ lowers to two characters
        ("red gadget", [], None),  # no sample (SQLite, or not analyzed yet)
        ("gadget", ["red"], None),  # one word: its own trigrams are the fewest
        ("a b c", ["x"], None),  # no word of 3 letters
        ("visit moment", ["visit moment", "visit moment"], None),  # both common
        ("e. tea", ["tea 1", "e. 2"], "tea"),  # one in the sample is still rare
    ],
)
def test_the_rare_word_of_a_term_is_the_one_in_fewest_sampled_values(term, sample, word):
    from product_importer.products.service import rarest_word

    assert rarest_word(sample, term) == word


@pytest.mark.parametrize(
    ("term", "trigrams"),
    [
        ("abc", {"abc"}),
        ("ab", set()),  # two letters, both edges open: no trigram (the index reads it all)
        ("ab.", {"ab "}),  # its end shows
        ("e. t", {"  t"}),  # 'e' shows its end only ('e '), 't' its start
        ("a b", {"  b"}),
        ("..", set()),
        ("Big-Red", {"big", "ig ", "  r", " re", "red"}),  # lowercased, split at the dash
        ("İb", set()),  # PostgreSQL lowers İ to one letter: 'ib' gives no trigram
        ("x_y", {"  y"}),  # '_' is a character there, not LIKE's wildcard: 'x ' is too short
    ],
)
def test_a_term_has_the_trigrams_pg_trgm_takes_from_the_words_of_a_like_pattern(term, trigrams):
    from product_importer.products.service import has_trigram, like_trigrams

    assert like_trigrams(term) == trigrams
    assert has_trigram(term) is bool(trigrams)


@pytest.mark.parametrize(
    ("term", "share"),
    [
        ("e. t", 0.75),  # '  t': a word that starts with t, in three of the four
        ("e. z", 0.25),  # 'zebra'
        ("all", 0.25),  # inside a word: 'tall' and 'all' alike, but not 'al l'
        ("ll.", 0.25),  # a word that ends in 'll'
        ("ab", 0.0),  # no trigram: nothing to hand on
    ],
)
def test_the_share_of_candidates_is_of_the_sampled_values_that_hold_every_trigram(term, share):
    from product_importer.products.service import candidates_share

    sample = ["a tall tree", "a zebra", "top al l", "two. then"]
    assert candidates_share(sample, term) == share
    assert candidates_share([], term) == 0.0


def test_the_share_holding_a_term_is_of_the_sampled_values_that_hold_it_in_any_case():
    from product_importer.products.service import holding_share

    sample = ["a tall tree", "a zebra", "top al l", "two. then"]
    assert holding_share(sample, "ALL") == 0.25  # 'tall', not 'al l'
    assert holding_share(sample, "a ") == 0.5
    assert holding_share(sample, "zz") == 0.0
    assert holding_share([], "a") == 0.0


def test_the_order_of_q_fields_files_no_total_apart():
    from product_importer.products.service import Filters

    reordered = Filters(q="x", q_fields=("description", "sku", "name"))
    assert reordered.key() == Filters(q="x").key()
    with pytest.raises(ValueError, match="q_fields"):
        Filters(q="x", q_fields=("sku", "name"))


# Descriptions of common words: each of 'behavior', 'owner' and 'culture' in 1 of 5, all three
# (the phrase itself) in 1 of 125.
COMMON_WORDS_SAMPLE = [
    " ".join(
        word if n // 5**k % 5 == 0 else f"w{n}x{k}"
        for k, word in enumerate(("behavior", "owner", "culture"))
    )
    for n in range(1000)
]


@pytest.mark.parametrize(
    ("term", "sample", "pattern"),
    [
        # three common words: a trigram of each, and no more candidates than all 20 would give
        ("behavior owner culture", COMMON_WORDS_SAMPLE, "beh%own%cul"),
        ("Behavior OWNER culture", COMMON_WORDS_SAMPLE, "Beh%OWN%cul"),  # as the term has it
        # two words held together by half the values: the recheck would test each candidate
        # twice for an index read hardly shorter
        ("owner culture", ["owner culture"] * 50 + ["tree"] * 50, None),
        ("behavior owner culture", [], None),  # no sample (SQLite, or not analyzed yet)
        ("a b c", COMMON_WORDS_SAMPLE, None),  # no trigram inside a word
        ("behavior", COMMON_WORDS_SAMPLE, None),  # one word: its trigrams are all inside it
        # nothing narrows the sampled values down: given up at once, however long the term
        ("the " * 50, ["other theater"] * 400, None),
    ],
)
def test_a_term_of_common_words_asks_the_index_for_a_few_of_its_trigrams(term, sample, pattern):
    from product_importer.products.service import trigram_pattern

    assert trigram_pattern(sample, term) == pattern


@pytest.mark.parametrize(
    ("word", "alike"),
    [("Behavior", True), ("ΚΑΦΕΣ", False), ("İSTANBUL", False), ("Straße", True)],
)
def test_a_word_is_narrowed_by_only_where_python_lowers_it_as_postgresql_does(word, alike):
    from product_importer.products.service import _lowers_alike

    assert _lowers_alike(word) is alike


MARKED_VALUES = [
    "Handmade TAKI\u0307M rug, rugged",  # 'TAKİM', its dot a combining mark (U+0307)
    "Handmade Kilim rug, rugged and shaggy",
    "Straße rug",
    "plain rug",
]


@pytest.mark.parametrize("collation", ["tr-x-icu", "az-x-icu", "lt-x-icu", "und-x-icu", "default"])
def test_a_narrowed_term_misses_no_value_the_whole_term_matches_in_any_collation(sql, collation):
    """The index is asked for the narrowed pattern alone: lowered as PostgreSQL lowers under
    the collation, every value that holds the term holds it. A Turkish or Azeri I lowers by the
    mark after it, so a term with a mark is not narrowed; the others still are."""
    from product_importer.products import service

    sample = ["plain rug"] * 40 + ["rugged and shaggy"] * 40
    terms = ["TAKI\u0307M rug", "TAKI\u0307M rugged", "Handmade Kilim", "rugged and shaggy"]
    check = (
        f'SELECT (CAST(:value AS text) COLLATE "{collation}") ILIKE :whole, '
        f'(CAST(:value AS text) COLLATE "{collation}") ILIKE :narrowed'
    )
    asked = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "NARROW_GAIN", 0)  # every pattern that can be built, given
        for term in terms:
            patterns = (service.rarest_word(sample, term), service._trigram_pattern(sample, term))
            for narrowed in filter(None, patterns):
                asked.append(term)
                for value in MARKED_VALUES:
                    params = {"value": value, "whole": f"%{term}%", "narrowed": f"%{narrowed}%"}
                    whole, narrow = sql(check, **params)[0]
                    assert narrow or not whole, (term, narrowed, value)
    assert "TAKI\u0307M rug" not in asked and "TAKI\u0307M rugged" not in asked
    assert "Handmade Kilim" in asked and "rugged and shaggy" in asked  # still narrowed


def test_pieces_of_a_term_that_overlap_or_touch_are_asked_for_as_one():
    from product_importer.products.service import _segments

    # pieces of 'behavior owner', start and text
    assert _segments([(0, "beh"), (1, "eha"), (3, "avi"), (9, "own")]) == ["behavi", "own"]
    assert _segments([(0, "beh"), (3, "avi")]) == ["behavi"]


@st.composite
def terms_and_samples(draw) -> tuple[str, list[str]]:
    """A term of a few words, and sampled values made of its words and others."""
    words = draw(st.lists(st.text(alphabet="abcdeİ", min_size=1, max_size=7), min_size=1))
    term = draw(st.sampled_from([" ", "-", ". ", "_"])).join(words)
    vocabulary = [*words, "abc", "cab", "zz"]
    values = st.lists(st.sampled_from(vocabulary), max_size=6).map(" ".join)
    return term, draw(st.lists(values, min_size=1, max_size=80))


@given(terms_and_samples())
def test_every_product_that_holds_the_term_holds_its_trigram_pattern(term_and_sample):
    """The index is asked for the pattern, so nothing that matches the term may miss it."""
    from product_importer.products import service

    term, sample = term_and_sample
    # whatever the gain: the pattern is built the same way, then given or not
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "NARROW_GAIN", 0)
        pattern = service._trigram_pattern(sample, term)
    if pattern is not None:
        assert all(len(segment) >= 3 for segment in pattern.split("%")), pattern
        as_regex = ".*".join(re.escape(segment) for segment in pattern.lower().split("%"))
        assert re.search(as_regex, term.lower()), (term, pattern)


@pytest.mark.parametrize(
    ("plan", "walks"),
    [
        ({"Node Type": "Index Scan", "Filter": "(name ~~* '%x%')"}, True),
        ({"Node Type": "Index Scan", "Index Cond": "(id = 1)"}, False),  # a lookup, no filter
        ({"Node Type": "Limit", "Plans": [{"Node Type": "Bitmap Heap Scan"}]}, False),
        (
            {
                "Node Type": "Limit",
                "Plans": [
                    {
                        "Node Type": "Gather Merge",
                        "Plans": [{"Node Type": "Index Scan", "Filter": "(sku ~~* '%x%')"}],
                    }
                ],
            },
            True,
        ),
    ],
)
def test_a_walk_is_an_index_scan_with_a_filter_anywhere_in_the_plan(plan, walks):
    from product_importer.database import _walks

    assert _walks(plan) is walks
