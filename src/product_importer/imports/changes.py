"""An import's change record as the API reads it: pages of changes, and the CSV download."""

from collections.abc import Iterator
from math import ceil

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import Invalid
from .models import ImportChange
from .states import CHANGE_KINDS, PLANNED_KINDS

KINDS = CHANGE_KINDS
FIELDS = ("sku", "name", "description", "active")
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
CSV_CHUNK = 5000
CSV_HEADER = (
    "kind",
    "product_id",
    *FIELDS,
    *(f"{field}_before" for field in FIELDS),
)
change = ImportChange.__table__.c
BEFORE = {field: change[f"before_{field}"] for field in FIELDS}


def parse_kind(value: str | None) -> str | None:
    """`created`, `updated`, or None for both; raise Invalid otherwise."""
    if value is None:
        return None
    if value not in KINDS:
        raise Invalid("kind must be created or updated.", details={"kind": "created or updated"})
    return value


def stored_kinds(kind: str | None, *, planned: bool) -> list[str]:
    """The kinds of rows to read: a plan's record is kept under kinds of its own."""
    kinds = [kind] if kind else list(KINDS)
    return [PLANNED_KINDS[one] for one in kinds] if planned else kinds


def page(
    session: Session, job_id: int, *, kind: str | None, planned: bool, page: int, per_page: int
) -> dict:
    """One page of the changes, created first, each in the order of the file."""
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise Invalid(f"per_page must be 1 to {MAX_PER_PAGE}.", details={"per_page": "1-200"})
    if page < 1:
        raise Invalid("page must be 1 or more.", details={"page": "1 or more"})
    where = _where(job_id, stored_kinds(kind, planned=planned))
    total = session.scalar(select(func.count()).select_from(ImportChange).where(*where))
    rows = session.execute(
        select(ImportChange.__table__)
        .where(*where)
        .order_by(change.kind, change.rn)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return {
        "items": [_item(row) for row in rows],
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": max(1, ceil(total / per_page)),
    }


def _where(job_id: int, kinds: list[str]) -> list:
    return [change.job_id == job_id, change.kind.in_(kinds)]


def _item(row) -> dict:
    """`{"sku", "product_id", "kind", "changes": {field: {"before", "after"}}}` of one product."""
    created = row.kind in ("created", PLANNED_KINDS["created"])
    fields = {}
    for field in FIELDS:
        after, before = row._mapping[field], row._mapping[f"before_{field}"]
        if field == "active":
            after, before = bool(after), None if before is None else bool(before)
        if created or before != after:
            fields[field] = {"before": before, "after": after}
    kind = "created" if created else "updated"
    return {"sku": row.sku, "product_id": row.product_id, "kind": kind, "changes": fields}


def csv_rows(session: Session, job_id: int, *, kind: str | None, planned: bool) -> Iterator[tuple]:
    """Yield every change as a CSV row, a chunk at a time (constant memory)."""
    columns = (change.rn, change.kind, change.product_id, *(change[f] for f in FIELDS))
    for one_kind in (kind,) if kind else KINDS:
        stored = stored_kinds(one_kind, planned=planned)
        last = -1
        while True:
            rows = session.execute(
                select(*columns, *BEFORE.values())
                .where(*_where(job_id, stored), change.rn > last)
                .order_by(change.rn)
                .limit(CSV_CHUNK)
            ).all()
            for row in rows:
                yield _csv_row((one_kind, *row[2:]))
            if len(rows) < CSV_CHUNK:
                break
            last = rows[-1].rn


def _csv_row(row: tuple) -> tuple:
    """Booleans as `true`/`false`, as the import reads them back."""
    return tuple(
        ("true" if value else "false") if isinstance(value, bool) else value for value in row
    )
