"""Stage validated rows and merge them into the catalog in one transaction.

PostgreSQL (`postgres_stage.py`): COPY into a staging table, then set-based SQL: keep the last
row of each case-insensitive SKU, compare with the catalog, then update and insert in place or,
when the import writes most of the catalog, build it anew and switch it in (`bulk.py`).
SQLite (embedded default): the same semantics with executemany and SQLite's UPDATE .. FROM.
Neither touches the catalog until `merge()`, and neither commits it: the caller commits once.
"""

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, Engine

from .. import database
from ..timeutil import utcnow
from .counts import MergeCounts, Steps
from .postgres_stage import CHANGE_COLUMNS, PostgresStage
from .states import PLANNED_KINDS

log = logging.getLogger(__name__)

__all__ = [
    "MergeCounts",
    "PostgresStage",
    "SqliteStage",
    "drop_leftovers",
    "open_stage",
    "refresh_search",
]


class SqliteStage:
    """Staging and merge on a SQLite connection; the merge runs in one write transaction."""

    def __init__(self, conn: Connection, job_id: int, *, record_changes=True, **_options):
        self.conn = conn
        self.job_id = job_id if record_changes else None  # the change record's job, if kept
        self.execute = conn.exec_driver_sql
        self.written_at: datetime | None = None  # the stamp of what it writes (`merge`)
        self.now = ""  # the same, in SQLAlchemy's SQLite format
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

    @staticmethod
    def discard_plan(conn: Connection, job_id: int) -> None:
        """Nothing to drop: a plan on SQLite keeps its record as rows, and its apply reads the
        file again."""

    @staticmethod
    def forget_unused_plans(conn: Connection) -> int:
        """Nothing to drop: plans keep no rows on SQLite."""
        return 0

    @staticmethod
    def drop_leftovers(conn: Connection) -> None:
        """Nothing to drop: SQLite merges in temp tables, which end with their connection."""

    @staticmethod
    def kept_tables(conn: Connection, job_id: int) -> None:
        """None: a plan on SQLite records its new products as rows of the change record."""
        return None

    def adopt_plan(self, distinct: int, superseded: int) -> bool:
        """A plan's staged rows are not kept on SQLite (its temp tables end with the
        connection): the file is read again."""
        return False

    def lock_catalog(self) -> None:
        """Take SQLite's write lock (and the apply lock) for this transaction."""
        self.conn.commit()  # staging touched only the temp database; now take the write lock
        self.execute("BEGIN IMMEDIATE")
        database.SQLITE.hold_apply_lock(self.conn)

    def _deduplicate(self, steps: Steps) -> int:
        """Keep the last row of each SKU in temp.import_latest; return how many products."""
        steps.start("deduplicating")
        self.execute("DROP TABLE IF EXISTS temp.import_latest")
        # SQLite takes the bare columns from the row holding max(rn): the last occurrence.
        self.execute(
            "CREATE TEMP TABLE import_latest AS SELECT lower(sku) AS key, sku, name, "
            "description, active, max(rn) AS rn FROM temp.import_staging GROUP BY lower(sku)"
        )
        return self.execute("SELECT count(*) FROM temp.import_latest").fetchone()[0]

    def _new_products(self) -> int:
        """Keep the rows whose SKU is not in the catalog in temp.import_new; count them."""
        self.execute("DROP TABLE IF EXISTS temp.import_new")
        self.execute(SQLITE_NEW)
        return self.execute("SELECT count(*) FROM temp.import_new").fetchone()[0]

    def plan(self, steps: Steps) -> MergeCounts:
        """Compare the staged rows with the catalog and record what applying would change."""
        self.conn.commit()
        distinct = self._deduplicate(steps)
        steps.start("comparing")
        recorded = (self.job_id, PLANNED_KINDS["updated"])
        updated = self.execute(SQLITE_RECORD_UPDATED, recorded).rowcount
        self._new_products()
        recorded = (self.job_id, PLANNED_KINDS["created"])
        created = self.execute(SQLITE_RECORD_CREATED, recorded).rowcount
        return MergeCounts(distinct, created, updated, superseded=self.staged - distinct)

    def merge(self, steps: Steps) -> MergeCounts:
        """Apply the staged rows inside BEGIN IMMEDIATE; the caller commits."""
        execute = self.execute
        self.lock_catalog()
        # Stamped once the catalog is the import's: after every edit it overwrites, which
        # may have been committed while the file was read or the import waited its turn.
        self.written_at = utcnow()
        self.now = self.written_at.strftime("%Y-%m-%d %H:%M:%S.%f")
        distinct = self._deduplicate(steps)
        steps.expect([("updating", distinct), ("inserting", distinct)])
        steps.start("updating")
        if self.job_id is not None:
            execute(SQLITE_RECORD_UPDATED, (self.job_id, "updated"))
        updated = execute(SQLITE_UPDATE, (self.now,)).rowcount
        steps.start("inserting")
        self._new_products()
        # SQLite gives new rows ids after the largest it ever gave (AUTOINCREMENT, migration
        # 0020), and no one else writes meanwhile: every id above the largest one here is a new
        # product, so this block (gaps of deleted ids and all) is the record of what it created.
        last = execute(LAST_ID).fetchone()[0]
        created = execute(SQLITE_INSERT, (self.now, self.now)).rowcount
        block = (last + 1, execute(LAST_ID).fetchone()[0]) if created else None
        superseded = self.staged - distinct
        return MergeCounts(
            distinct, created, updated, superseded, created_ids=block, written_at=self.written_at
        )


# A staged row that changes its product (`products` as p, the row as l).
SQLITE_CHANGES = """
lower(p.sku) = l.key
AND (p.sku IS NOT l.sku OR p.name IS NOT l.name
     OR p.description IS NOT COALESCE(l.description, p.description)
     OR p.active IS NOT COALESCE(l.active, p.active))
"""

SQLITE_UPDATE = f"""
UPDATE products AS p
SET sku = l.sku, name = l.name,
    description = COALESCE(l.description, p.description),
    active = COALESCE(l.active, p.active),
    updated_at = ?
FROM temp.import_latest AS l
WHERE {SQLITE_CHANGES}
"""

SQLITE_NEW = """
CREATE TEMP TABLE import_new AS SELECT l.* FROM temp.import_latest AS l
WHERE NOT EXISTS (SELECT 1 FROM products AS p WHERE lower(p.sku) = l.key)
"""

SQLITE_INSERT = """
INSERT INTO products (sku, name, description, active, created_at, updated_at)
SELECT l.sku, l.name, COALESCE(l.description, ''), COALESCE(l.active, 1), ?, ?
FROM temp.import_new AS l
ORDER BY l.rn
"""

LAST_ID = "SELECT coalesce(max(id), 0) FROM products"

# The change record (migrations 0007, 0013), as on PostgreSQL (postgres_stage.py): for an update
# what the import writes and what was there, the description only where it changes; a plan's
# new products with their values.
SQLITE_RECORD_UPDATED = f"""
INSERT INTO import_changes {CHANGE_COLUMNS}
SELECT ?, l.rn, ?, p.id, l.sku, l.name,
       CASE WHEN l.description <> p.description THEN l.description END,
       COALESCE(l.active, p.active), p.sku, p.name,
       CASE WHEN l.description <> p.description THEN p.description END, p.active, p.updated_at
FROM temp.import_latest AS l JOIN products AS p ON {SQLITE_CHANGES}
"""
SQLITE_RECORD_CREATED = f"""
INSERT INTO import_changes {CHANGE_COLUMNS}
SELECT ?, l.rn, ?, NULL, l.sku, l.name, COALESCE(l.description, ''),
       COALESCE(l.active, 1), NULL, NULL, NULL, NULL, NULL
FROM temp.import_new AS l
"""


STAGES = {database.POSTGRES.name: PostgresStage, database.SQLITE.name: SqliteStage}


def open_stage(
    conn: Connection,
    job_id: int,
    *,
    record_changes: bool = True,
    search_index_after_switch: bool | None = None,
) -> PostgresStage | SqliteStage:
    """The staging area of job `job_id`; its merge stamps the products it writes.

    What the merge (or a plan) changes is recorded as the job's change record, if kept. A
    bulk merge (PostgreSQL) builds its trigram indexes after its switch, or before it.
    """
    stage = STAGES[database.of(conn).name]
    options = {"search_index_after_switch": search_index_after_switch}
    return stage(conn, job_id, record_changes=record_changes, **options)


def discard_plan(conn: Connection, job_id: int) -> None:
    """Drop what a plan kept for its apply (PostgreSQL), in the caller's transaction."""
    STAGES[database.of(conn).name].discard_plan(conn, job_id)


def kept_tables(conn: Connection, job_id: int) -> tuple[str, str | None] | None:
    """The tables of the rows a plan kept for its apply (PostgreSQL), if it kept any."""
    return STAGES[database.of(conn).name].kept_tables(conn, job_id)


def forget_unused_plans(conn: Connection) -> int:
    """Drop what plans kept that no apply will read (PostgreSQL); return how many tables."""
    return STAGES[database.of(conn).name].forget_unused_plans(conn)


def drop_leftovers(conn: Connection) -> None:
    """Drop the scratch tables an import lost while applying left (PostgreSQL); only while
    holding the turn to apply, when no import uses them."""
    STAGES[database.of(conn).name].drop_leftovers(conn)


def refresh_search(conn: Connection, engine: Engine) -> None:
    """Build the search indexes that a bulk import left for after its commit (PostgreSQL),
    if `conn`'s session still holds the turn to apply."""
    seam = database.of(conn)
    if not seam.holds_turn(conn):
        # Cut off, and connected again: another import may hold the turn now and build them;
        # this build would end its lanes first (`bulk.END_LOST_LANES`).
        log.warning("search indexes not refreshed: this session lost the turn to apply")
        return
    STAGES[seam.name].refresh_search(engine)
