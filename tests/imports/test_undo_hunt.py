"""Plans, change records, undo, cancel and retry, hunted against a model written from SPEC.

A hypothesis state machine uploads small files (as plans or imports), applies and discards
plans, edits products, undoes imports (and asks for what may not be undone), retries finished
jobs and ages them past their windows, through HTTP, in both modes (gunicorn and Celery; the
embedded server's threads). After every step the catalog, every job of the run and every
change record (each JSON page, and `changes.csv`) are compared with the model; at the end of
a run, the webhook events and audit entries its actions caused. A scripted run does the same
around imports built in bulk (PostgreSQL's other path). Then cancels at each stage of a plan,
an apply and an undo: nothing changes, and a retry runs the same file and options.
"""

import csv
import hashlib
import io
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import update
from sqlalchemy.orm import Session

from tests.conftest import http_client
from tests.helpers import upload_csv, wait_for_job, wait_until
from tests.modes import snapshot
from tests.webhooks.conftest import settled_deliveries
from tests.webhooks.receiver import Receiver, verify

from .conftest import TABLE_LOCK, wait_for, wait_for_heartbeats

pytestmark = pytest.mark.usefixtures("live_worker")


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1 that answers 200."""
    server = Receiver()
    yield server
    server.close()


EDITOR = {"id": 2, "email": "editor@example.test"}
ADMIN = {"id": 1, "email": "admin@example.test"}
EVENTS = ["import.completed", "import.failed", "import.undone"]
POOL = 10  # SKUs a run's files and edits draw from: enough overlap to update and conflict
NAMES = ("Apple", "Banana", "Cherry", "=1+2", "Date pie")
DESCRIPTIONS = ("", "Red", "two\nlines", "-minus", "Sweet, sour")
ACTIVE = {"": None, "yes": True, "no": False, "TRUE": True, "0": False}
COLUMN_SETS = (
    ("sku", "name"),
    ("sku", "name", "description"),
    ("name", "sku", "active"),
    ("sku", "name", "description", "active"),
)
BULK_ROWS = 10_000  # a fresh file this size is built in bulk and switched in (BULK_MIN_ROWS)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# HUNT=40 runs 40 random sequences (unshrunk: a failure is reported as found); by default a
# few fixed ones, the same on every run.
HUNT = int(os.environ.get("HUNT") or 0)
CSV_HEADER = [
    "kind", "product_id", "sku", "name", "description", "active",
    "sku_before", "name_before", "description_before", "active_before", "changed_since",
]  # fmt: skip


# --- files ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class File:
    """A file to upload: its columns and rows of cells (an empty name makes a row invalid)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def data(self) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return buffer.getvalue().encode()

    def parsed(self) -> list[dict | None]:
        """Each row as SPEC reads it (None when invalid), in file order."""
        found = []
        for cells in self.rows:
            row = dict(zip(self.columns, cells, strict=True))
            if not row["name"]:
                found.append(None)
                continue
            found.append(
                {
                    "sku": row["sku"],
                    "name": row["name"],
                    "description": row.get("description"),
                    "active": ACTIVE[row["active"]] if "active" in row else None,
                }
            )
        return found


def files(prefix: str):
    """Files of up to 8 rows over the run's SKU pool, in any case, some rows invalid."""
    cell = st.tuples(
        st.integers(0, POOL - 1),
        st.booleans(),  # upper case
        st.sampled_from(("", *NAMES)),
        st.sampled_from(DESCRIPTIONS),
        st.sampled_from(tuple(ACTIVE)),
    )

    def build(columns, cells):
        rows = []
        for number, upper, name, description, active in cells:
            values = {
                "sku": f"{prefix}k-{number}".upper() if upper else f"{prefix}k-{number}",
                "name": name,
                "description": description,
                "active": active,
            }
            rows.append(tuple(values[column] for column in columns))
        return File(columns, tuple(rows))

    return st.builds(build, st.sampled_from(COLUMN_SETS), st.lists(cell, max_size=8))


# --- the model ------------------------------------------------------------------------------


@dataclass
class Product:
    sku: str
    name: str
    description: str
    active: bool
    writer: str  # who wrote it last: what undo and `changed_since` compare
    # who created it: on SQLite a new product may take the id of the last one deleted
    origin: str = ""
    updated_at: datetime | None = None  # learned from the catalog after each write

    def values(self) -> tuple:
        return (self.sku, self.name, self.description, self.active)


@dataclass
class Outcome:
    """What an import of a file does to the catalog as the model holds it now."""

    rows: int
    invalid: int
    distinct: int
    # (key, the product's id or None for a new one, the product after), in the file order of
    # each SKU's last row
    writes: list[tuple[str, int | None, Product]]

    @property
    def created(self) -> list[tuple[str, Product]]:
        return [(key, new) for key, old, new in self.writes if old is None]

    @property
    def updated(self) -> list[tuple[int, Product]]:
        return [(old, new) for _, old, new in self.writes if old is not None]


@dataclass
class Job:
    """A job of this run as the model expects it."""

    id: int
    file: File | None
    upload: int | None = None  # the job whose upload holds its file (retries share it)
    kind: str = "import"
    status: str = "queued"
    options: dict = field(default_factory=dict)
    created: list[int] = field(default_factory=list)  # product ids, in file order
    updated: list[tuple[int, Product, Product]] = field(default_factory=list)  # id, before, after
    deleted: dict[int, tuple] = field(default_factory=dict)  # what its undo deleted
    planned: tuple[list, list] | None = None  # a plan's (created, updated) as it read them
    undone_by: int | None = None
    aged: bool = False


class Model:
    """The catalog by product id, and the jobs of this run."""

    def __init__(self):
        self.products: dict[int, Product] = {}
        self.jobs: dict[int, Job] = {}
        self.edits = 0

    def by_key(self, key: str) -> int | None:
        return self.keys().get(key)

    def keys(self) -> dict[str, int]:
        return {product.sku.lower(): product_id for product_id, product in self.products.items()}

    def expect(self, file: File) -> Outcome:
        """SPEC: invalid rows out, the last row of a SKU wins, matching values unchanged."""
        parsed = file.parsed()
        last = {}
        for row in parsed:
            if row is not None:
                last.pop(row["sku"].lower(), None)  # moved to its last position
                last[row["sku"].lower()] = row
        writes, keys = [], self.keys()
        for key, row in last.items():
            old = self.products[keys[key]] if key in keys else None
            description = row["description"]
            if old is None:
                active = True if row["active"] is None else row["active"]
                new = Product(row["sku"], row["name"], description or "", active, "")
            else:
                description = old.description if description is None else description
                active = old.active if row["active"] is None else row["active"]
                new = Product(row["sku"], row["name"], description, active, "")
                if new.values() == old.values():
                    continue
            writes.append((key, keys.get(key), new))
        invalid = parsed.count(None)
        return Outcome(len(parsed), invalid, len(last), writes)

    def apply(self, job: Job, outcome: Outcome, catalog: list) -> None:
        """Write what the import did; learn the ids it gave (the catalog's new ones)."""
        for _, old, new in outcome.writes:
            new.writer = f"import {job.id}"
            new.origin = new.writer if old is None else self.products[old].origin
        for product_id, new in outcome.updated:
            job.updated.append((product_id, self.products[product_id], new))
            self.products[product_id] = new
        ids = {row[1].lower(): row[0] for row in catalog}
        for key, new in outcome.created:
            job.created.append(ids[key])
            self.products[ids[key]] = new

    def undo(self, job: Job) -> tuple[int, int, int]:
        """SPEC: delete what it created, restore what it updated, unless changed since."""
        deleted = restored = 0
        for product_id in job.created:
            product = self.products.get(product_id)
            if product is not None and product.writer == f"import {job.id}":
                job.deleted[product_id] = self.products.pop(product_id).values()
                deleted += 1
        for product_id, before, after in job.updated:
            if self.products.get(product_id) is after:
                self.products[product_id] = before
                restored += 1
        conflicts = len(job.created) + len(job.updated) - deleted - restored
        return deleted, restored, conflicts

    def record(self, job: Job) -> list[dict]:
        """The job's change record as docs/api.md describes it, created first, in file order."""
        if job.aged:  # its record is removed with the undo window (docs/api.md)
            return []
        if job.planned is not None:
            return self._planned(*job.planned) if job.status == "planned" else []
        items = []
        for product_id in job.created:
            now = self.products.get(product_id)
            if now is not None and now.origin == f"import {job.id}":
                changed = now.writer != f"import {job.id}"
                items.append(_created(product_id, now.values(), changed))
            elif product_id in job.deleted:
                items.append(_created(product_id, job.deleted[product_id], False))
        for product_id, before, after in job.updated:
            now = self.products.get(product_id)
            # changed since: not what the import wrote; once undone, not what its undo put back
            changed = now is None or now.writer != (before if job.undone_by else after).writer
            items.append(_updated(product_id, before, after, changed))
        return items

    def _planned(self, created: list, updated: list) -> list[dict]:
        items = [_created(None, new.values(), False) for new in created]
        return items + [_updated(pid, before, after, False) for pid, before, after in updated]


def _created(product_id, values: tuple, changed_since: bool) -> dict:
    fields = dict(zip(("sku", "name", "description", "active"), values, strict=True))
    return {
        "sku": fields["sku"],
        "product_id": product_id,
        "kind": "created",
        "changed_since": changed_since,
        "changes": {name: {"before": None, "after": value} for name, value in fields.items()},
    }


def _updated(product_id, before: Product, after: Product, changed_since: bool) -> dict:
    names = ("sku", "name", "description", "active")
    then, now = before.values(), after.values()
    return {
        "sku": after.sku,
        "product_id": product_id,
        "kind": "updated",
        "changed_since": changed_since,
        "changes": {
            name: {"before": old, "after": new}
            for name, old, new in zip(names, then, now, strict=True)
            if old != new
        },
    }


def as_csv_row(item: dict) -> list[str]:
    """A change record item as changes.csv writes it (docs/api.md), before its formula escape."""
    changes, kind = item["changes"], item["kind"]

    def value(name: str, when: str) -> str:
        if name in changes:
            found = changes[name][when]
        elif kind == "updated" and name != "description":
            found = item["_values"][name]  # an update repeats the fields it left as they were
        else:
            found = None
        if isinstance(found, bool):
            return "true" if found else "false"
        return "" if found is None else found

    names = ("sku", "name", "description", "active")
    product_id = "" if item["product_id"] is None else str(item["product_id"])
    after = [value(name, "after") for name in names]
    before = [value(name, "before") for name in names]
    changed = "true" if item["changed_since"] else "false"
    return [kind, product_id, *after, *before, changed]


def escape(cell: str) -> str:
    """SPEC: a download puts a `'` before a cell that starts a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


# --- the app --------------------------------------------------------------------------------


class Seen:
    """What the whole test saw across runs: the files of completed imports."""

    def __init__(self):
        self.completed_files: dict[str, list[int]] = {}  # SHA-256 -> its completed imports
        self.undone: set[int] = set()  # imports undone: their files are not "imported" now


class Hunt(RuleBasedStateMachine):
    """One run: a fresh catalog, an editor who acts, an admin who reads the audit log."""

    # the running app, set by the `hunt` fixture
    http = editor = catalog = receiver = hook = seen = upkeep = finished = None
    runs = 0

    def __init__(self):
        super().__init__()
        Hunt.runs += 1
        self.prefix = f"r{Hunt.runs}"
        self.model = Model()
        self.expected_events: list[tuple[str, int, str]] = []  # (type, job id, actor email)
        self.expected_audit: list[tuple[str, str, str]] = []  # (action, target, actor email)

    # --- helpers ----------------------------------------------------------------------------

    def client(self, actor: dict):
        return self.http if actor is ADMIN else self.editor

    def wait(self, job_id: int) -> dict:
        return wait_for_job(self.http, job_id, timeout=180)

    def audit(self, action: str, target: str, actor: dict) -> None:
        self.expected_audit.append((action, target, actor["email"]))

    def duplicate_of(self, file: File) -> int | None:
        imported = self.seen.completed_files.get(hashlib.sha256(file.data()).hexdigest(), [])
        in_effect = [job_id for job_id in imported if job_id not in self.seen.undone]
        return max(in_effect, default=None)

    def end(self, job: Job, done: dict, outcome: Outcome, actor: dict) -> None:
        """Check a finished import or plan against the model, and take in what it did."""
        created, updated = outcome.created, outcome.updated
        if outcome.rows and outcome.rows == outcome.invalid:
            status = "failed"
        elif job.options.get("plan"):
            status = "planned"
        else:
            status = "completed_with_errors" if outcome.invalid else "completed"
        counts = (done["created"], done["updated"], done["unchanged"], done["rows_invalid"])
        assert done["status"] == status, done
        unchanged = outcome.distinct - len(outcome.writes)
        if status != "failed":
            assert counts == (len(created), len(updated), unchanged, outcome.invalid), done
            assert done["percent"] == (40 if status == "planned" else 100), done
        assert done["rows_processed"] == outcome.rows, done
        job.status = status
        if status == "failed":
            self.expected_events.append(("import.failed", job.id, actor["email"]))
            return
        if status == "planned":
            before = [(pid, self.model.products[pid], new) for pid, new in updated]
            job.planned = ([new for _, new in created], before)
            return
        self.model.apply(job, outcome, self.catalog())
        self.expected_events.append(("import.completed", job.id, actor["email"]))
        sha256 = hashlib.sha256(job.file.data()).hexdigest()
        self.seen.completed_files.setdefault(sha256, []).append(job.id)

    def upload(self, file: File, options: dict, actor: dict) -> Job:
        duplicate = self.duplicate_of(file)
        response = upload_csv(self.client(actor), file.data(), data=options)
        assert response.status_code == 202, response.text
        job = Job(response.json()["id"], file, options=options)
        job.upload = job.id
        self.model.jobs[job.id] = job
        self.audit("import.created", f"import #{job.id}", actor)
        done = self.wait(job.id)
        assert done["duplicate_of"] == duplicate, (done, duplicate)
        assert done["created_by"] == actor["email"]
        self.end(job, done, self.model.expect(file), actor)
        return job

    def jobs_where(self, test) -> list[Job]:
        return [job for job in self.model.jobs.values() if test(job)]

    # --- rules ------------------------------------------------------------------------------

    @initialize()
    def empty_catalog(self):
        response = self.http.delete("/api/products", params={"confirm": "true"})
        assert response.status_code == 200, response.text

    @rule(file=st.data(), by_admin=st.booleans())
    def import_file(self, file, by_admin):
        self.upload(file.draw(files(self.prefix)), {}, ADMIN if by_admin else EDITOR)

    @rule(file=st.data(), by_admin=st.booleans())
    def plan_file(self, file, by_admin):
        drawn = file.draw(files(self.prefix))
        self.upload(drawn, {"plan": "true"}, ADMIN if by_admin else EDITOR)

    @precondition(lambda self: self.jobs_where(lambda job: job.status == "planned"))
    @rule(data=st.data(), by_admin=st.booleans())
    def apply(self, data, by_admin):
        job = data.draw(st.sampled_from(self.jobs_where(lambda job: job.status == "planned")))
        self.apply_plan(job, ADMIN if by_admin else EDITOR)

    def apply_plan(self, job: Job, actor: dict) -> None:
        """Apply a plan: the same job, counted against the catalog as it is now."""
        duplicate = self.duplicate_of(job.file)
        response = self.client(actor).post(f"/api/imports/{job.id}/apply")
        assert response.status_code == 202, response.text
        assert response.json()["id"] == job.id
        self.audit("import.applied", f"import #{job.id}", actor)
        job.options, job.planned = {}, None
        done = self.wait(job.id)
        assert (done["plan"], done["duplicate_of"]) == (False, duplicate), done
        # the upload is the uploader's, the import's end is the applier's: its event names them
        assert done["applied_by"] == actor["email"], done
        self.end(job, done, self.model.expect(job.file), actor)

    @precondition(lambda self: self.jobs_where(lambda job: job.status == "planned"))
    @rule(data=st.data())
    def discard(self, data):
        job = data.draw(st.sampled_from(self.jobs_where(lambda job: job.status == "planned")))
        response = self.editor.post(f"/api/imports/{job.id}/discard")
        assert response.status_code == 200, response.text
        # as a cancelled job does, it keeps the percent it reached: the plan's
        assert (response.json()["status"], response.json()["percent"]) == ("discarded", 40)
        self.audit("import.discarded", f"import #{job.id}", EDITOR)
        job.status = "discarded"

    @precondition(lambda self: self.model.products)
    @rule(data=st.data(), how=st.sampled_from(("rename", "toggle", "recase", "same", "delete")))
    def edit(self, data, how):
        self.change(data.draw(st.sampled_from(sorted(self.model.products))), how)

    def change(self, product_id: int, how: str) -> None:
        """Edit or delete a product through the API, as the editor."""
        product = self.model.products[product_id]
        if how == "delete":
            response = self.editor.delete(f"/api/products/{product_id}")
            assert response.status_code == 204, response.text
            del self.model.products[product_id]
            return
        fields = {
            "rename": {"name": f"Edited {self.model.edits}"},
            "toggle": {"active": not product.active},
            "recase": {"sku": product.sku.swapcase()},
            "same": {"name": product.name},
        }[how]
        response = self.editor.patch(f"/api/products/{product_id}", json=fields)
        assert response.status_code == 200, response.text
        new = Product(**(vars(product) | fields))
        if new.values() != product.values():  # an edit that changes nothing writes nothing
            self.model.edits += 1
            new.writer, new.updated_at = f"edit {self.model.edits}", None
            self.model.products[product_id] = new

    @rule(number=st.integers(0, POOL - 1))
    def create(self, number):
        sku = f"{self.prefix}k-{number}"
        response = self.editor.post("/api/products", json={"sku": sku, "name": "Made by hand"})
        if self.model.by_key(sku) is not None:
            assert response.status_code == 409, response.text
            return
        assert response.status_code == 201, response.text
        self.model.edits += 1
        edit = f"edit {self.model.edits}"
        product = Product(sku, "Made by hand", "", True, edit, origin=edit)
        self.model.products[response.json()["id"]] = product

    @precondition(lambda self: self.model.jobs)
    @rule(data=st.data(), by_admin=st.booleans())
    def undo(self, data, by_admin):
        job = data.draw(st.sampled_from(list(self.model.jobs.values())))
        self.undo_job(job, ADMIN if by_admin else EDITOR)

    def undo_job(self, job: Job, actor: dict) -> None:
        """Undo any job of the run: a completed import once, within its window; else 409."""
        response = self.client(actor).post(f"/api/imports/{job.id}/undo")
        undoable = job.kind == "import" and job.status.startswith("completed")
        if not undoable or job.undone_by or job.aged:
            assert response.status_code == 409, response.text
            if job.aged and undoable and not job.undone_by:
                assert "more than 7 days ago" in response.json()["error"]["message"]
            return
        assert response.status_code == 202, response.text
        undo = Job(response.json()["id"], None, kind="undo")
        self.model.jobs[undo.id] = undo
        self.audit("import.undone", f"import #{job.id}", actor)
        done = self.wait(undo.id)
        deleted, restored, conflicts = self.model.undo(job)
        assert (done["kind"], done["undo_of"], done["status"]) == ("undo", job.id, "completed")
        assert (done["deleted"], done["updated"], done["conflicts"]) == (
            deleted,
            restored,
            conflicts,
        ), done
        assert done["created_by"] == actor["email"]
        job.undone_by, undo.status = undo.id, "completed"
        self.seen.undone.add(job.id)
        self.expected_events.append(("import.undone", undo.id, actor["email"]))
        for again in (job, undo):  # once only, and an undo is not undone
            response = self.client(actor).post(f"/api/imports/{again.id}/undo")
            assert response.status_code == 409, response.text

    def retryable(self) -> list[Job]:
        """Imports whose file is still kept: the upkeep removes it once every job that reads
        it finished more than UPLOAD_RETENTION_HOURS ago (as an aged one did)."""
        aged = {job.upload for job in self.jobs_where(lambda job: job.aged)}
        kept = {job.upload for job in self.jobs_where(lambda job: not job.aged)}
        return self.jobs_where(lambda job: job.kind == "import" and job.upload not in aged - kept)

    @precondition(lambda self: self.retryable())
    @rule(data=st.data(), plan=st.sampled_from((None, True, False)))
    def retry(self, data, plan):
        """A new job for the same file, with the job's options unless others are given."""
        job = data.draw(st.sampled_from(self.retryable()))
        body = {} if plan is None else {"plan": plan}
        response = self.editor.post(f"/api/imports/{job.id}/retry", json=body or None)
        assert response.status_code == 202, response.text
        options = {"plan": "true"} if body.get("plan", job.options.get("plan")) else {}
        again = Job(response.json()["id"], job.file, job.upload, options=options)
        assert response.json()["plan"] == bool(options), response.json()
        self.model.jobs[again.id] = again
        self.audit("import.retried", f"import #{again.id}", EDITOR)
        duplicate = self.duplicate_of(job.file)
        done = self.wait(again.id)
        assert done["duplicate_of"] == duplicate, (done, duplicate)
        self.end(again, done, self.model.expect(job.file), EDITOR)

    @precondition(lambda self: len(self.model.jobs) >= 4 and not self.jobs_where(lambda j: j.aged))
    @rule(data=st.data())
    def age(self, data):
        """A job finished more than IMPORT_UNDO_DAYS ago; a plan past UPLOAD_RETENTION_HOURS
        is discarded by the upkeep."""
        job = data.draw(st.sampled_from(self.jobs_where(lambda job: not job.aged)))
        then = datetime.now(UTC) - timedelta(days=8)
        self.finished(job.id, then)
        job.aged = True
        if job.status == "planned":
            job.status = "discarded"
        self.upkeep()

    # --- checks -----------------------------------------------------------------------------

    def check(self) -> None:
        self.catalog_is_the_models()
        self.jobs_and_change_records_are_the_models()

    @invariant()
    def catalog_is_the_models(self):
        actual = {row[0]: row for row in self.catalog()}
        assert actual.keys() == self.model.products.keys(), (actual, self.model.products)
        for product_id, product in self.model.products.items():
            row = actual[product_id]
            assert (row[1], row[2], row[3], row[4]) == product.values(), (row, product)
            if product.updated_at is None:
                product.updated_at = row[6]
            assert row[6] == product.updated_at, (row, product)  # an undo puts the time back

    @invariant()
    def jobs_and_change_records_are_the_models(self):
        for job in self.model.jobs.values():
            shown = self.http.get(f"/api/imports/{job.id}").json()
            assert shown["status"] == job.status, shown
            assert shown["undone_by"] == job.undone_by, shown
            for action in (
                ("cancel",) if job.status == "planned" else ("apply", "discard", "cancel")
            ):
                # apply and discard only a plan waiting; cancel nothing finished
                response = self.editor.post(f"/api/imports/{job.id}/{action}")
                assert response.status_code == 409, (action, response.text)
                assert response.json()["error"]["code"] == "conflict"
            self.check_record(job, self.model.record(job))

    def check_record(self, job: Job, expected: list[dict]) -> None:
        """The JSON pages (each kind, and both) and the CSV say what the model says."""
        for kind in (None, "created", "updated"):
            wanted = [item for item in expected if kind in (None, item["kind"])]
            self.check_pages(job.id, kind, wanted)
            rows = self.csv_rows(job.id, kind)
            values = [self.values_of(job, item) for item in wanted]
            assert rows == [[escape(cell) for cell in as_csv_row(v)] for v in values], job

    def values_of(self, job: Job, item: dict) -> dict:
        """The item, with the fields an update left as they were (changes.csv repeats them)."""
        if item["kind"] != "updated":
            return item
        updates = job.planned[1] if job.planned is not None else job.updated
        after = next(entry[2] for entry in updates if entry[0] == item["product_id"])
        return item | {"_values": {"sku": after.sku, "name": after.name, "active": after.active}}

    def check_pages(self, job_id: int, kind: str | None, wanted: list[dict]) -> None:
        """Every page of the record, and the one past its end; of a large one, a few pages."""
        per_page = 3 if len(wanted) < 100 else 200
        params = {"per_page": per_page} | ({"kind": kind} if kind else {})
        pages = max(1, -(-len(wanted) // per_page))
        numbers = range(1, pages + 2) if pages < 10 else (1, pages // 2, pages, pages + 1)
        path = f"/api/imports/{job_id}/changes"
        for page in numbers:
            response = self.http.get(path, params=params | {"page": page})
            assert response.status_code == 200, response.text
            body = response.json()
            shown = (body["page"], body["per_page"], body["total"], body["pages"])
            assert shown == (page, per_page, len(wanted), pages), (job_id, kind, body)
            start = (page - 1) * per_page
            assert body["items"] == wanted[start : start + per_page], (job_id, kind, page)

    def csv_rows(self, job_id: int, kind: str | None) -> list[list[str]]:
        params = {"kind": kind} if kind else {}
        response = self.http.get(f"/api/imports/{job_id}/changes.csv", params=params)
        assert response.status_code == 200, response.text
        rows = list(csv.reader(io.StringIO(response.text, newline="")))
        assert rows[0] == CSV_HEADER
        return rows[1:]

    def teardown(self):
        """The run's webhook events and audit entries are those its actions caused."""
        ids = set(self.model.jobs)
        expected = sorted(self.expected_events)
        wait_until(lambda: len(self.events_of(ids)) >= len(expected), "the run's events")
        settled_deliveries(self.http, self.hook["id"])
        sent = self.events_of(ids)
        said = [(e["type"], e["data"]["id"], (e["actor"] or {}).get("email")) for e in sent]
        assert sorted(said) == expected
        for event in sent:
            shown = self.http.get(f"/api/imports/{event['data']['id']}").json()
            data = {key: value for key, value in event["data"].items() if key != "changes_url"}
            assert {k: data[k] for k in COUNTED} == {k: shown[k] for k in COUNTED}, event
            if event["type"] == "import.completed":
                changes = self.http.base_url.join(f"/api/imports/{shown['id']}/changes")
                assert event["data"]["changes_url"] == str(changes)
        entries = self.audit_entries(ids)
        for action, target, email in self.expected_audit:
            assert (action, target, email) in entries, (action, target, email)

    def events_of(self, ids: set[int]) -> list[dict]:
        found = []
        for request in list(self.receiver.requests):
            assert verify(self.hook["secret"], request, now=request.at)
            event = request.json()
            if event["data"]["id"] in ids:
                found.append(event)
        return found

    def audit_entries(self, ids: set[int]) -> set[tuple]:
        entries, page = set(), 1
        while True:
            body = self.http.get("/api/audit", params={"action": "import.", "page": page}).json()
            for entry in body["items"]:
                entries.add((entry["action"], entry["target"], entry["actor"]))
            if page >= body["pages"]:
                return entries
            page += 1


COUNTED = (
    "status", "kind", "undo_of", "created", "updated", "unchanged", "rows_invalid",
    "deleted", "conflicts", "created_by", "summary",
)  # fmt: skip


@pytest.fixture
def hunt(app, served, any_http, accounts, receiver):
    """The state machine's class, given the running app (in each mode) to act on and read."""
    from product_importer.imports import plans
    from product_importer.imports.models import ImportJob

    def upkeep():
        """What the workers' upkeep does each minute to plans and change records, now."""
        with app.app_context(), Session(served.engine) as session:  # the same settings
            plans.discard_expired(session)
            plans.remove_old_changes(session)
            session.commit()

    def finished(job_id: int, when: datetime) -> None:
        jobs = ImportJob.__table__
        with served.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(finished_at=when))

    hook = any_http.post("/api/webhooks", json={"url": receiver.url, "events": EVENTS}).json()
    with http_client(served.url, accounts["editor"].token) as editor:
        Hunt.http, Hunt.editor, Hunt.receiver, Hunt.hook = any_http, editor, receiver, hook
        Hunt.catalog = staticmethod(lambda: snapshot(served.engine))
        Hunt.upkeep, Hunt.finished = staticmethod(upkeep), staticmethod(finished)
        Hunt.seen = Seen()
        yield Hunt


def test_plans_undo_and_retry_follow_the_model(hunt):
    run_state_machine_as_test(
        hunt,
        settings=settings(
            max_examples=HUNT or 4,
            stateful_step_count=15,
            derandomize=not HUNT,
            phases=[phase for phase in Phase if not (HUNT and phase == Phase.shrink)],
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


@pytest.mark.parametrize("served", ["production"], indirect=True)  # PostgreSQL's bulk path
def test_a_bulk_imports_record_follows_the_model_through_edits_a_plan_and_undos(hunt):
    """10,000 new products built in bulk, then all renamed by a plan applied in bulk (its
    record of updates written by the build's helpers), with edits between: both undone."""
    run = hunt()
    run.empty_catalog()
    prefix, columns = run.prefix, ("sku", "name", "description")
    pool = [(f"{prefix}k-{n}", f"Pool {n}", "") for n in range(POOL)]
    run.upload(File(columns, tuple(pool)), {}, EDITOR)
    rows = [(f"{prefix}b-{n}", f"Bulk {n}", "") for n in range(BULK_ROWS)]
    rows += [(f"{prefix}K-{n}", "Bulk name", "Bulk") for n in range(POOL // 2)]
    fresh = run.upload(File(columns, tuple(rows)), {}, EDITOR)
    run.check()
    created = fresh.created
    for product_id, how in zip(created[:4], ("rename", "delete", "recase", "toggle"), strict=True):
        run.change(product_id, how)
    run.change(fresh.updated[0][0], "rename")
    renamed = [(sku.upper(), f"{name} renamed", "x\ny") for sku, name, _ in rows[:BULK_ROWS]]
    plan = run.upload(File(columns, tuple(renamed)), {"plan": "true"}, EDITOR)
    run.check()
    run.change(created[5], "delete")  # an update of the plan becomes nothing to do
    run.apply_plan(plan, ADMIN)
    run.check()
    run.change(created[6], "rename")
    run.undo_job(plan, EDITOR)
    run.check()
    run.undo_job(fresh, ADMIN)
    run.check()
    run.teardown()


# --- cancel at each stage, then retry ------------------------------------------------------


def upload(http, data: bytes, **options) -> dict:
    response = upload_csv(http, data, data=options)
    assert response.status_code == 202, response.text
    return response.json()


def posted(http, path: str, status: int = 202, **body) -> dict:
    response = http.post(path, json=body or None)
    assert response.status_code == status, response.text
    return response.json()


def nothing_recorded(http, job_id: int) -> None:
    """A cancelled job changed nothing: no change record, and nothing to undo."""
    record = http.get(f"/api/imports/{job_id}/changes").json()
    assert (record["total"], record["items"]) == (0, []), record
    assert http.get(f"/api/imports/{job_id}/changes.csv").text.count("\n") == 1
    assert http.post(f"/api/imports/{job_id}/undo").status_code == 409


def test_a_plan_cancelled_while_reading_keeps_nothing_and_its_retry_plans_again(
    http, catalog, sql, holding_rejections, held_file
):
    import_csv_ok(http, b"sku,name\r\nOTHER-1,Other\r\n")
    before = catalog()
    with holding_rejections() as reading:  # the plan stops half-way through the file
        job = upload(http, held_file.data, plan="true", max_invalid="30%")
        reading.wait_until_blocking()
        posted(http, f"/api/imports/{job['id']}/cancel")
        wait_for_heartbeats(sql, job["id"])
    cancelled = wait_for_job(http, job["id"])

    assert (cancelled["status"], cancelled["plan"]) == ("cancelled", True), cancelled
    assert catalog() == before
    nothing_recorded(http, job["id"])
    # this plan's kept rows only: plans of earlier tests may keep theirs until the upkeep
    kept = [f"import_planned_{job['id']}", f"import_planned_new_{job['id']}"]
    assert sql("SELECT count(*) FROM pg_class WHERE relname = ANY(:kept)", kept=kept) == [(0,)]
    again = posted(http, f"/api/imports/{job['id']}/retry")
    assert (again["plan"], again["max_invalid"], again["bytes_total"]) == (
        True,
        "30%",
        len(held_file.data),
    )
    planned = wait_for_job(http, again["id"])
    assert planned["status"] == "planned", planned
    assert (planned["created"], planned["rows_invalid"]) == (len(held_file.expected), 5000)
    assert catalog() == before


def test_an_apply_cancelled_while_it_waits_its_turn_changes_nothing(http, catalog, holding):
    import_csv_ok(http, b"sku,name\r\nA-1,Apple\r\n")
    plan = import_csv_ok(http, b"sku,name\r\nA-1,Apple pie\r\nB-2,Banana\r\n", plan="true")
    with holding(TABLE_LOCK):  # an earlier import waits for the catalog: the apply waits behind
        first = upload(http, b"sku,name\r\nC-3,Cherry\r\n")
        wait_for(http, first["id"], lambda j: j["phase"] == "applying", "applying")
        posted(http, f"/api/imports/{plan['id']}/apply")
        wait_for(http, plan["id"], lambda j: "waiting" in j["message"], "waiting its turn")
        before = catalog()
        cancelled = posted(http, f"/api/imports/{plan['id']}/cancel")
        assert cancelled["id"] == plan["id"]
        cancelled = wait_for_job(http, plan["id"])
    assert wait_for_job(http, first["id"])["status"] == "completed"

    assert cancelled["status"] == "cancelled", cancelled
    assert [row[1:3] for row in catalog()] == [row[1:3] for row in before] + [("C-3", "Cherry")]
    nothing_recorded(http, plan["id"])
    assert posted(http, f"/api/imports/{plan['id']}/apply", 409)["error"]["code"] == "conflict"
    again = wait_for_job(http, posted(http, f"/api/imports/{plan['id']}/retry")["id"])
    assert (again["status"], again["created"], again["updated"]) == ("completed", 1, 1), again


def test_an_undo_cancelled_while_it_waits_for_the_catalog_can_be_run_again(http, catalog, holding):
    import_csv_ok(http, b"sku,name\r\nA-1,Apple\r\n")
    job = import_csv_ok(http, b"sku,name\r\nA-1,Apple pie\r\nB-2,Banana\r\n")
    before = catalog()
    with holding(TABLE_LOCK):
        undo = posted(http, f"/api/imports/{job['id']}/undo")
        wait_for(http, undo["id"], lambda j: j["phase"] == "applying", "applying")
        posted(http, f"/api/imports/{undo['id']}/cancel")
        cancelled = wait_for_job(http, undo["id"])

    assert cancelled["status"] == "cancelled", cancelled
    assert catalog() == before
    assert http.get(f"/api/imports/{job['id']}").json()["undone_by"] is None
    assert posted(http, f"/api/imports/{undo['id']}/retry", 409)["error"]["code"] == "conflict"
    again = wait_for_job(http, posted(http, f"/api/imports/{job['id']}/undo")["id"])
    assert (again["status"], again["deleted"], again["updated"]) == ("completed", 1, 1), again
    assert [row[1:3] for row in catalog()] == [("A-1", "Apple")]


def test_a_bulk_apply_cancelled_while_it_waits_to_switch_changes_nothing(
    http, catalog, sql, holding, receiver
):
    hook = http.post("/api/webhooks", json={"url": receiver.url, "events": EVENTS}).json()
    seed = [(f"S-{n}", f"Seed {n}", "") for n in range(20)]
    import_csv_ok(http, File(("sku", "name", "description"), tuple(seed)).data())
    rows = [(f"S-{n}", f"Renamed {n}", "x") for n in range(20)]
    rows += [(f"N-{n}", f"New {n}", "") for n in range(BULK_ROWS)]
    data = File(("sku", "name", "description"), tuple(rows)).data()
    plan = import_csv_ok(http, data, plan="true")
    before, identity = catalog(), sql("SELECT 'products'::regclass::oid")
    # a reader of the catalog: the build goes on beside it, its switch waits
    with holding("LOCK TABLE products IN ACCESS SHARE MODE"):
        posted(http, f"/api/imports/{plan['id']}/apply")
        wait_for(http, plan["id"], lambda j: "(switching)" in j["message"], "switching")
        posted(http, f"/api/imports/{plan['id']}/cancel")
        cancelled = wait_for_job(http, plan["id"])

    assert cancelled["status"] == "cancelled", cancelled
    assert (catalog(), sql("SELECT 'products'::regclass::oid")) == (before, identity)
    nothing_recorded(http, plan["id"])
    assert sql("SELECT count(*) FROM import_changes WHERE kind = 'updated'") == [(0,)]
    again = wait_for_job(http, posted(http, f"/api/imports/{plan['id']}/retry")["id"], 180)
    assert (again["status"], again["created"], again["updated"]) == ("completed", BULK_ROWS, 20)
    record = http.get(f"/api/imports/{again['id']}/changes", params={"kind": "updated"}).json()
    assert record["total"] == 20
    assert record["items"][0]["changes"]["name"] == {"before": "Seed 0", "after": "Renamed 0"}
    undo = wait_for_job(http, posted(http, f"/api/imports/{again['id']}/undo")["id"], 180)
    assert (undo["deleted"], undo["updated"], undo["conflicts"]) == (BULK_ROWS, 20, 0), undo
    assert [row[:5] for row in catalog()] == [row[:5] for row in before]
    # events: the seed, the retry and the undo; none for the plan or its cancelled apply
    wait_until(lambda: len(receiver.requests) >= 3, "three events")
    settled_deliveries(http, hook["id"])
    sent = [(r.json()["type"], r.json()["data"]["id"]) for r in receiver.requests]
    assert [event for event in sent if event[1] == plan["id"]] == []
    assert ("import.completed", again["id"]) in sent and ("import.undone", undo["id"]) in sent


def import_csv_ok(http, data: bytes, **options) -> dict:
    """Import (or plan) a file and wait for its end, which must be a success."""
    done = wait_for_job(http, upload(http, data, **options)["id"], 180)
    assert done["status"] in ("completed", "planned"), done
    return done
