"""Products' text in Unicode NFC: one SKU for `Café` however its accent was written.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05

`Café` typed in a browser has its `é` as one character (NFC, U+00E9); from a file exported on
macOS it is often `e` then a combining accent (NFD, U+0301): two strings, so two products with
the "same" SKU, and a filter typed by hand missed a name stored the other way. Text now enters
in NFC (imports, the API, the filters' terms); this brings the SKU, name and description of the
products already there to NFC too. Their generated columns (`description_lower`, `row_hash`)
follow; `updated_at` does not move (the text reads the same, and an undo still recognises what
its import wrote), and the list totals are counted again after it (a bulk change).

A SKU whose NFC form is already another product's SKU (both forms were in the catalog) is left
as it is, and the upgrade logs how many and which: nothing is merged or deleted. Change the SKU
of one of each pair, or delete it (the README, "Upgrading").

The change records of imports (what an undo puts back, what the change lists show) go to NFC
too: an undo of an import made before would otherwise bring the other form back.

PostgreSQL: one UPDATE of the rows not in NFC. SQLite: in Python, in batches of rows.
Downgrading changes nothing: the text stays in NFC, which reads the same.
"""

import logging
import unicodedata

import sqlalchemy as sa
from alembic import op

from product_importer.database import BULK_CHANGE_SETTING, lower_letters

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

log = logging.getLogger("product_importer.migrations")

BATCH = 5000
PAGE = sa.text(
    "SELECT id, sku, name, description FROM products WHERE id > :last ORDER BY id LIMIT :batch"
)
WRITE = sa.text(
    "UPDATE products SET sku = :sku, name = :name, description = :description WHERE id = :id"
)
# Another product holds this SKU, ignoring case (SQLite's lower() is the app's, as its index's).
TAKEN = sa.text("SELECT 1 FROM products WHERE lower(sku) = lower(:sku) AND id <> :id")
# The products whose text is not all NFC; of their SKUs, the first of each NFC key (the lowered
# NFC form) that no other product holds yet is normalised, the others are left and named.
PG_NORMALISE = """
WITH unnormal AS MATERIALIZED (
    SELECT id, sku, sku IS NFC NORMALIZED AS sku_nfc FROM products
    WHERE NOT (sku IS NFC NORMALIZED AND name IS NFC NORMALIZED
               AND description IS NFC NORMALIZED)
), skus AS (
    SELECT id, sku, normalize(sku, NFC) AS nfc,
           row_number() OVER (PARTITION BY lower(normalize(sku, NFC)) ORDER BY id) AS nth
    FROM unnormal WHERE NOT sku_nfc
), free AS (
    SELECT s.id, s.nfc FROM skus AS s
    WHERE s.nth = 1
      AND NOT EXISTS (SELECT FROM products AS p WHERE lower(p.sku) = lower(s.nfc) AND p.id <> s.id)
), written AS (
    UPDATE products AS p
    SET sku = coalesce(f.nfc, p.sku), name = normalize(p.name, NFC),
        description = normalize(p.description, NFC)
    FROM unnormal AS u LEFT JOIN free AS f ON f.id = u.id
    WHERE p.id = u.id  -- and not a row whose SKU alone is not NFC, and stays so
      AND (f.id IS NOT NULL OR NOT (p.name IS NFC NORMALIZED AND p.description IS NFC NORMALIZED))
    RETURNING p.id
), left_as_is AS (
    SELECT s.id, s.sku FROM skus AS s WHERE NOT EXISTS (SELECT FROM free AS f WHERE f.id = s.id)
)
SELECT (SELECT count(*) FROM written),
       (SELECT array_agg(id ORDER BY id) FROM left_as_is),
       (SELECT array_agg(sku ORDER BY id) FROM left_as_is)
"""


# The change records' text: an undo puts a product's values back from them, and the change
# lists show them. No SKU can clash there: an undo gives a product back its own SKU.
CHANGE_COLUMNS = ("sku", "name", "description", "before_sku", "before_name", "before_description")
PG_NORMALISE_CHANGES = "UPDATE import_changes SET {set} WHERE NOT ({normal})".format(
    set=", ".join(f"{c} = normalize({c}, NFC)" for c in CHANGE_COLUMNS),
    normal=" AND ".join(f"coalesce({c} IS NFC NORMALIZED, true)" for c in CHANGE_COLUMNS),
)
CHANGES_PAGE = sa.text(
    f"SELECT rowid, {', '.join(CHANGE_COLUMNS)} FROM import_changes WHERE rowid > :last "
    "ORDER BY rowid LIMIT :batch"
)
CHANGES_WRITE = sa.text(
    f"UPDATE import_changes SET {', '.join(f'{c} = :{c}' for c in CHANGE_COLUMNS)} "
    "WHERE rowid = :row"
)


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        # Not logged row by row for the list totals: they are counted again after it.
        op.execute(f"SET LOCAL {BULK_CHANGE_SETTING} = 'on'")
        written, ids, skus = op.get_bind().exec_driver_sql(PG_NORMALISE).one()
        left = list(zip(ids or [], skus or [], strict=True))
        op.execute(PG_NORMALISE_CHANGES)
    else:
        written, left = _normalise_sqlite()
        _normalise_sqlite_changes()
    log.info("Text in NFC: %d products normalised.", written)
    if left:
        log.warning(
            "%d products keep their SKU as it was: in NFC it is the SKU of another product "
            "(the catalog held both forms): %s. Change the SKU of one of each pair, or delete "
            "it: nothing was merged or deleted.",
            len(left),
            "; ".join(f'id {product_id} "{sku}"' for product_id, sku in left),
        )


def downgrade():
    """Nothing to undo: text in NFC reads as it did."""


def _normalise_sqlite() -> tuple[int, list[tuple[int, str]]]:
    """Normalise the products' text in batches of rows; return how many, and the SKUs left."""
    conn = op.get_bind()
    written, left, claimed, last = 0, [], set(), 0
    while rows := conn.execute(PAGE, {"last": last, "batch": BATCH}).all():
        last = rows[-1][0]
        normalised = [_normalised(conn, row, claimed, left) for row in rows if not _all_nfc(row)]
        changed = [values for values in normalised if values]
        if changed:
            conn.execute(WRITE, changed)
            written += len(changed)
    return written, left


def _all_nfc(row) -> bool:
    return all(unicodedata.is_normalized("NFC", value) for value in row[1:])


def _normalised(conn, row, claimed: set[str], left: list[tuple[int, str]]) -> dict | None:
    """The row's values in NFC, but its SKU where that is another product's (then named);
    None when that leaves them as they are."""
    product_id, sku, name, description = row
    nfc = unicodedata.normalize("NFC", sku)
    if nfc != sku:
        key = lower_letters(nfc)
        if key in claimed or conn.execute(TAKEN, {"sku": nfc, "id": product_id}).first():
            left.append((product_id, sku))
            nfc = sku
        else:
            claimed.add(key)
    values = (nfc, unicodedata.normalize("NFC", name), unicodedata.normalize("NFC", description))
    if values == (sku, name, description):
        return None
    return dict(zip(("sku", "name", "description"), values, strict=True), id=product_id)


def _normalise_sqlite_changes() -> None:
    """Normalise the change records' text in batches of rows."""
    conn, last = op.get_bind(), 0
    while rows := conn.execute(CHANGES_PAGE, {"last": last, "batch": BATCH}).all():
        last = rows[-1][0]
        changed = [
            {"row": row[0], **dict(zip(CHANGE_COLUMNS, map(_nfc, row[1:]), strict=True))}
            for row in rows
            if any(value is not None and not unicodedata.is_normalized("NFC", value)
                   for value in row[1:])
        ]  # fmt: skip
        if changed:
            conn.execute(CHANGES_WRITE, changed)


def _nfc(value: str | None) -> str | None:
    return None if value is None else unicodedata.normalize("NFC", value)
