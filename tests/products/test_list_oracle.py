"""GET /api/products against a plain SQL oracle: random terms, sorts, pages and edits.

Every performance path of the list (terms narrowed to a rare word or a few trigrams, walks of
the sort order, the description index read in halves, last pages read from the other end, kept
and carried totals, pages read by kept ids) must give what one ILIKE query with ORDER BY ...,
id and OFFSET/LIMIT gives. A catalog of 30,000 products is seeded once, with words in fewer than
0.1%, about 2% and about 30% of the rows and LIKE's wildcards, backslashes and letters that
lower unusually; hypothesis draws the queries and the edits between them.
"""

import itertools
import re
from collections import Counter
from dataclasses import dataclass, replace
from math import ceil

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text

CATALOG_SIZE = 30_000
# One statement, as an import writes (and with its setting: nothing logged, totals recounted).
# Per row i: names 'Sprocket' in 1 in 1,200, 'Gadget' in 1 in 50, 'Widget' (in three cases) in
# ~3 in 10, and a number in 10 names each (a rare word, as the number of a SKU is);
# descriptions of 'behavior', 'owner' and 'culture' in 1 in 5 each, apart from each
# other, the phrase itself in 1 in 997 (with wildcards between in 1 in 991), 'quixotic' in
# 1 in 1,301; updated_at in 1,000 steps, so that the `updated_at` sorts have ties.
SEED = r"""
INSERT INTO products (sku, name, description, active, updated_at)
SELECT
  CASE WHEN i % 1500 = 0 THEN 'ZQX-'
       WHEN i % 50 = 7 THEN 'KIT.'
       ELSE (ARRAY['WID-', 'wid-', 'GAD_', 'Tool-', 'BOX%', 'Straße-', 'back\sl-', 'İNCE-'])[
         1 + i % 8]
  END || i,
  CASE WHEN i % 1200 = 0 THEN 'Sprocket'
       WHEN i % 50 = 1 THEN 'Gadget'
       WHEN i % 10 < 3 THEN (ARRAY['Widget', 'widget', 'WIDGET'])[1 + i % 3]
       ELSE (ARRAY['Bolt', 'Nut', 'Screw', 'Washer', 'Crème brûlée', 'İstanbul rug',
                   'Straße sign', '50% off_sale'])[1 + i / 10 % 8]
  END || ' ' || (ARRAY['red', 'Blue', 'GREEN', 'black', 'white'])[1 + i / 3 % 5] || ' ' || i % 40
  || ' #' || i * 7 % 3001,
  CASE WHEN i % 17 = 0 THEN '' ELSE concat_ws(' ',
    CASE WHEN i % 5 = 0 THEN 'behavior' ELSE 'w' || i END, 'v' || i,
    CASE WHEN i / 5 % 5 = 0 THEN 'owner' ELSE 'x' || i END, 'v' || i,
    CASE WHEN i / 25 % 5 = 0 THEN 'culture' ELSE 'y' || i END,
    CASE WHEN i % 997 = 0 THEN 'Behavior Owner CULTURE.'
         WHEN i % 991 = 0 THEN 'Behavior_Owner% CULTURE\İ'
         WHEN i % 1301 = 0 THEN 'quixotic Large. Tall tree'
         WHEN i % 50 = 3 THEN 'Gadget case'
         WHEN i % 13 = 0 THEN '100% cotton'
         WHEN i % 13 = 1 THEN 'snake_case C:\path\to'
         WHEN i % 13 = 2 THEN 'Straße STRASSE'
         WHEN i % 13 = 3 THEN 'İSTANBUL istanbul'
         WHEN i % 13 = 4 THEN 'crème BRÛLÉE'
         WHEN i % 13 = 5 THEN 'ΣΟΦΊΑΣ σοφίας'
         ELSE 'Large tall tree' END) END,
  i % 7 <> 3,
  now() - (i * 7919 % 1000) * interval '1 second'
FROM generate_series(1, :size) AS i
"""
SEARCH_INDEXES = (
    "ix_products_sku_trgm",
    "ix_products_name_trgm",
    "ix_products_description_lower_trgm_0",
    "ix_products_description_lower_trgm_1",
)
FIELDS = ("sku", "name", "description")
SORTS = (None, "sku", "-sku", "name", "-name", "updated_at", "-updated_at")
ORDER_KEYS = {"sku": "lower(sku)", "name": "lower(name)", "updated_at": "updated_at"}


def listed(terms: str) -> list[str]:
    """Split a string of terms with '|' between them (a term may hold a space)."""
    return terms.split("|")


# Terms by filter: words of each frequency, pieces with LIKE's wildcards and the escape
# character, and letters whose lower case is special (ß, İ, Σ), in several cases.
WORDS = {
    "sku": listed(
        r"WID|wid-1|GAD_|tool|BOX%|x%1|Straße|STRASSE|back\sl|k\s|İNCE|ince|ZQX|kit.|-12|00|_1|%|"
        "WID-1234|gad_2-1"
    ),
    "name": listed(
        "widget|WIDGET re|Gadget|sprocket|bolt|crème|CRÈME BRÛLÉE|istanbul|İstanbul rug|"
        "straße|STRASSE|50%|off_sale|% off|f_s|red 1|blue 7|t b|red 7 #1234|Widget Blue 3 #2"
    ),
    "description": listed(
        r"behavior|owner|culture|behavior owner culture|owner culture|Behavior_Owner%|"
        r"owner% culture\İ|quixotic|100%|snake_case|c:\path|\|straße|STRASSE|ß|istanbul|"
        "İSTANBUL|crème|σοφίας|ΣΟΦΊΑΣ|e. t|large tall|tall tree|gadget case|_"
    ),
}
WORDS["q"] = sorted({word for words in WORDS.values() for word in words})
# Values written by the edits: some hold the words above, so that products move in and out of
# the filters whose totals are kept.
NEW_NAMES = ["Sprocket 9", "widget Blue 3", "Gadget", "Behavior owner culture", "Straße 50%"]
NEW_DESCRIPTIONS = ["behavior owner culture", "Quixotic", "100% cotton", "", "Tall tree"]
CASES = (str, str.lower, str.upper, str.title)
# Page queries, whose last ORDER BY tells the direction the page was read in.
PAGE_QUERIES = ("SELECT products.id", "SELECT walk.", "SELECT matches.", "SELECT listed.")
# A term narrowed (service.narrowed): the index is asked for a pattern, and the whole term is
# tested apart, where a plain term is one ILIKE or LIKE. The pattern's parameter is captured.
NARROWED = (
    re.compile(r"\.(?:sku|name) ILIKE %\((\w+)\)s::VARCHAR AND lower\("),
    re.compile(r"\.description_lower LIKE lower\(%\((\w+)\)s::VARCHAR\) AND strpos\("),
)
# The ids of every match, found to be kept (the carry's array_agg is of the edit log's ids).
FOUND_IDS = re.compile(r"array_agg\((?:products|matches)\.id\)")
# What the list must have done at least once, for the comparisons not to pass vacuously.
PATHS = (
    "narrowed to a rare word",
    "narrowed to a few trigrams",
    "walked the sort order",
    "read the description index in halves",
    "read the halves side by side",
    "read from the other end",
    "counted",
    "found the ids of every match",
    "read by kept ids",
    "total kept",
    "total carried over an edit",
    "read by ids carried over an edit",
    "page past the end",
)
DISCREPANCIES_SHOWN = 20
# Queries asked again once every product is deleted: the latest, their totals kept before.
ASKED_AGAIN = 40


@dataclass(frozen=True)
class Query:
    """One list request: text filters (field, term), active, sort, per_page and page."""

    terms: tuple[tuple[str, str], ...]
    active: bool | None = None
    sort: str | None = None
    per_page: int | None = None
    page: int | None = None

    def args(self) -> dict:
        """Return the query string (arguments left out take the API's defaults)."""
        args = dict(self.terms)
        optional = {"sort": self.sort, "per_page": self.per_page, "page": self.page}
        args |= {name: value for name, value in optional.items() if value is not None}
        if self.active is not None:
            args["active"] = "true" if self.active else "false"
        return args

    def filters(self) -> tuple:
        """Return what the kept total is filed under: the trimmed terms, and active."""
        trimmed = tuple((field, term.strip()) for field, term in self.terms if term.strip())
        return tuple(sorted(trimmed)), self.active

    @property
    def size(self) -> int:
        return self.per_page or 50


# 29 descriptions hold it, each of its words 1 in 5: narrowed to a few trigrams.
PHRASE = Query((("description", "behavior owner culture"),), per_page=5)


@dataclass(frozen=True)
class Expected:
    """What the oracle says: the total, and the page's (id, sku) in order."""

    total: int
    items: list[tuple[int, str]]


def like_escaped(term: str) -> str:
    """Escape LIKE's wildcards and escape character: the API matches them as themselves."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def oracle(engine, query: Query) -> Expected:
    """Count and page the matches with plain ILIKE, the spec's order and id breaking ties."""
    where, params = ["true"], {}
    for number, (field, term) in enumerate(query.filters()[0]):
        params[f"t{number}"] = f"%{like_escaped(term)}%"
        columns = FIELDS if field == "q" else (field,)
        matches = [f"{column} ILIKE :t{number} ESCAPE '\\'" for column in columns]
        where.append(f"({' OR '.join(matches)})")
    if query.active is not None:
        where.append("active = :active")
        params["active"] = query.active
    condition = " AND ".join(where)
    sort = query.sort or "-updated_at"
    way = "DESC" if sort.startswith("-") else "ASC"
    order = f"{ORDER_KEYS[sort.removeprefix('-')]} {way}, id {way}"
    page = f"SELECT id, sku FROM products WHERE {condition} ORDER BY {order} OFFSET :at LIMIT :n"
    params |= {"at": ((query.page or 1) - 1) * query.size, "n": query.size}
    with engine.connect() as conn:
        total = conn.execute(text(f"SELECT count(*) FROM products WHERE {condition}"), params)
        return Expected(total.scalar(), [tuple(row) for row in conn.execute(text(page), params)])


def paths_taken(statements: list[tuple[str, dict]], sort: str) -> set[str]:
    """Return the paths of the list that one request's statements show (not its EXPLAINs)."""
    taken = set()
    for statement, params in statements:
        if statement.startswith("EXPLAIN"):
            continue
        for narrowed in NARROWED:
            for name in narrowed.findall(statement):
                inner = "%" in params[name].strip("%")  # 'beh%own%cul' against 'culture'
                taken.add("narrowed to a few trigrams" if inner else "narrowed to a rare word")
        marks = {
            "walked the sort order": statement.startswith("SELECT walk."),
            "read the description index in halves": " UNION ALL " in statement,
            "read the halves side by side": "set_config('parallel_setup_cost', '0'" in statement,
            "counted": "count(*)" in statement,
            "found the ids of every match": FOUND_IDS.search(statement) is not None,
            "read by kept ids": ") AS listed" in statement,
        }
        taken |= {path for path, shown in marks.items() if shown}
        if statement.startswith(PAGE_QUERIES):
            descending = " DESC" in statement.rsplit("ORDER BY", 1)[1]
            if descending != sort.startswith("-"):
                taken.add("read from the other end")
    return taken


def difference(query: Query, expected: Expected, response) -> str | None:
    """Return how the answer differs from the oracle's (from the first item apart), or None."""
    last = max(1, ceil(expected.total / query.size))
    if (query.page or 1) > last:
        if response.status_code == 422 and "page" in response.get_json()["error"]["details"]:
            return None
        return f"{query.args()}: {response.status_code}, expected 422 (the last page is {last})"
    if response.status_code != 200:
        return f"{query.args()}: {response.status_code} {response.text}, expected 200"
    body = response.get_json()
    found = (body["total"], body["pages"], body["page"], body["per_page"])
    wanted = (expected.total, last, query.page or 1, query.size)  # one page, empty, for none
    items = [(item["id"], item["sku"]) for item in body["items"]]
    if (found, items) == (wanted, expected.items):
        return None
    pairs = zip(items, expected.items, strict=False)
    at = next((n for n, (item, due) in enumerate(pairs) if item != due), len(expected.items))
    return (
        f"{query.args()}: (total, pages, page, per_page) {found}, expected {wanted}; "
        f"{len(items)} items, expected {len(expected.items)}; from item {at}: "
        f"{items[at : at + 4]}, expected {expected.items[at : at + 4]}"
    )


@st.composite
def terms(draw, field: str, pool: dict[str, list[str]]) -> str:
    """Draw a word or a piece of a value (a wildcard in it, or not), two words, or oddities."""
    kind = draw(st.sampled_from(["plain"] * 3 + ["wildcard"] * 2 + ["two words", "odd"]))
    if kind == "two words":
        return " ".join(draw(st.lists(st.sampled_from(WORDS[field]), min_size=2, max_size=2)))
    if kind == "odd":
        return draw(st.text(alphabet="ae01 %_\\.-ßİΣ", min_size=1, max_size=4))
    if draw(st.booleans()):
        term = draw(st.sampled_from(CASES))(draw(st.sampled_from(WORDS[field])))
    else:
        value = draw(st.sampled_from(pool[field]))
        start = draw(st.integers(0, len(value) - 1))
        term = value[start : start + draw(st.integers(1, 30))]
    if kind == "plain":
        return term
    # In place of a character, a wildcard taken as one would still find the term: as itself
    # it must not (nor be taken for the escape character).
    at = draw(st.integers(0, len(term)))
    return term[:at] + draw(st.sampled_from("%_\\")) + term[at + draw(st.integers(0, 1)) :]


@st.composite
def queries(draw, pool: dict[str, list[str]]) -> Query:
    """Draw up to two text filters, active, a sort and a page size (the page comes later)."""
    fields = draw(st.lists(st.sampled_from([*FIELDS, "q"]), max_size=2, unique=True))
    return Query(
        terms=tuple((field, draw(terms(field, pool))) for field in fields),
        active=draw(st.sampled_from([None, None, True, False])),
        sort=draw(st.sampled_from(SORTS)),
        per_page=draw(st.one_of(st.sampled_from([None, 1, 3, 10, 50, 200]), st.integers(1, 200))),
    )


# Which page to ask for, drawn apart from the catalog (hypothesis's draws must not depend on
# it): the first or second, the last or the one before it, one past the end or a few more, or
# any between.
PAGES = ("first", "second", "last", "before last", "past the end", "between", "between")


def page_of(choice: tuple[str, int], total: int, per_page: int) -> int:
    """Return the page a drawn choice (its kind, and a number) stands for, for this total."""
    kind, number = choice
    last = max(1, ceil(total / per_page))
    pages = {"first": 1, "second": 2, "last": last, "before last": max(1, last - 1)}
    pages |= {"past the end": last + 1 + number % 5, "between": 1 + number % last}
    return pages[kind]


pages = st.tuples(st.sampled_from(PAGES), st.integers(0, 10**6))


class Explorer:
    """Sends list requests and edits through the API, and checks each list against the oracle."""

    def __init__(self, api, engine, pool: dict[str, list[str]]):
        self.api, self.engine, self.pool = api, engine, pool
        self.paths: Counter[str] = Counter()
        self.discrepancies: list[str] = []
        self.history: list[str] = []  # the requests of the current example, for the report
        self.statements: list[tuple[str, dict]] = []
        self.edits = 0  # edits made so far; a filter's last request saw this many
        self.seen_at_edit: dict[tuple, int] = {}
        self.last_items: list[int] = []
        self.asked: list[Query] = []
        self.numbers = itertools.count(1)

    def record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        """Keep each statement the app runs, with its parameters (before_cursor_execute)."""
        self.statements.append((statement, parameters or {}))

    def check(self, query: Query) -> None:
        """Send `query`, compare the answer with the oracle's and note the paths it took."""
        expected = oracle(self.engine, query)
        self.statements = []
        response = self.api.get("/api/products", query_string=query.args())
        taken = paths_taken(self.statements, query.sort or "-updated_at")
        self.history.append(f"GET {query.args()}")
        self.asked.append(query)
        if response.status_code == 200:
            self.last_items = [item["id"] for item in response.get_json()["items"]]
        problem = difference(query, expected, response)
        if problem:
            history = "\n    ".join(self.history[-8:])
            found = f"{problem}\n  paths: {sorted(taken)}\n  requests:\n    {history}"
            self.discrepancies.append(found)
        self._note(query, expected, taken)

    def _note(self, query: Query, expected: Expected, taken: set[str]) -> None:
        """Count the paths taken, and those only the answer tells: a total known before."""
        if (query.page or 1) > max(1, ceil(expected.total / query.size)):
            taken.add("page past the end")
        elif "counted" not in taken and expected.total > (query.page or 1) * query.size:
            # no count, and not the last page (whose rows tell the total): it was kept
            taken.add("total kept")
        edited = self.seen_at_edit.get(query.filters(), self.edits) < self.edits
        if edited and "total kept" in taken:
            taken.add("total carried over an edit")
        if edited and "read by kept ids" in taken:
            taken.add("read by ids carried over an edit")
        self.seen_at_edit[query.filters()] = self.edits
        self.paths.update(taken)

    def edit(self, data, query: Query) -> None:
        """Change, delete or create a product: often one just read, often into the filter."""
        kind = data.draw(st.sampled_from(["change", "change", "delete", "create"]), label="edit")
        if kind == "create":
            number = next(self.numbers)
            fields = {"sku": f"NEW-{number}", "name": f"New {number}", "description": ""}
            fields |= self._values(data, query, number)
            response = self.api.post("/api/products", json=fields)
            assert response.status_code == 201, (fields, response.get_json())
        else:
            product_id = self._target(data)
            if kind == "delete":
                response = self.api.delete(f"/api/products/{product_id}")
                fields = {"id": product_id}
                if product_id in self.last_items:  # a 422 page leaves them to the next edit
                    self.last_items.remove(product_id)
            else:
                fields = self._values(data, query, next(self.numbers))
                response = self.api.patch(f"/api/products/{product_id}", json=fields)
            assert response.status_code in (200, 204), (fields, response.get_json())
        self.edits += 1
        self.history.append(f"{kind} {fields}")

    def _values(self, data, query: Query, number: int) -> dict:
        """Draw new values: the query's terms in their fields, or words of the catalog."""
        if data.draw(st.booleans(), label="into the filter") and query.terms:
            written: dict[str, list[str]] = {}
            for name, term in query.terms:
                field = data.draw(st.sampled_from(FIELDS)) if name == "q" else name
                written.setdefault(field, [f"E{number}"]).append(term)  # a SKU must be unique
            values = {field: " ".join(terms) for field, terms in written.items()}
            return values | ({} if query.active is None else {"active": query.active})
        values = {}
        for field in data.draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=2)):
            if field == "sku":
                values["sku"] = f"E{number}-{data.draw(st.sampled_from(WORDS['sku']))}"
            else:
                words = NEW_NAMES if field == "name" else NEW_DESCRIPTIONS
                values[field] = data.draw(st.sampled_from(words))
        if data.draw(st.booleans(), label="toggle active"):
            values["active"] = data.draw(st.booleans())
        return values

    def _target(self, data) -> int:
        """Draw a product of the page just read, or any product."""
        just_read = data.draw(st.booleans(), label="one just read")
        skip = data.draw(st.integers(0, CATALOG_SIZE - 1), label="product")
        if just_read and self.last_items:
            return self.last_items[skip % len(self.last_items)]
        with self.engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM products")).scalar()
            found = text("SELECT id FROM products ORDER BY id OFFSET :skip LIMIT 1")
            return conn.execute(found, {"skip": skip % count}).scalar()

    def explore(self, data) -> None:
        """Ask a query, then again, another page of it, or again after an edit."""
        self.history, self.last_items = [], []
        query = self._paged(data, data.draw(queries(self.pool), label="query"))
        self.check(query)
        for _ in range(data.draw(st.integers(0, 3), label="follow-ups")):
            then = data.draw(st.sampled_from(["again", "another page", "edit"]), label="then")
            if then == "edit":
                self.edit(data, query)
            elif then == "another page":
                query = self._paged(data, query)
            self.check(query)

    def _paged(self, data, query: Query) -> Query:
        """Return `query` at a drawn page of the matches the oracle counts now."""
        choice = data.draw(pages, label="page")
        return replace(query, page=page_of(choice, oracle(self.engine, query).total, query.size))

    def tour(self) -> None:
        """Ask what takes every path, in the order that reaches them, before hypothesis."""
        phrase, widgets = PHRASE, Query((("name", "widget"),), sort="name", per_page=10)
        for query in (
            phrase,  # narrowed to a few trigrams, counted
            phrase,  # its matches found, their ids kept
            replace(phrase, page=6),  # read by kept ids, the last page (29 match)
            Query((("sku", "Gad_1234"),)),  # narrowed to '1234', a word of 13 SKUs
            widgets,  # counted: the planner walks
            widgets,  # the total kept: walked
            replace(widgets, page=830),  # walked from the other end (8,375 match)
            Query((("description", "e. t"),), per_page=3, page=3),  # halves side by side
            replace(phrase, page=7),  # past the end
        ):
            self.check(query)
        out_of_it = self.api.patch("/api/products/997", json={"description": "owner"})
        into_it = {"sku": "NEW-0", "name": "New", "description": "A Behavior Owner Culture"}
        created = self.api.post("/api/products", json=into_it)
        assert (out_of_it.status_code, created.status_code) == (200, 201)
        self.edits += 2
        self.check(phrase)  # the total and the ids carried over the edits: one out, one in

    def after_deleting_all(self) -> None:
        """Delete every product (kept totals are counted again), then ask the latest again."""
        assert self.api.delete("/api/products?confirm=true").status_code == 200
        self.edits += 1
        self.history = ["delete every product"]
        for query in list(dict.fromkeys(self.asked))[-ASKED_AGAIN:]:
            self.check(query)
        into_it = {"sku": "AFTER-1", "name": "Widget", "description": "behavior owner culture"}
        assert self.api.post("/api/products", json=into_it).status_code == 201
        self.edits += 1
        self.check(PHRASE)


def seed_catalog(engine) -> dict[str, list[str]]:
    """Write and analyze the catalog; return some values of each field, to cut terms from."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL product_importer.bulk_change = 'on'"))
        conn.execute(text(SEED), {"size": CATALOG_SIZE})
        conn.execute(text("TRUNCATE product_list_totals"))  # not emptied between tests
        # The samples narrowing reads: steady while the test edits (no autovacuum ANALYZE).
        conn.execute(text("ALTER TABLE products SET (autovacuum_enabled = false)"))
    with engine.begin() as conn:
        for index in SEARCH_INDEXES:  # as a bulk import leaves them: built, nothing pending
            conn.execute(text(f"SELECT gin_clean_pending_list('{index}')"))
        conn.execute(text("ANALYZE products"))
        rows = conn.execute(text("SELECT sku, name, description FROM products WHERE id % 97 = 0"))
        columns = zip(FIELDS, zip(*rows, strict=True), strict=True)
    pool = {field: [value for value in values if value] for field, values in columns}
    pool["q"] = [value for column in pool.values() for value in column]
    return pool


@pytest.fixture
def catalog(any_engine, db_session) -> dict[str, list[str]]:
    """Seed the catalog (`seed_catalog`); autovacuum is off until the test ends."""
    from product_importer import database

    try:
        pool = seed_catalog(any_engine)
        database.of(db_session)._statistics.clear()  # this catalog's sample, not an earlier one
        yield pool
    finally:
        with any_engine.begin() as conn:
            conn.execute(text("ALTER TABLE products RESET (autovacuum_enabled)"))


@pytest.mark.parametrize("any_app", ["production"], indirect=True)  # the paths are PostgreSQL's
def test_every_list_matches_a_plain_ilike_query(api, any_engine, catalog):
    """Random lists, repeated and between edits, give the oracle's pages and totals."""
    explorer = Explorer(api, any_engine, catalog)

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        # The catalog changes from one example to the next: a shrunk example would not fail
        # the same way. Every discrepancy is collected instead, with the requests before it.
        phases=[Phase.generate],
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.data())
    def explore(data):
        explorer.explore(data)

    event.listen(any_engine, "before_cursor_execute", explorer.record)
    try:
        explorer.tour()
        explore()
        explorer.after_deleting_all()
    finally:
        event.remove(any_engine, "before_cursor_execute", explorer.record)

    if explorer.discrepancies:
        shown = "\n".join(explorer.discrepancies[:DISCREPANCIES_SHOWN])
        pytest.fail(f"{len(explorer.discrepancies)} discrepancies:\n{shown}", pytrace=False)
    assert [path for path in PATHS if not explorer.paths[path]] == []
