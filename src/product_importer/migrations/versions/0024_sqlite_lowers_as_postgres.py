"""SQLite lowers letter by letter, as PostgreSQL does: its indexes on lower() are built again.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05

SQLite's lower() is the app's own (extensions.py: SQLite's folds ASCII only). It lowered as
Python does, which differs from PostgreSQL's for two letters: a 'Σ' that ends a word (Python
'ς', PostgreSQL 'σ') and 'İ' (Python 'i' with U+0307, PostgreSQL 'i'). So on SQLite
'ΟΔΥΣΣΕΥΣ@example.com' and 'οδυσσευσ@example.com' were two accounts and 'ΣΑΣ-1' and
'σασ-1' two products, where PostgreSQL has one. Now it lowers as PostgreSQL does
(`database.lower_letters`), and an index on lower() that holds a value with one of those
letters was built by the other one: lookups would miss its row. Such indexes are built again
(REINDEX), each only if its column holds one of those letters. Values that become one (an
email or a SKU twice) stop the upgrade, with what to change. PostgreSQL: nothing changes.
"""

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from product_importer.database import lower_letters

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

# index -> (table, column, what its rows are, what to do when two are one)
INDEXES = {
    "uq_users_lower_email": (
        "users",
        "email",
        "accounts",
        "give one of them another email (sqlite3 instance/product_importer.db "
        "\"UPDATE users SET email = 'another@example.com' WHERE id = N\")",
    ),
    "uq_products_lower_sku": (
        "products",
        "sku",
        "products",
        "change the SKU of one of them, or delete it (PATCH or DELETE /api/products/N, with "
        "the release before this one)",
    ),
    "ix_products_lower_name_id": ("products", "name", "products", ""),
}
# The letters the two lower()s lower otherwise (as a word's last letter only, for 'Σ').
LETTERS = ("Σ", "İ")


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(lower_letters)


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(str.lower)  # as the release before this one lowers


def _rebuild(lower: Callable[[str], str]) -> None:
    """Build the indexes on lower() again with `lower`, where a value lowers otherwise now."""
    driver = op.get_bind().connection.driver_connection
    _use(driver, lower)
    try:
        for index, (table, column, rows, remedy) in INDEXES.items():
            if _holds_letters(table, column):
                _reindex(index, table, column, rows, remedy)
    finally:
        _use(driver, lower_letters)  # the connection goes back to the app's pool


def _use(driver, lower: Callable[[str], str]) -> None:
    """Make `lower` SQLite's lower() on this connection (as extensions.py does, deterministic)."""

    def lowered(value):
        return lower(value) if isinstance(value, str) else value

    driver.create_function("lower", 1, lowered, deterministic=True)


def _holds_letters(table: str, column: str) -> bool:
    """Whether a value of the column holds a letter the two lower()s lower otherwise."""
    found = " OR ".join(f"instr({column}, '{letter}') > 0" for letter in LETTERS)
    return op.get_bind().execute(sa.text(f"SELECT 1 FROM {table} WHERE {found} LIMIT 1")).first()


def _reindex(index: str, table: str, column: str, rows: str, remedy: str) -> None:
    """REINDEX; if two rows are one now, say which and what to do."""
    try:
        op.execute(f"REINDEX {index}")  # one statement: if it fails, the index is as it was
    except sa.exc.IntegrityError:
        raise RuntimeError(_twice(table, column, rows, remedy)) from None


def _twice(table: str, column: str, rows: str, remedy: str) -> str:
    """The message naming the rows whose values lower() makes one."""
    groups = op.get_bind().execute(
        sa.text(
            # NOT INDEXED: the index on lower() holds the values of the other lower()
            f"SELECT group_concat(id || ' ' || quote({column}), ' and ') "
            f"FROM {table} NOT INDEXED GROUP BY lower({column}) HAVING count(*) > 1"
        )
    )
    named = "; ".join(group for (group,) in groups)
    return (
        f"These {rows} are one now that SQLite ignores case as PostgreSQL does (a 'Σ' ending a "
        f"word is 'σ', 'İ' is 'i'): {named}. To upgrade, {remedy}; then run "
        "`product-importer migrate` again."
    )
