"""Undo a completed import from its change record, set-based, in the caller's transaction.

Products the import created are deleted and those it updated get their values back, but only
where the product still holds what the import wrote: one changed since (by a later import or an
edit, or deleted) is left as it is and counted as a conflict.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, text

from .. import database

# The product still holds what the import wrote (`products` against the change `c`).
AS_WRITTEN = """
products.sku = c.sku AND products.name = c.name AND products.description = c.description
AND products.active = c.active
"""
DELETE_CREATED = text(f"""
DELETE FROM products WHERE id IN (
    SELECT c.product_id FROM import_changes AS c JOIN products ON products.id = c.product_id
    WHERE c.job_id = :job AND c.kind = 'created' AND {AS_WRITTEN}
)
""")
RESTORE_UPDATED = text(f"""
UPDATE products
SET sku = c.before_sku, name = c.before_name, description = c.before_description,
    active = c.before_active, updated_at = c.before_updated_at
FROM import_changes AS c
WHERE c.job_id = :job AND c.kind = 'updated' AND products.id = c.product_id AND {AS_WRITTEN}
""")
RECORDED = text(
    "SELECT count(*) FROM import_changes WHERE job_id = :job AND kind IN ('created', 'updated')"
)


@dataclass(frozen=True)
class UndoCounts:
    deleted: int
    restored: int
    conflicts: int

    def message(self) -> str:
        """What the undo did, for people."""
        kept = f"; {self.conflicts:,} changed since were left as they are" if self.conflicts else ""
        return f"Undo complete: deleted {self.deleted:,} products, restored {self.restored:,}{kept}"


def undo_import(conn: Connection, import_id: int) -> UndoCounts:
    """Delete what the import created and restore what it updated, unless changed since."""
    params = {"job": import_id}
    database.of(conn).change_in_bulk(conn)  # not logged row by row for the list totals
    deleted = conn.execute(DELETE_CREATED, params).rowcount
    restored = conn.execute(RESTORE_UPDATED, params).rowcount
    recorded = conn.execute(RECORDED, params).scalar()
    return UndoCounts(deleted, restored, recorded - deleted - restored)
