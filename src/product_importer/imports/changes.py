"""An import's change record as the API reads it: pages of changes, and the CSV download.

Two sources, created products first, each in the order of the file: the products an import
created are the catalog's products in its block of ids stamped with its time (migration 0013);
those it updated, and what a plan would update, are rows of `import_changes`, and so are
created products an undo deleted (it keeps their values). What a plan would create is read from
the rows it kept for its apply (PostgreSQL), or from rows of `import_changes` (SQLite). A
created product edited since shows its values now, marked `changed_since`; one deleted since by
other means is gone. Once the import is undone, an updated product is marked unless it holds
what the undo restored: those the undo left (changed since) and those changed after it are.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Subquery, column, false, func, literal, or_, select, table, union_all
from sqlalchemy.orm import Session

from ..apiutil import blank_is_none, page_count
from ..errors import Invalid
from ..products.models import Product
from .engine import kept_tables
from .models import ImportChange, ImportJob
from .states import CHANGE_KINDS, PLANNED_KINDS, Status

KINDS = CHANGE_KINDS
UNWRITTEN = {Status.QUEUED, Status.RUNNING, Status.FAILED, Status.CANCELLED}
FIELDS = ("sku", "name", "description", "active")
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
CSV_CHUNK = 5000
CSV_HEADER = (
    "kind",
    "product_id",
    *FIELDS,
    *(f"{field}_before" for field in FIELDS),
    "changed_since",
)
change = ImportChange.__table__.c
product = Product.__table__.c
BEFORE = {field: change[f"before_{field}"] for field in FIELDS}


def parse_kind(value: str | None) -> str | None:
    """`created`, `updated`, or None for both; raise Invalid otherwise.

    Left empty or blank (`?kind=`, as a form sends a blank choice) it filters nothing, as the
    products' text filters do.
    """
    if blank_is_none(value) is None:
        return None
    if value not in KINDS:
        raise Invalid(
            "kind must be created or updated, or left out for both.",
            details={"kind": "created or updated"},
        )
    return value


@dataclass(frozen=True)
class Source:
    """The changes of one kind: rows `(key, kind, product_id, *after, *before, changed_since)`,
    in file order by `key`."""

    kind: str
    rows_of: Subquery

    @property
    def query(self):
        return select(self.rows_of).order_by(self.rows_of.c.key)

    def count(self, session: Session) -> int:
        return session.scalar(select(func.count()).select_from(self.rows_of))

    def rows(self, session: Session, offset: int, limit: int) -> list:
        return session.execute(self.query.offset(offset).limit(limit)).all()

    def chunks(self, session: Session) -> Iterator[list]:
        """Every row, CSV_CHUNK at a time, each chunk after the last key of the one before."""
        last = None
        while True:
            query = self.query if last is None else self.query.where(self.rows_of.c.key > last)
            rows = session.execute(query.limit(CSV_CHUNK)).all()
            yield rows
            if len(rows) < CSV_CHUNK:
                return
            last = rows[-1][0]


def sources(session: Session, job: ImportJob, kind: str | None) -> list[Source]:
    """Where each wanted kind of change of `job` is read, created first."""
    kinds = [kind] if kind else list(KINDS)
    # An import that has not written the catalog has no record yet, though the helpers of a
    # bulk apply commit its rows ahead of it (and an attempt that died may have left some).
    if job.status in UNWRITTEN:
        return []
    if job.status == Status.PLANNED:  # nothing written yet
        return [_planned(session, job, one) for one in kinds]
    return [_created(job) if one == "created" else _recorded(job, one, one) for one in kinds]


def _planned(session: Session, job: ImportJob, kind: str) -> Source:
    """What a plan would create or update: the rows it kept, else its own rows."""
    kept = kind == "created" and kept_tables(session.connection(), job.id)
    if not kept:
        return _recorded(job, kind, PLANNED_KINDS[kind])
    rows_name, new_name = kept
    rows = table(rows_name, *(column(name) for name in ("rn", *FIELDS)))
    query = select(
        rows.c.rn.label("key"),
        literal("created").label("kind"),
        literal(None).label("product_id"),
        rows.c.sku,
        rows.c.name,
        func.coalesce(rows.c.description, ""),
        func.coalesce(rows.c.active, True),
        *(literal(None).label(f"before_{field}") for field in FIELDS),
        literal(False).label("changed_since"),
    )
    if new_name:  # else the catalog was empty: every row creates a product
        query = query.where(rows.c.rn.in_(select(table(new_name, column("rn")).c.rn)))
    return Source("created", query.subquery())


def _created(job: ImportJob) -> Source:
    """The products the import created: its block of ids stamped with its time, and those an
    undo deleted, kept as rows (in order of their ids, which is the file's)."""
    in_block = [
        product.id.between(job.created_from, job.created_to),
        product.created_at == job.written_at,
    ]
    if job.created_from is None or job.written_at is None:
        in_block = [false()]
    nothing_before = [literal(None).label(f"before_{field}") for field in FIELDS]
    in_catalog = select(
        product.id.label("key"),
        literal("created").label("kind"),
        product.id.label("product_id"),
        *(product[field] for field in FIELDS),
        *nothing_before,
        (product.updated_at != job.written_at).label("changed_since"),
    ).where(*in_block)
    undone = select(
        change.product_id,
        literal("created"),
        change.product_id,
        *(change[field] for field in FIELDS),
        *nothing_before,
        literal(False),
    ).where(change.job_id == job.id, change.kind == "created")
    return Source("created", union_all(in_catalog, undone).subquery())


def _recorded(job: ImportJob, kind: str, stored: str) -> Source:
    """The rows of `import_changes` of one stored kind, and whether each changed since."""
    if job.status == Status.PLANNED or job.written_at is None:
        changed_since = literal(False)
    elif job.undone_by is not None:  # not as its undo restored it: left, or changed since
        changed_since = or_(
            product.id.is_(None), product.updated_at.is_distinct_from(change.before_updated_at)
        )
    else:  # not as the import wrote it
        changed_since = or_(product.id.is_(None), product.updated_at != job.written_at)
    query = (
        select(
            change.rn.label("key"),
            literal(kind).label("kind"),
            change.product_id,
            *(change[field] for field in FIELDS),
            *BEFORE.values(),
            changed_since.label("changed_since"),
        )
        .select_from(ImportChange.__table__.outerjoin(Product, product.id == change.product_id))
        .where(change.job_id == job.id, change.kind == stored)
    )
    return Source(kind, query.subquery())


def page(session: Session, job: ImportJob, *, kind: str | None, page: int, per_page: int) -> dict:
    """One page of the changes, created first, each in the order of the file."""
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise Invalid(f"per_page must be 1 to {MAX_PER_PAGE}.", details={"per_page": "1-200"})
    if page < 1:
        raise Invalid("page must be 1 or more.", details={"page": "1 or more"})
    offset, items, total = (page - 1) * per_page, [], 0
    for source in sources(session, job, kind):
        count = source.count(session)
        wanted = per_page - len(items)
        if wanted and offset < total + count:
            start = max(0, offset - total)
            items += [_item(row) for row in source.rows(session, start, wanted)]
        total += count
    return {
        "items": items,
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": page_count(total, per_page),
    }


def _item(row) -> dict:
    """`{"sku", "product_id", "kind", "changed_since", "changes": {field: {"before", "after"}}}`.

    An update lists the fields whose value changed (a description left as it was is not
    recorded); a creation lists every field, with no value before.
    """
    _key, kind, product_id, *values, changed_since = row
    after = dict(zip(FIELDS, values[: len(FIELDS)], strict=True))
    before = dict(zip(FIELDS, values[len(FIELDS) :], strict=True))
    fields = {}
    for field in FIELDS:
        now, then = after[field], before[field]
        if field == "active":
            now, then = bool(now), None if then is None else bool(then)
        if kind == "created" or (then is not None and then != now):
            fields[field] = {"before": then, "after": now}
    return {
        "sku": after["sku"],
        "product_id": product_id,
        "kind": kind,
        "changed_since": bool(changed_since),
        "changes": fields,
    }


def csv_rows(session: Session, job: ImportJob, *, kind: str | None) -> Iterator[tuple]:
    """Yield every change as a CSV row, a chunk at a time (constant memory)."""
    for source in sources(session, job, kind):
        for rows in source.chunks(session):
            for row in rows:
                yield _csv_row((*row[1:-1], bool(row[-1])))


def _csv_row(row: tuple) -> tuple:
    """Booleans as `true`/`false`, as the import reads them back."""
    return tuple(
        ("true" if value else "false") if isinstance(value, bool) else value for value in row
    )
