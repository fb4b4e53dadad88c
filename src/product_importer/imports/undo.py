"""Undo a completed import from its change record, set-based, in the caller's transaction.

Products the import created (its block of ids, `created_at` its stamp) are deleted, their
values first kept as rows of its change record (still there to show what it created), and
those it updated get their values back; but only where the product still holds what the
import wrote: every product an import writes carries its stamp as `updated_at`, and any later
write (a later import, an edit) moves that on. One changed since, or deleted, is left as it
is and counted as a conflict.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, DateTime, bindparam, select, text

from .. import database
from .models import ImportJob, products

WRITTEN = bindparam("written", type_=DateTime(timezone=True))  # SQLite's format on SQLite
AS_CREATED = "id BETWEEN :first AND :last AND created_at = :written AND updated_at = :written"
KEEP_CREATED = text(f"""
INSERT INTO import_changes (job_id, rn, kind, product_id, sku, name, description, active)
SELECT :job, id, 'created', id, sku, name, description, active FROM products WHERE {AS_CREATED}
""").bindparams(WRITTEN)
DELETE_CREATED = text(f"DELETE FROM products WHERE {AS_CREATED}").bindparams(WRITTEN)
# A description the import left as it was is not recorded (null): it is still the one before.
RESTORE_UPDATED = text("""
UPDATE products
SET sku = c.before_sku, name = c.before_name,
    description = COALESCE(c.before_description, products.description),
    active = c.before_active, updated_at = c.before_updated_at
FROM import_changes AS c
WHERE c.job_id = :job AND c.kind = 'updated' AND products.id = c.product_id
  AND products.updated_at = :written
""").bindparams(WRITTEN)
RECORDED_UPDATES = text(
    "SELECT count(*) FROM import_changes WHERE job_id = :job AND kind = 'updated'"
)
jobs = ImportJob.__table__.c


@dataclass(frozen=True)
class UndoCounts:
    deleted: int
    restored: int
    conflicts: int

    def message(self) -> str:
        """What the undo did, for people."""
        kept = ""
        if self.conflicts == 1:
            kept = "; 1 changed since was left as it is"
        elif self.conflicts:
            kept = f"; {self.conflicts:,} changed since were left as they are"
        return f"Undo complete: deleted {products(self.deleted)}, restored {self.restored:,}{kept}"


def undo_import(conn: Connection, import_id: int) -> UndoCounts:
    """Delete what the import created and restore what it updated, unless changed since."""
    record = conn.execute(
        select(jobs.created, jobs.created_from, jobs.created_to, jobs.written_at).where(
            jobs.id == import_id
        )
    ).one()
    params = {"job": import_id, "written": record.written_at}
    database.of(conn).change_in_bulk(conn)  # not logged row by row for the list totals
    deleted = 0  # (a null stamp matches no product: then every one is a conflict)
    if record.created_from is not None:
        block = params | {"first": record.created_from, "last": record.created_to}
        conn.execute(KEEP_CREATED, block)
        deleted = conn.execute(DELETE_CREATED, block).rowcount
    restored = conn.execute(RESTORE_UPDATED, params).rowcount
    updates = conn.execute(RECORDED_UPDATES, {"job": import_id}).scalar()
    created = record.created if record.created_from is not None else 0
    return UndoCounts(deleted, restored, created + updates - deleted - restored)
