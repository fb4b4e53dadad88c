"""Stage validated rows and merge them into the catalog in one transaction.

PostgreSQL (`postgres_stage.py`): COPY into a staging table, then set-based SQL: keep the last
row of each case-insensitive SKU, compare with the catalog, then update and insert in place or,
when the import writes most of the catalog, build it anew and switch it in (`bulk.py`).
SQLite (embedded default): the same semantics with executemany and SQLite's UPDATE .. FROM.
Neither touches the catalog until `merge()`, and neither commits it: the caller commits once.
"""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, Engine

from .. import database
from .counts import MergeCounts, Steps
from .postgres_stage import PostgresStage

__all__ = ["MergeCounts", "PostgresStage", "SqliteStage", "open_stage", "refresh_search"]


class SqliteStage:
    """Staging and merge on a SQLite connection; the merge runs in one write transaction."""

    def __init__(self, conn: Connection, now: datetime, job_id: int | None = None):
        self.conn = conn
        self.execute = conn.exec_driver_sql
        self.now = now.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite format
        self.staged = 0

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
            self.staged += len(rows)

    def reset(self) -> None:
        """Forget every staged row, to read the file again from the start."""
        self.execute("DELETE FROM temp.import_staging")
        self.staged = 0

    def abort(self, error: BaseException) -> None:
        """Nothing to end: SQLite stages with plain INSERTs."""

    def finish(self) -> None:
        """Nothing to end: SQLite stages with plain INSERTs."""

    def prepare(self) -> None:
        """Nothing to prepare: the staging table is this connection's own."""

    def interrupt(self) -> None:
        """Stop the statement running on the connection, from another thread."""
        database.SQLITE.interrupt(self.conn)

    def cleanup(self) -> None:
        """Nothing to drop: SQLite's temp tables go with the connection."""

    @staticmethod
    def refresh_search(engine: Engine) -> None:
        """Nothing to refresh: SQLite merges in place, its indexes are always whole."""

    def merge(self, steps: Steps) -> MergeCounts:
        """Apply the staged rows inside BEGIN IMMEDIATE; the caller commits."""
        execute = self.execute
        self.conn.commit()  # staging touched only the temp database; now take the write lock
        execute("BEGIN IMMEDIATE")
        database.SQLITE.hold_apply_lock(self.conn)
        steps.start("deduplicating")
        execute("DROP TABLE IF EXISTS temp.import_latest")
        # SQLite takes the bare columns from the row holding max(rn): the last occurrence.
        execute(
            "CREATE TEMP TABLE import_latest AS SELECT lower(sku) AS key, sku, name, "
            "description, active, max(rn) AS rn FROM temp.import_staging GROUP BY lower(sku)"
        )
        distinct = execute("SELECT count(*) FROM temp.import_latest").fetchone()[0]
        steps.expect([("updating", distinct), ("inserting", distinct)])
        steps.start("updating")
        updated = execute(SQLITE_UPDATE, (self.now,)).rowcount
        steps.start("inserting")
        created = execute(SQLITE_INSERT, (self.now, self.now)).rowcount
        return MergeCounts(distinct, created, updated, superseded=self.staged - distinct)


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


def open_stage(conn: Connection, now: datetime, job_id: int) -> PostgresStage | SqliteStage:
    """The staging area of job `job_id`; `now` stamps the products it writes."""
    return STAGES[database.of(conn).name](conn, now, job_id)


def refresh_search(conn: Connection, engine: Engine) -> None:
    """Build the search indexes that a bulk import left for after its commit (PostgreSQL)."""
    STAGES[database.of(conn).name].refresh_search(engine)
