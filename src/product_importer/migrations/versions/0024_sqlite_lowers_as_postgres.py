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
email or a SKU twice) stop the upgrade before any index is built, with what to change.
PostgreSQL: nothing changes.
"""

import json
import shlex
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from product_importer.database import lower_letters

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

# index -> (table, column, what its rows are); only a unique index can refuse a rebuild
INDEXES = {
    "uq_users_lower_email": ("users", "email", "accounts"),
    "uq_products_lower_sku": ("products", "sku", "products"),
    "ix_products_lower_name_id": ("products", "name", None),
}
# The letters the two lower()s lower otherwise (as a word's last letter only, for 'Σ').
LETTERS = ("Σ", "İ")
# Run with Python's lower(), the one the release before this one built the index with: the
# sqlite3 shell's lower() folds ASCII only, so its UPDATE would miss the index entry of an
# email with another capital ('Ö', 'Σ') and fail ("database disk image is malformed").
NEW_EMAIL = (
    "import sqlite3; db = sqlite3.connect({path}); "
    'db.create_function("lower", 1, str.lower, deterministic=True); '
    'db.execute("UPDATE users SET email = ? WHERE id = ?", ("another@example.com", N)); '
    "db.commit()"
)


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(lower_letters, _refuse_upgrade)


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(str.lower, _refuse_downgrade)  # as the release before this one lowers


def _rebuild(lower: Callable[[str], str], refuse: Callable[[list], str]) -> None:
    """Build the indexes on lower() again with `lower`, where a value lowers otherwise now;
    first check them all, so that a refusal leaves every index as it was."""
    driver = op.get_bind().connection.driver_connection
    _use(driver, lower)
    try:
        indexes = [index for index, (table, column, _) in INDEXES.items() if _holds(table, column)]
        found = [(INDEXES[index][2], named) for index in indexes if (named := _twice(index))]
        if found:  # SQLite would REINDEX one by one, each kept: the first ones built anew
            raise RuntimeError(refuse(found))
        for index in indexes:
            op.execute(f"REINDEX {index}")
    finally:
        _use(driver, lower_letters)  # the connection goes back to the app's pool


def _use(driver, lower: Callable[[str], str]) -> None:
    """Make `lower` SQLite's lower() on this connection (as extensions.py does, deterministic)."""

    def lowered(value):
        return lower(value) if isinstance(value, str) else value

    driver.create_function("lower", 1, lowered, deterministic=True)


def _holds(table: str, column: str) -> bool:
    """Whether a value of the column holds a letter the two lower()s lower otherwise."""
    found = " OR ".join(f"instr({column}, '{letter}') > 0" for letter in LETTERS)
    return op.get_bind().execute(sa.text(f"SELECT 1 FROM {table} WHERE {found} LIMIT 1")).first()


def _twice(index: str) -> str:
    """The rows whose values lower() makes one, if the index is unique: "1 'A' and 2 'a'; ..."."""
    table, column, rows = INDEXES[index]
    if rows is None:
        return ""
    groups = op.get_bind().execute(
        sa.text(
            # NOT INDEXED: the index on lower() holds the values of the other lower()
            f"SELECT group_concat(id || ' ' || quote({column}), ' and ') "
            f"FROM {table} NOT INDEXED GROUP BY lower({column}) HAVING count(*) > 1"
        )
    )
    return "; ".join(group for (group,) in groups)


def _refuse_upgrade(found: list[tuple[str, str]]) -> str:
    """The message naming the rows that are one now, and how to change them safely."""
    said = [
        f"These {rows} are one now that SQLite ignores case as PostgreSQL does (a 'Σ' ending "
        f"a word is 'σ', 'İ' is 'i'): {named}. {_remedy(rows)}"
        for rows, named in found
    ]
    return (
        " ".join(said)
        + " No index was rebuilt (the database stays at revision 0023): do that, then run "
        "`product-importer migrate` again."
    )


def _remedy(rows: str) -> str:
    """What to do with the rows of a group, each table as its index allows."""
    if rows == "products":
        return (
            "Change the SKU of one of them, or delete it (PATCH or DELETE /api/products/N, "
            "with the release before this one)."
        )
    command = shlex.quote(NEW_EMAIL.format(path=json.dumps(_database_file(), ensure_ascii=False)))
    return (
        "Give one of them another email with Python, whose lower() built its index (not with "
        "the sqlite3 shell: its lower() folds ASCII letters only, and its UPDATE would damage "
        f"the index): put the account's id for N and its new email in `python3 -c {command}`."
    )


def _database_file() -> str:
    """The path of the SQLite database file being migrated."""
    files = op.get_bind().execute(sa.text("PRAGMA database_list"))
    return next(file for _, name, file in files if name == "main")


def _refuse_downgrade(found: list[tuple[str, str]]) -> str:
    """The message naming the rows that the release before this one takes for one."""
    named = "; ".join(f"{rows} {named}" for rows, named in found)
    return (
        f"These are one for the release before this one (a 'İ' is 'i' and U+0307 there): "
        f"{named}. Change one of each, then downgrade again."
    )
