"""Stage validated rows and merge them into the catalog in one transaction.

PostgreSQL: COPY into a temporary table, then set-based SQL: keep the last row of each
case-insensitive SKU, update the products whose values differ, insert the new ones.
SQLite (embedded default): the same steps with executemany and SQLite's UPDATE .. FROM.
Neither touches the catalog until `merge()`, and neither commits: the caller commits once.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from .. import database

STAGING_COLUMNS = "(rn, sku, name, description, active)"


@dataclass(frozen=True)
class MergeCounts:
    """Products after in-file duplicates collapse: created + updated + unchanged = distinct."""

    distinct: int
    created: int
    updated: int

    @property
    def unchanged(self) -> int:
        return self.distinct - self.created - self.updated


# Step callbacks let the runner report which part of the merge is running.
Step = Callable[[str], None]


class PostgresStage:
    """Staging and merge on a PostgreSQL connection inside one open transaction."""

    def __init__(self, conn: Connection, now: datetime):
        self.conn = conn
        self.execute = conn.exec_driver_sql
        self.staged = 0
        self._copy = None
        self._copy_cm = None

    def start(self) -> None:
        """Create the temporary staging table and open a COPY into it."""
        self.execute(
            "CREATE TEMP TABLE import_staging (rn bigint NOT NULL, sku text NOT NULL, "
            "name text NOT NULL, description text, active boolean, "
            # computed by the database while Python is still parsing later rows
            "key text GENERATED ALWAYS AS (lower(sku)) STORED) ON COMMIT DROP"
        )
        self._open_copy()

    def _open_copy(self) -> None:
        cursor = self.conn.connection.driver_connection.cursor()  # psycopg, for COPY
        self._copy_cm = cursor.copy(f"COPY import_staging {STAGING_COLUMNS} FROM STDIN")
        self._copy = self._copy_cm.__enter__()

    def write(self, rows: list[tuple]) -> None:
        """Send valid rows `(line, sku, name, description, active)` to the staging table."""
        write_row = self._copy.write_row
        for row in rows:
            write_row(row)
        self.staged += len(rows)

    def reset(self) -> None:
        """Forget every staged row, to read the file again from the start."""
        self._close_copy()
        self.execute("TRUNCATE import_staging")
        self.staged = 0
        self._open_copy()

    def _close_copy(self, error: BaseException | None = None) -> None:
        if self._copy_cm is not None:
            copy_cm, self._copy_cm, self._copy = self._copy_cm, None, None
            copy_cm.__exit__(type(error) if error else None, error, None)

    def abort(self, error: BaseException) -> None:
        """End an open COPY after a failure, so the transaction can roll back."""
        self._close_copy(error)

    def finish(self) -> None:
        """End the COPY without merging (nothing to apply), so the transaction can go on."""
        self._close_copy()

    def merge(self, step: Step) -> MergeCounts:
        """Apply the staged rows to the catalog; the caller's transaction is still open."""
        self._close_copy()
        execute = self.execute
        database.POSTGRES.hold_apply_lock(self.conn)
        # Product edits wait (reads do not) until the import commits: no SKU can appear
        # between the join and the INSERT, so the INSERT needs no costly ON CONFLICT.
        execute("LOCK TABLE products IN SHARE ROW EXCLUSIVE MODE")
        execute("SET LOCAL work_mem = '256MB'")
        step("deduplicating")
        superseded = execute(PG_DROP_SUPERSEDED).rowcount
        execute("ANALYZE import_staging")
        step("merging")
        updated, created = execute(PG_MERGE).fetchone()
        return MergeCounts(distinct=self.staged - superseded, created=created, updated=updated)


# Within the file the last row of a SKU wins: delete the earlier ones (a hash aggregate, no
# sort of the whole table).
PG_DROP_SUPERSEDED = """
DELETE FROM import_staging AS s
USING (SELECT key, max(rn) AS rn FROM import_staging GROUP BY key HAVING count(*) > 1) AS last
WHERE s.key = last.key AND s.rn < last.rn
"""

# One join of the file with the catalog serves both the UPDATE (only rows whose values
# differ are rewritten) and the INSERT. New products go in in key order, so the lower(sku)
# index fills from left to right; COLLATE "C" sorts by bytes, faster than the database's
# collation and the same for equality.
PG_MERGE = """
WITH matched AS MATERIALIZED (
    SELECT s.key, s.sku, s.name, s.description, s.active, p.id AS product_id,
           (p.sku, p.name, p.description, p.active)
           IS DISTINCT FROM (s.sku, s.name, COALESCE(s.description, p.description),
                             COALESCE(s.active, p.active)) AS changed
    FROM import_staging AS s LEFT JOIN products AS p ON lower(p.sku) = s.key
), updated AS (
    UPDATE products AS p
    SET sku = m.sku, name = m.name,
        description = COALESCE(m.description, p.description),
        active = COALESCE(m.active, p.active),
        updated_at = now()
    FROM matched AS m
    WHERE p.id = m.product_id AND m.changed
    RETURNING 1
), created AS (
    INSERT INTO products (sku, name, description, active, created_at, updated_at)
    SELECT sku, name, COALESCE(description, ''), COALESCE(active, true), now(), now()
    FROM matched WHERE product_id IS NULL
    ORDER BY key COLLATE "C"
    RETURNING 1
)
SELECT (SELECT count(*) FROM updated), (SELECT count(*) FROM created)
"""


class SqliteStage:
    """Staging and merge on a SQLite connection; the merge runs in one write transaction."""

    def __init__(self, conn: Connection, now: datetime):
        self.conn = conn
        self.execute = conn.exec_driver_sql
        self.now = now.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite format

    def start(self) -> None:
        """Create the staging table in SQLite's temp database (no lock on the catalog)."""
        self.execute("DROP TABLE IF EXISTS temp.import_staging")
        self.execute(
            "CREATE TEMP TABLE import_staging (rn INTEGER NOT NULL, sku TEXT NOT NULL, "
            "name TEXT NOT NULL, description TEXT, active INTEGER)"
        )

    def write(self, rows: Iterable[tuple]) -> None:
        """Insert valid rows into the staging table."""
        rows = list(rows)
        if rows:
            self.execute("INSERT INTO temp.import_staging VALUES (?, ?, ?, ?, ?)", rows)

    def reset(self) -> None:
        """Forget every staged row, to read the file again from the start."""
        self.execute("DELETE FROM temp.import_staging")

    def abort(self, error: BaseException) -> None:
        """Nothing to end: SQLite stages with plain INSERTs."""

    def finish(self) -> None:
        """Nothing to end: SQLite stages with plain INSERTs."""

    def merge(self, step: Step) -> MergeCounts:
        """Apply the staged rows inside BEGIN IMMEDIATE; the caller commits."""
        execute = self.execute
        self.conn.commit()  # staging touched only the temp database; now take the write lock
        execute("BEGIN IMMEDIATE")
        database.SQLITE.hold_apply_lock(self.conn)
        step("deduplicating")
        execute("DROP TABLE IF EXISTS temp.import_latest")
        # SQLite takes the bare columns from the row holding max(rn): the last occurrence.
        execute(
            "CREATE TEMP TABLE import_latest AS SELECT lower(sku) AS key, sku, name, "
            "description, active, max(rn) AS rn FROM temp.import_staging GROUP BY lower(sku)"
        )
        distinct = execute("SELECT count(*) FROM temp.import_latest").fetchone()[0]
        step("updating")
        updated = execute(SQLITE_UPDATE, (self.now,)).rowcount
        step("inserting")
        created = execute(SQLITE_INSERT, (self.now, self.now)).rowcount
        return MergeCounts(distinct=distinct, created=created, updated=updated)


SQLITE_UPDATE = """
UPDATE products
SET sku = l.sku, name = l.name,
    description = COALESCE(l.description, products.description),
    active = COALESCE(l.active, products.active),
    updated_at = ?
FROM temp.import_latest AS l
WHERE lower(products.sku) = l.key
  AND (products.sku IS NOT l.sku OR products.name IS NOT l.name
       OR products.description IS NOT COALESCE(l.description, products.description)
       OR products.active IS NOT COALESCE(l.active, products.active))
"""

SQLITE_INSERT = """
INSERT INTO products (sku, name, description, active, created_at, updated_at)
SELECT l.sku, l.name, COALESCE(l.description, ''), COALESCE(l.active, 1), ?, ?
FROM temp.import_latest AS l
WHERE NOT EXISTS (SELECT 1 FROM products AS p WHERE lower(p.sku) = l.key)
ORDER BY l.rn
"""


STAGES = {database.POSTGRES.name: PostgresStage, database.SQLITE.name: SqliteStage}


def open_stage(conn: Connection, now: datetime) -> PostgresStage | SqliteStage:
    """The staging area of the database `conn` is on; `now` stamps the products it writes."""
    return STAGES[database.of(conn).name](conn, now)
