"""The catalog against a model of it, through a seeded sequence of imports, plans, edits, undos.

Every step goes through HTTP and the session's Celery worker. After each one the whole catalog
(ids, values, timestamps), every import's change record and the list totals are compared with
the model, and an import's counts and rejected lines with the ones the model predicts. Each
import's path (in place, or built in bulk and switched) is read from the worker's step log and
from the products table's identity, so the test shows both paths covered.
"""

import csv
import gzip
import io
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from product_importer.imports.postgres_stage import BULK_MIN_ROWS, BULK_MIN_SHARE
from tests.helpers import import_csv, upload_csv, wait_for_job

pytestmark = pytest.mark.usefixtures("live_worker")

SEED = 20_240_611
FRESH_PRODUCTS = 13_500  # a fresh import this size is built in bulk (BULK_MIN_ROWS)
JOB_TIMEOUT = 120  # seconds: a busy 2-core machine
# SPEC, "The CSV": the words `active` takes, in any case
ACTIVE_WORDS = {"true": True, "1": True, "yes": True, "y": True}
ACTIVE_WORDS |= {"false": False, "0": False, "no": False, "n": False}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ALL_COLUMNS = ("sku", "name", "description", "active")
WORDS = ("anvil", "rocket", "skates", "magnet", "glue", "spring", "tonic", "umbrella", "kite",
         "bolt", "widget", "lamp", "crate", "paint", "café", "crème", "naïve", "über")  # fmt: skip
# SKU prefixes: ASCII and not, so that case-insensitive identity is tried beyond ASCII
PREFIXES = ("sku-", "Ab-", "éclair-", "ØRE-", "zx")
BULK_STEPS = {"copying", "indexing", "indexing for search", "analyzing", "switching"}
IN_PLACE_STEPS = {"updating", "inserting"}
STEP_LINE = re.compile(r"import step ([a-z ]+): [0-9.]+s.* job_id=(\d+)$")
LINE_BREAK = re.compile(r"\r\n|\r|\n")
# List filters whose totals are compared with the model's: totals are cached per catalog
# version and carried over edits, so a stale one would show here
FILTERS = (
    {},
    {"active": "false"},
    {"name": "rocket"},
    {"description": "CAFÉ"},
    {"q": "kite"},
    {"sku": "ab-0"},
    {"active": "true", "name": "lamp"},
)


# --- the model ------------------------------------------------------------------------------


@dataclass
class Product:
    """A product as the model expects it; None where the app's value is yet to be learned."""

    sku: str
    name: str
    description: str
    active: bool
    writer: str  # the import or edit that wrote it last: what undo compares
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def values(self) -> tuple:
        return (self.sku, self.name, self.description, self.active)


@dataclass
class Record:
    """What an import changed, as its undo and its change record need it."""

    created: list[Product] = field(default_factory=list)  # ids learned after the import
    updated: dict[int, tuple[Product, Product]] = field(default_factory=dict)  # before, after
    deleted: dict[int, tuple] = field(default_factory=dict)  # values of those its undo deleted
    undone: bool = False


@dataclass
class Expected:
    """What an import of a file does to the catalog as the model has it now."""

    writes: dict[str, Product]  # lower(sku) -> the product after, for those created or updated
    created: int
    updated: int
    unchanged: int
    rows: int
    invalid_lines: list[int]
    superseded: int

    def counts(self) -> tuple:
        return (self.created, self.updated, self.unchanged, len(self.invalid_lines))


@dataclass
class CsvFile:
    """A file to upload: its header as spelled, and its rows as cells by column (None: blank)."""

    columns: tuple[str, ...]
    header: tuple[str, ...]
    rows: list[dict | None] = field(default_factory=list)
    raw: bytes | None = None  # the file as downloaded, when it is uploaded as it came
    # how it is written: CRLF, commas and UTF-8 as Excel writes it, or as SPEC also reads
    delimiter: str = ","
    newline: str = "\r\n"
    encoding: str = "utf-8"
    compressed: bool = False

    def data(self) -> bytes:
        if self.raw is not None:
            return self.raw
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=self.delimiter, lineterminator=self.newline)
        writer.writerow(self.header)
        for cells in self.rows:
            writer.writerow([] if cells is None else self.cells(cells))
        data = buffer.getvalue().encode(self.encoding)
        return gzip.compress(data) if self.compressed else data

    def cells(self, cells: dict) -> list[str]:
        return [cells[name] for name in self.columns] + cells.get("extra", [])

    def lines(self) -> list[int | None]:
        """The line each row starts on (None for a blank line), as a person counts them."""
        line, starts = 2, []
        for cells in self.rows:
            starts.append(None if cells is None else line)
            text = "" if cells is None else "".join(self.cells(cells))
            line += 1 + len(LINE_BREAK.findall(text))
        return starts


def unescape(value: str) -> str:
    """SPEC: an import drops the `'` a download put before what would start a formula."""
    return value[1:] if value[:1] == "'" and value[1:].startswith(FORMULA_STARTS) else value


def parse(cells: dict, columns: tuple[str, ...]) -> tuple | None:
    """A row's values as SPEC reads them: (sku, name, description?, active?), None if invalid."""
    sku, name = (unescape(cells[column].strip()) for column in ("sku", "name"))
    description = unescape(cells["description"].strip()) if "description" in columns else None
    word = cells["active"].strip().lower() if "active" in columns else ""
    if cells.get("extra") or not (0 < len(sku) <= 255 and 0 < len(name) <= 255):
        return None
    if len(description or "") > 10_000 or (word and word not in ACTIVE_WORDS):
        return None
    return sku, name, description, ACTIVE_WORDS.get(word)


def flag(value: bool) -> str:
    return "true" if value else "false"


class Model:
    """The catalog by lower(sku), the change records of imports, and the ids ever given."""

    def __init__(self):
        self.products: dict[str, Product] = {}
        self.records: dict[int, Record] = {}
        self.ids_seen: set[int] = set()
        self.edits = 0

    def expect(self, file: CsvFile) -> Expected:
        """Predict an import of `file`: invalid rows out, then the last row of a SKU wins."""
        last: dict[str, tuple] = {}
        rows, invalid_lines = 0, []
        for cells, line in zip(file.rows, file.lines(), strict=True):
            if cells is None:
                continue  # a blank line is no row
            rows += 1
            parsed = parse(cells, file.columns)
            if parsed is None:
                invalid_lines.append(line)
            else:
                last[parsed[0].lower()] = parsed
        writes = {}
        for key, parsed in last.items():
            new = self._written(key, *parsed)
            if new is not None:
                writes[key] = new
        created = sum(new.id is None for new in writes.values())
        unchanged = len(last) - len(writes)
        superseded = rows - len(invalid_lines) - len(last)
        return Expected(
            writes, created, len(writes) - created, unchanged, rows, invalid_lines, superseded
        )

    def _written(self, key: str, sku, name, description, active) -> Product | None:
        """The product a valid row writes; None when it leaves it as it is."""
        old = self.products.get(key)
        if old is None:  # new products are active, with no description, unless the file says
            return Product(sku, name, description or "", True if active is None else active, "")
        description = old.description if description is None else description
        new = Product(sku, name, description, old.active if active is None else active, "")
        if new.values() == old.values():
            return None
        new.id, new.created_at = old.id, old.created_at
        return new

    def apply(self, job_id: int, expected: Expected) -> None:
        """Write what the import does, and keep its change record for an undo."""
        record = self.records[job_id] = Record()
        for key, new in expected.writes.items():
            new.writer = f"import {job_id}"
            if new.id is None:
                record.created.append(new)
            else:
                record.updated[new.id] = (self.products[key], new)
            self.products[key] = new

    def undo(self, job_id: int) -> tuple[int, int, int]:
        """Undo an import as SPEC says; return (deleted, restored, conflicts)."""
        record = self.records[job_id]
        by_id = {product.id: key for key, product in self.products.items()}
        deleted = restored = 0
        for made in record.created:
            key = by_id.get(made.id)
            if key is not None and self.products[key].writer == made.writer:
                record.deleted[made.id] = self.products.pop(key).values()
                deleted += 1
        for product_id, (before, after) in record.updated.items():
            key = by_id.get(product_id)
            if key is not None and self.products[key].writer == after.writer:
                self.products[key] = before  # its timestamp too: as if never written
                restored += 1
        changed = len(record.created) + len(record.updated) - deleted - restored
        record.undone = True
        return deleted, restored, changed

    def changes(self, job_id: int) -> dict[tuple, tuple]:
        """The import's change record (changes.csv) by (kind, product id), as SPEC describes."""
        record, rows = self.records[job_id], {}
        by_id = {product.id: product for product in self.products.values()}
        for made in record.created:
            now = by_id.get(made.id)
            if now is not None:  # its values now, and whether anything wrote it since
                rows["created", made.id] = (*now.values(), *[None] * 4, now.writer != made.writer)
            elif made.id in record.deleted:  # as its undo deleted it
                rows["created", made.id] = (*record.deleted[made.id], *[None] * 4, False)
        for product_id, (before, after) in record.updated.items():
            now = by_id.get(product_id)
            # a description the import left as it was is not repeated
            same = before.description == after.description
            after_values = (*after.values()[:2], None if same else after.description, after.active)
            before_values = (*before.values()[:2], None if same else before.description)
            # changed since: not what the import wrote; once undone, not what its undo put back
            changed = now is None or now.writer != (before if record.undone else after).writer
            rows["updated", product_id] = (*after_values, *before_values, before.active, changed)
        return {key: tuple(_cell(value) for value in row) for key, row in rows.items()}

    def edit(self) -> str:
        self.edits += 1
        return f"edit {self.edits}"

    def total(self, filters: dict) -> int:
        """How many products a list with these filters holds (SPEC: substrings, any case)."""
        return sum(matches(product, filters) for product in self.products.values())


def matches(product: Product, filters: dict) -> bool:
    """Whether a list with these filters shows the product (SPEC: substrings, in any case)."""
    texts = {"sku": [product.sku], "name": [product.name], "description": [product.description]}
    texts["q"] = [product.sku, product.name, product.description]
    for name, term in filters.items():
        if name == "active":
            found = product.active == (term == "true")
        else:
            found = any(term.lower() in text.lower() for text in texts[name])
        if not found:
            return False
    return True


def _cell(value) -> str:
    """A value as a CSV download writes it (before its formula escape)."""
    if isinstance(value, bool):
        return flag(value)
    return "" if value is None else value


# --- generated values -----------------------------------------------------------------------


def words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def a_name(rng: random.Random) -> str:
    return words(rng, 1, 4).title()


def a_description(rng: random.Random) -> str:
    """Plain text mostly; multi-line, quoted, empty or formula-like now and then."""
    roll = rng.random()
    if roll < 0.08:
        return ""
    if roll < 0.2:
        return f"{words(rng, 2, 6)}\n{words(rng, 1, 5)}"
    if roll < 0.28:
        return f"{words(rng, 2, 6)}\r\n\r\n{words(rng, 1, 5)}, {words(rng, 1, 3)}"
    if roll < 0.32:
        return f'The "{words(rng, 1, 2)}" one; 5" wide, 3|4; tab\there'
    if roll < 0.34:
        return f"=SUM({rng.randint(1, 9)})"  # a download escapes it, an import unescapes it
    return words(rng, 3, 12)


def recased(rng: random.Random, sku: str) -> str:
    """The same SKU in other letter cases (never ß: its upper case is longer)."""
    return "".join(char.swapcase() if rng.random() < 0.5 else char for char in sku)


def padded(rng: random.Random, value: str) -> str:
    """The value as a spreadsheet may leave it: spaces or a tab around it, now and then."""
    roll = rng.random()
    if roll < 0.05:
        return f"  {value} "
    if roll < 0.07:
        return f"\t{value}\u00a0"  # a no-break space is trimmed too
    return value


def escaped(value: str) -> str:
    """A cell a download would write (SPEC): a `'` before a value that starts a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def row_of(rng: random.Random, sku: str, name: str, description: str, active: str) -> dict:
    return {
        "sku": padded(rng, sku),
        "name": padded(rng, escaped(name)),
        "description": padded(rng, escaped(description)),
        "active": active,
    }


def active_word(rng: random.Random, active: bool) -> str:
    word = rng.choice([word for word, value in ACTIVE_WORDS.items() if value == active])
    return word.upper() if rng.random() < 0.3 else word


def invalid_row(rng: random.Random, sku: str) -> dict:
    """A row SPEC rejects: no name, an unknown `active`, a value too long, a cell too many."""
    row = {"sku": sku, "name": "Ok", "description": "", "active": ""}
    kind = rng.randrange(5)
    if kind == 0:
        row["name"] = "   "
    elif kind == 1:
        row["active"] = "maybe"
    elif kind == 2:
        row["sku"] = "L" * 256
    elif kind == 3:
        row["description"] = "d" * 10_001
    else:
        row["extra"] = ["surplus"]
    return row


def header_of(columns: tuple[str, ...]) -> tuple[str, ...]:
    """Header cells matched in any case, spaces around ignored (SPEC)."""
    spelled = {"sku": " SKU", "name": "Name ", "description": "description", "active": "ACTIVE"}
    return tuple(spelled[column] for column in columns)


# --- the app --------------------------------------------------------------------------------


class App:
    """The running app as the test drives and reads it."""

    def __init__(self, http, catalog, sql, worker):
        self.http, self.catalog, self.sql, self.worker = http, catalog, sql, worker
        # job ids start again in every test: earlier tests' lines name the same ids
        self.log_start = len(worker.output())

    def upload(self, file: CsvFile, **form) -> dict:
        response = upload_csv(self.http, file.data(), data=form)
        assert response.status_code == 202, response.text
        return response.json()

    def run(self, file: CsvFile, **form) -> dict:
        return self.wait(self.upload(file, **form)["id"])

    def wait(self, job_id: int) -> dict:
        return wait_for_job(self.http, job_id, JOB_TIMEOUT)

    def post(self, path: str, status: int = 202) -> dict:
        response = self.http.post(path)
        assert response.status_code == status, response.text
        return response.json()

    def table_identity(self) -> int:
        """The products table's oid: a bulk import switches in another table."""
        return self.sql("SELECT 'products'::regclass::oid")[0][0]

    def steps(self, job_id: int) -> set[str]:
        """The merge steps the worker logged for the job."""
        lines = self.worker.output()[self.log_start :].splitlines()
        found = (STEP_LINE.search(line) for line in lines)
        return {match[1] for match in found if match and int(match[2]) == job_id}

    def total(self, **filters) -> int:
        response = self.http.get("/api/products", params={"per_page": 1, **filters})
        assert response.status_code == 200, response.text
        return response.json()["total"]

    def download(self, path: str, **params) -> list[dict]:
        """A CSV download's rows, each cell as an import would read it."""
        response = self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        rows = csv.DictReader(io.StringIO(response.text, newline=""))
        return [{name: unescape(value) for name, value in row.items()} for row in rows]

    def changes(self, job_id: int) -> dict[tuple, tuple]:
        rows = self.download(f"/api/imports/{job_id}/changes.csv")
        return {(row.pop("kind"), int(row.pop("product_id"))): tuple(row.values()) for row in rows}

    def changes_total(self, job_id: int, kind: str) -> int:
        response = self.http.get(f"/api/imports/{job_id}/changes", params={"kind": kind})
        assert response.status_code == 200, response.text
        return response.json()["total"]


# --- the checks -----------------------------------------------------------------------------


def check_catalog(app: App, model: Model) -> set[int]:
    """Compare every product with the model, learning what it could not know; return new ids."""
    actual = {row[1].lower(): row for row in app.catalog()}
    assert actual.keys() == model.products.keys(), _difference(actual, model)
    wrong, new_ids = [], set()
    for key, product in model.products.items():
        product_id, *_, created_at, updated_at = actual[key]
        if product.id is None:
            assert product_id not in model.ids_seen, f"{key}: id {product_id} was given before"
            product.id = product_id
            new_ids.add(product_id)
        product.created_at = product.created_at or created_at
        product.updated_at = product.updated_at or updated_at
        expected = (product.id, *product.values(), product.created_at, product.updated_at)
        if expected != actual[key]:
            wrong.append((key, expected, actual[key]))
    assert not wrong, f"{len(wrong)} products differ, (key, model, app): {wrong[:5]}"
    model.ids_seen |= new_ids
    totals = [(filters, app.total(**filters), model.total(filters)) for filters in FILTERS]
    assert [total for total in totals if total[1] != total[2]] == [], "(filters, app, model)"
    return new_ids


def _difference(actual: dict, model: Model) -> str:
    missing = sorted(model.products.keys() - actual.keys())[:5]
    extra = sorted(actual.keys() - model.products.keys())[:5]
    return f"missing from the app: {missing}; not in the model: {extra}"


def check_records(app: App, model: Model) -> None:
    """Every import's change record, as it reads now, against the model's."""
    for job_id in model.records:
        actual, expected = app.changes(job_id), model.changes(job_id)
        wrong = [(key, expected.get(key), actual.get(key)) for key in expected.keys() | actual]
        wrong = [difference for difference in wrong if difference[1] != difference[2]]
        assert not wrong, f"import {job_id}: {len(wrong)} changes differ: {sorted(wrong)[:5]}"


def expected_path(model: Model, expected: Expected) -> str | None:
    """The path the import's size calls for (postgres_stage.merge); None when it writes nothing."""
    catalog, distinct = len(model.products), len(expected.writes) + expected.unchanged
    writes = expected.created + expected.updated
    if not writes:
        return None
    bulk = distinct >= max(BULK_MIN_ROWS, BULK_MIN_SHARE * catalog) and writes >= max(
        BULK_MIN_ROWS, BULK_MIN_SHARE * (catalog + expected.created)
    )
    return "bulk" if bulk else "in place"


def check_job(job: dict, expected: Expected, status: str | None = None) -> None:
    """The job ended as predicted, with the model's counts."""
    status = status or ("completed_with_errors" if expected.invalid_lines else "completed")
    percent = 40 if status == "planned" else 100  # a plan stops short: its apply does the rest
    assert (job["status"], job["percent"]) == (status, percent), job
    counts = (job["created"], job["updated"], job["unchanged"], job["rows_invalid"])
    assert counts == expected.counts(), job
    assert (job["rows_processed"], job["rows_superseded"]) == (expected.rows, expected.superseded)


def check_written_together(model: Model, job_id: int, new_ids: set[int]) -> None:
    """Every product an import wrote carries one stamp; those it created, as created_at too."""
    written = [p for p in model.products.values() if p.writer == f"import {job_id}"]
    assert len({product.updated_at for product in written}) <= 1
    for product in written:
        if product.id in new_ids:
            assert product.created_at == product.updated_at


class Steps:
    """The sequence's steps, each checked against the model; the paths the imports took."""

    def __init__(self, app: App, model: Model, rng: random.Random):
        self.app, self.model, self.rng = app, model, rng
        self.paths: dict[int, str | None] = {}

    def check(self) -> set[int]:
        """The catalog and every change record as the model has them; return new ids."""
        new_ids = check_catalog(self.app, self.model)
        check_records(self.app, self.model)
        return new_ids

    def import_file(self, file: CsvFile) -> dict:
        """Import `file`, check the job, the catalog and the path; return the job."""
        expected = self.model.expect(file)
        path, identity = expected_path(self.model, expected), self.app.table_identity()
        job = self.app.run(file)
        self._check_import(job, expected, path, identity)
        return job

    def _check_import(self, job: dict, expected: Expected, path: str | None, identity) -> None:
        check_job(job, expected)
        self.model.apply(job["id"], expected)
        new_ids = self.check()
        check_written_together(self.model, job["id"], new_ids)
        assert len(new_ids) == expected.created
        steps = self.app.steps(job["id"])
        took = "bulk" if steps & BULK_STEPS else "in place" if steps & IN_PLACE_STEPS else None
        assert (took, self.app.table_identity() != identity) == (path, path == "bulk"), steps
        self.paths[job["id"]] = took
        rejected = self.app.download(f"/api/imports/{job['id']}/errors.csv")
        assert [int(row["line"]) for row in rejected] == expected.invalid_lines

    def plan_and_apply(self, file: CsvFile, meanwhile: Callable[[Expected], None]) -> dict:
        """Plan `file` (nothing written), run `meanwhile`, apply the plan: the counts of then."""
        planned = self.model.expect(file)
        before, identity = self.app.catalog(), self.app.table_identity()
        plan = self.app.run(file, plan="true")
        check_job(plan, planned, status="planned")
        assert (self.app.catalog(), self.app.table_identity()) == (before, identity)
        assert self.app.changes_total(plan["id"], "created") == planned.created
        assert self.app.changes_total(plan["id"], "updated") == planned.updated
        meanwhile(planned)
        expected = self.model.expect(file)
        assert expected.counts() != planned.counts()  # `meanwhile` changed what it does
        path, identity = expected_path(self.model, expected), self.app.table_identity()
        assert self.app.post(f"/api/imports/{plan['id']}/apply")["id"] == plan["id"]
        self._check_import(self.app.wait(plan["id"]), expected, path, identity)
        return plan

    def queued(self, files: list[CsvFile], undo_of: int) -> list[dict]:
        """Queue files and the undo of an earlier import behind them: they apply in that order."""
        ids = [self.app.upload(file)["id"] for file in files]
        undo = self.app.post(f"/api/imports/{undo_of}/undo")
        jobs = [self.app.wait(job_id) for job_id in ids]
        undo = self.app.wait(undo["id"])
        for file, job in zip(files, jobs, strict=True):
            expected = self.model.expect(file)
            check_job(job, expected)
            self.model.apply(job["id"], expected)
            took = self.app.steps(job["id"]) & (BULK_STEPS | IN_PLACE_STEPS)
            assert took <= IN_PLACE_STEPS and bool(took) == bool(expected.writes), took
        counts = (undo["status"], undo["deleted"], undo["updated"], undo["conflicts"])
        assert counts == ("completed", *self.model.undo(undo_of)), undo
        new_ids = self.check()
        for job in jobs:
            check_written_together(self.model, job["id"], new_ids)
        return jobs

    def cancelled(self, file: CsvFile) -> dict:
        """Cancel an import as soon as it is queued: it applies entirely or not at all."""
        expected = self.model.expect(file)
        path, identity = expected_path(self.model, expected), self.app.table_identity()
        before = self.app.catalog()
        job = self.app.upload(file)
        cancel = self.app.http.post(f"/api/imports/{job['id']}/cancel")
        job = self.app.wait(job["id"])
        assert cancel.status_code in (202, 409), cancel.text
        if job["status"] != "cancelled":  # too late: it had finished, or was committing
            self._check_import(job, expected, path, identity)
            return job
        assert cancel.status_code == 202, cancel.text
        assert (self.app.catalog(), self.app.table_identity()) == (before, identity)
        assert self.app.changes_total(job["id"], "created") == 0
        assert self.app.changes_total(job["id"], "updated") == 0
        self.refuse_undo(job["id"])
        return job

    def refused(self, file: CsvFile) -> None:
        """An import past its error threshold fails and leaves the catalog as it was."""
        file.rows += [invalid_row(self.rng, f"bad-{number}") for number in range(3)]
        before, identity = self.app.catalog(), self.app.table_identity()
        job = self.app.run(file, max_invalid="2")
        assert job["status"] == "failed", job
        assert "more than the limit of 2" in job["error"]
        assert (self.app.catalog(), self.app.table_identity()) == (before, identity)
        self.refuse_undo(job["id"])

    def retry(self, job_id: int, file: CsvFile) -> dict:
        """Import a finished import's file again (`retry`): counted against the catalog now."""
        expected = self.model.expect(file)
        path, identity = expected_path(self.model, expected), self.app.table_identity()
        again = self.app.post(f"/api/imports/{job_id}/retry")
        job = self.app.wait(again["id"])
        assert job["duplicate_of"] == job_id, job
        self._check_import(job, expected, path, identity)
        return job

    def undo(self, job_id: int) -> dict:
        """Undo an import; check its counts and the catalog."""
        undo = self.app.post(f"/api/imports/{job_id}/undo")
        assert (undo["kind"], undo["undo_of"]) == ("undo", job_id)
        undo = self.app.wait(undo["id"])
        deleted, restored, conflicts = self.model.undo(job_id)
        assert undo["status"] == "completed", undo
        counts = (undo["deleted"], undo["updated"], undo["conflicts"])
        assert counts == (deleted, restored, conflicts), undo
        assert self.app.http.get(f"/api/imports/{job_id}").json()["undone_by"] == undo["id"]
        self.check()
        return undo

    def refuse_undo(self, job_id: int) -> None:
        response = self.app.http.post(f"/api/imports/{job_id}/undo")
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "conflict"

    # --- edits through the API --------------------------------------------------------------

    def edits(self, count: int, keys: list[str] | None = None) -> None:
        """Random edits, deletes and creates through the API, then the catalog checked."""
        actions = (self.rename, self.rename, self.toggle, self.recase, self.same, self.delete)
        for key in self.rng.sample(keys or list(self.model.products), count):
            if key in self.model.products:
                self.rng.choice(actions)(key)
        for _ in range(count // 4):
            self.create(f"api-{self.rng.randrange(10**9)}")
        self.clash()
        self.check()

    def patch(self, key: str, **fields) -> None:
        product = self.model.products[key]
        response = self.app.http.patch(f"/api/products/{product.id}", json=fields)
        assert response.status_code == 200, response.text
        cleaned = {
            name: value.strip() if isinstance(value, str) else value
            for name, value in fields.items()
        }
        new = Product(**(vars(product) | cleaned))
        if new.values() != product.values():  # an edit that changes nothing writes nothing
            new.writer, new.updated_at = self.model.edit(), None
        del self.model.products[key]
        self.model.products[new.sku.lower()] = new

    def rename(self, key: str) -> None:
        self.patch(key, name=f" {a_name(self.rng)} ", description=a_description(self.rng))

    def toggle(self, key: str) -> None:
        self.patch(key, active=not self.model.products[key].active)

    def recase(self, key: str) -> None:
        self.patch(key, sku=recased(self.rng, self.model.products[key].sku))

    def same(self, key: str) -> None:
        product = self.model.products[key]
        self.patch(key, name=product.name, active=product.active)

    def delete(self, key: str) -> None:
        response = self.app.http.delete(f"/api/products/{self.model.products[key].id}")
        assert response.status_code == 204, response.text
        del self.model.products[key]

    def create(self, sku: str, name: str | None = None, description: str = "") -> None:
        name = name or a_name(self.rng)
        fields = {"sku": sku, "name": name, "description": description, "active": False}
        response = self.app.http.post("/api/products", json=fields)
        assert response.status_code == 201, response.text
        product_id = response.json()["id"]
        assert product_id not in self.model.ids_seen
        self.model.ids_seen.add(product_id)
        product = Product(sku, name, description, False, self.model.edit(), id=product_id)
        self.model.products[sku.lower()] = product

    def clash(self) -> None:
        """A create or a SKU change onto another product's SKU, in another case: 409."""
        first, second = self.rng.sample(list(self.model.products.values()), 2)
        taken = recased(self.rng, second.sku)
        response = self.app.http.post("/api/products", json={"sku": taken, "name": "Clash"})
        assert response.status_code == 409, response.text
        response = self.app.http.patch(f"/api/products/{first.id}", json={"sku": taken})
        assert response.status_code == 409, response.text

    def delete_all(self) -> None:
        response = self.app.http.delete("/api/products", params={"confirm": "true"})
        assert response.status_code == 200, response.text
        assert response.json() == {"deleted": len(self.model.products)}
        self.model.products.clear()
        self.check()

    # --- files ------------------------------------------------------------------------------

    def fresh_file(self, count: int, prefixes=PREFIXES) -> CsvFile:
        """`count` new products, with superseded and invalid rows, blank lines, longest values."""
        rng, columns = self.rng, ("name", "sku", "description", "active")
        file = CsvFile(columns, header_of(columns))
        # the longest valid values first; an invalid row may follow a product's last valid one
        finals = [
            {"sku": "S" * 255, "name": "N" * 255, "description": "d\n" * 4999 + "dd", "active": ""}
        ]
        for number in range(count - 1):
            sku = f"{rng.choice(prefixes)}{number:05d}"
            active = "" if rng.random() < 0.6 else active_word(rng, rng.random() < 0.8)
            finals.append(row_of(rng, sku, a_name(rng), a_description(rng), active))
        for position, final in enumerate(finals):
            if rng.random() < 0.07:  # an earlier row of the same product, superseded
                sku = recased(rng, final["sku"])
                file.rows.append(row_of(rng, sku, a_name(rng), a_description(rng), "no"))
            file.rows.append(final)
            if rng.random() < 0.004:  # an invalid row after it: the valid one still wins
                file.rows.append(invalid_row(rng, recased(rng, final["sku"].strip())))
            if position in (10, count // 2):
                file.rows.append(None)
        return file

    def catalog_file(self, columns: tuple[str, ...], share: float, new: int, **how) -> CsvFile:
        """Every product in the catalog, `share` of them changed, and `new` new ones."""
        rng, file = self.rng, CsvFile(columns, header_of(columns), **how)
        for product in self.model.products.values():
            sku, name, description, active = product.values()
            # a change to a column the file lacks would change nothing: the name changes instead
            change = rng.choices(ALL_COLUMNS, (15, 50, 20, 15))[0] if rng.random() < share else ""
            if change == "sku":
                sku = recased(rng, sku)  # the spelling alone changes: updated
            elif change == "description" and change in columns:
                description = a_description(rng)
            elif change == "active" and change in columns:
                active = not active
            elif change:
                name = a_name(rng)
            word = active_word(rng, active) if rng.random() < 0.7 else ""
            file.rows.append(row_of(rng, sku, name, description, word))
        for _ in range(new):
            file.rows.append(row_of(rng, f"new-{rng.randrange(10**9)}", a_name(rng), "", ""))
        rng.shuffle(file.rows)
        return file

    def few_rows_file(self) -> CsvFile:
        """A short file without descriptions (the catalog's stay), in Windows-1252, `|` apart."""
        rng, columns = self.rng, ("sku", "name", "active")
        file = CsvFile(columns, header_of(columns), encoding="cp1252", delimiter="|")
        for key in rng.sample(list(self.model.products), 200):
            product = self.model.products[key]
            name = a_name(rng) if rng.random() < 0.7 else product.name
            file.rows.append({"sku": product.sku, "name": name, "active": rng.choice(["", "n"])})
        for number in range(60):
            file.rows.append({"sku": f"few-{number}", "name": a_name(rng), "active": ""})
        file.rows.append({"sku": "few-0", "name": "Twice", "active": "maybe"})  # rejected
        return file

    def export_file(self) -> CsvFile:
        """The catalog's export, checked against the model, to upload as it came."""
        response = self.app.http.get("/api/products/export.csv")
        assert response.status_code == 200, response.text
        rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
        file = CsvFile(ALL_COLUMNS, ALL_COLUMNS, rows, raw=response.content)
        exported = {}
        for cells in rows:
            sku, name, description, active = parse(cells, ALL_COLUMNS)
            exported[sku.lower()] = (sku, name, description, active)
        assert exported == {key: p.values() for key, p in self.model.products.items()}
        return file


def test_the_catalog_follows_the_model_through_imports_edits_and_undos(
    http, catalog, sql, live_worker
):
    rng = random.Random(SEED)
    model = Model()
    steps = Steps(App(http, catalog, sql, live_worker), model, rng)

    # a fresh import, built in bulk into the empty catalog
    fresh = steps.import_file(steps.fresh_file(FRESH_PRODUCTS))
    steps.edits(40)
    # a few rows without descriptions: merged in place
    few = steps.import_file(steps.few_rows_file())
    assert "read as Windows-1252" in few["warnings"][0]
    # the whole catalog again, 5% of it changed, no `active` column: merged in place
    minority_file = steps.catalog_file(
        ("sku", "name", "description"), 0.05, 80, delimiter=";", newline="\n", encoding="utf-8-sig"
    )
    minority = steps.import_file(minority_file)
    steps.edits(30)
    # two files and an undo queued together apply in the order they came
    small = [steps.catalog_file(ALL_COLUMNS, 0.02, 30), steps.catalog_file(ALL_COLUMNS, 0.02, 0)]
    steps.queued(small, undo_of=few["id"])
    steps.refuse_undo(few["id"])

    # most of the catalog changed: planned, then applied after edits, built in bulk
    def meanwhile(planned: Expected) -> None:
        updated = [key for key, p in planned.writes.items() if p.id is not None]
        steps.delete(updated[0])  # an update becomes a creation
        created = next(p for p in planned.writes.values() if p.id is None)
        steps.create(created.sku, created.name)  # a creation becomes an update
        steps.edits(10)

    columns = ("sku", "description", "name", "active")
    majority_file = steps.catalog_file(columns, 0.85, 1200, delimiter="\t", compressed=True)
    majority = steps.plan_and_apply(majority_file, meanwhile)
    steps.undo(majority["id"])
    steps.refuse_undo(majority["id"])

    # the export imports back with nothing to write, and so does the same file again
    exported = steps.export_file()
    roundtrip = steps.import_file(exported)
    assert steps.paths[roundtrip["id"]] is None
    steps.edits(10)
    steps.retry(roundtrip["id"], exported)
    # a bulk-sized import cancelled at once, and one past its error threshold: all or nothing
    steps.cancelled(steps.catalog_file(ALL_COLUMNS, 0.9, 100))
    steps.refused(steps.fresh_file(2_000, ("refused-",)))

    # names only, in bulk: descriptions and `active` stay
    names = steps.import_file(steps.catalog_file(("name", "sku"), 0.9, 500))
    # edits to products the older imports wrote, then their undo: those are kept as conflicts
    touched = [key for key, p in model.products.items() if p.writer == f"import {minority['id']}"]
    steps.edits(15, touched)
    undone = steps.undo(minority["id"])
    assert undone["conflicts"] > 0
    steps.refuse_undo(undone["id"])  # an undo is not undone
    discarded = steps.app.run(steps.few_rows_file(), plan="true")
    steps.app.post(f"/api/imports/{discarded['id']}/discard", status=200)
    steps.refuse_undo(discarded["id"])
    steps.undo(names["id"])  # what the older undo kept, it puts back as it was before

    # the oldest import, once every product is gone: nothing left to undo
    steps.delete_all()
    assert steps.undo(fresh["id"])["conflicts"] == fresh["created"]

    # planned into the empty catalog, applied once products arrived through the API
    def arrive(planned: Expected) -> None:
        for product in list(planned.writes.values())[:3]:
            steps.create(product.sku.upper(), product.name)

    again = steps.plan_and_apply(steps.fresh_file(12_000, ("again-",)), arrive)
    steps.edits(10)
    steps.undo(again["id"])

    assert set(steps.paths.values()) >= {"bulk", "in place"}, steps.paths


def test_a_value_typed_with_a_formulas_quote_is_stored_as_an_import_reads_it(http, catalog):
    """'=Q-1 typed in is stored as an import of the cell '=Q-1 stores it (=Q-1), so that the
    export, which escapes it as '=Q-1 again, imports back unchanged."""
    fields = {"sku": "'=Q-1", "name": "'-5", "description": "'@home"}
    created = http.post("/api/products", json=fields)
    assert created.status_code == 201, created.text
    assert [created.json()[name] for name in fields] == ["=Q-1", "-5", "@home"]
    before = catalog()

    job = import_csv(http, http.get("/api/products/export.csv").content)

    assert (job["created"], job["updated"], job["unchanged"]) == (0, 0, 1)
    assert catalog() == before
