"""PostgreSQL staging and merge: COPY into an unlogged table, compare, merge in place or in bulk.

The staging table is a plain (unlogged) table of the job's own (`import_staging_<job id>`), so
that imports read side by side; committed once the file is read. When its turn to apply comes
(one import at a time) it is renamed `import_staging`, the name the merge's SQL and its helper
connections read. The catalog is not touched until the import's own transaction merges or
switches it, and the caller commits that once. Leftovers of an attempt that died are dropped by
the next attempt of the job, or by the next import to apply.

Which path runs is chosen by the file's numbers after comparing it with the catalog: an import
that writes most of the catalog (a fresh one, or one that changes half the products) builds the
catalog anew beside the live one (`bulk.py`); one that writes few rows updates them in place.
"""

import dataclasses
import logging
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from .. import database
from ..timeutil import utcnow
from . import bulk
from .counts import MergeCounts, Steps
from .states import PLANNED_KINDS

log = logging.getLogger(__name__)

LEFTOVERS_LOCK_WAIT = "1s"  # the longest a drain waits for a lost import's tables

STAGING = "import_staging"
PLAN = "import_plan"
# A plan keeps its staged rows until it is applied or discarded: its list of new products reads
# them, and its apply merges them without reading the file again.
KEPT = "import_planned_{}"
KEPT_NEW = "import_planned_new_{}"  # the lines of those rows that create a product
STAGING_COLUMNS = "(rn, sku, name, description, active, bucket)"
# COPY's binary format: psycopg writes each value as it is, where the text format has it scan
# every value for characters to escape (500K rows read 0.2-0.25 s sooner, measured alone).
STAGING_TYPES = ("int8", "text", "text", "text", "bool", "int4")
# Python puts each row in a bucket by a hash of its SKU's lowercase, and notes the buckets that
# got a second row: only rows of those buckets can repeat a SKU. The database then groups those
# rows alone, found in one scan by a bitmap of the buckets, not by joining every key of the file.
# 2^26 buckets, 8 MB per bitmap: at 5M distinct SKUs, 7% of the rows share a bucket in vain
BUCKETS = 1 << 26
REPEATS = "import_repeats"  # the bitmap of buckets with repeats, for the statement to read
# Building the catalog anew costs about half a row written in place per catalog row (its
# indexes are built in bulk, in parallel), plus a fixed cost that a small import never repays.
BULK_MIN_ROWS = 10_000
BULK_MIN_SHARE = 0.1  # rows written / products after the import


@dataclasses.dataclass
class Buckets:
    """Which buckets of SKUs got a row (`seen`) and a second row (`again`), as bitmaps."""

    seen: bytearray = dataclasses.field(default_factory=lambda: bytearray(BUCKETS // 8))
    again: bytearray = dataclasses.field(default_factory=lambda: bytearray(BUCKETS // 8))
    outside_ascii: int = 0  # rows without a bucket

    def repeated(self) -> bool:
        """Whether some bucket got a second row (the bitmap scanned in C: 5-8 ms)."""
        return self.again.count(0) != len(self.again)


class PostgresStage:
    """Staging and merge on a PostgreSQL connection; the merge runs in the caller's transaction."""

    def __init__(
        self,
        conn: Connection,
        job_id: int,
        *,
        record_changes: bool = True,
        search_index_after_switch: bool | None = None,
    ):
        self.conn, self.job = conn, int(job_id)
        self.now: datetime | None = None  # the stamp of the products it writes (`merge`)
        self.search_index_after_switch = search_index_after_switch
        self.table = f"{STAGING}_{int(job_id)}"  # while reading; STAGING once applying
        # the change record's job: None when the import keeps none
        self.job_id = job_id if record_changes else None
        self.execute = conn.exec_driver_sql
        self.staged = 0
        self._buckets = Buckets()
        self._copy = self._copy_cm = None
        self._build: bulk.Build | None = None
        self._planned = False  # whether the import_plan table holds the rows to write
        self._descriptions = True  # whether the file gives descriptions (its rows' hashes)
        self._kept_superseded: int | None = None  # set when the rows are a plan's, kept

    def start(self) -> None:
        """Create the staging table and open a COPY into it."""
        self.cleanup()
        self.execute(
            f"CREATE UNLOGGED TABLE {self.table} (rn bigint NOT NULL, sku text NOT NULL, "
            # NULL: a SKU not in ASCII, whose lowercase Python may not see as PostgreSQL does
            "name text NOT NULL, description text, active boolean, bucket integer, "
            # computed by the database while Python is still parsing later rows
            "key text GENERATED ALWAYS AS (lower(sku)) STORED, "
            f"hash bigint GENERATED ALWAYS AS ({ROW_HASH}) STORED) "
            "WITH (autovacuum_enabled = false)"
        )
        self._open_copy()

    def _open_copy(self) -> None:
        cursor = self.conn.connection.driver_connection.cursor()  # psycopg, for COPY
        copying = f"COPY {self.table} {STAGING_COLUMNS} FROM STDIN (FORMAT BINARY)"
        self._copy_cm = cursor.copy(copying)
        self._copy = self._copy_cm.__enter__()
        self._copy.set_types(STAGING_TYPES)

    def write(self, rows: list[tuple]) -> None:
        """Send valid rows `(line, sku, name, description, active)` to the staging table."""
        write_row, buckets = self._copy.write_row, self._buckets
        seen, again, mask = buckets.seen, buckets.again, BUCKETS - 1
        for row in rows:
            sku = row[1]
            # PostgreSQL's lower() of an ASCII SKU is the same key as Python's whenever two
            # such SKUs are one; any other SKU gets no bucket, and is grouped in every case.
            if sku.isascii():
                bit = hash(sku.lower()) & mask
                byte, flag = bit >> 3, 1 << (bit & 7)
                if seen[byte] & flag:
                    again[byte] |= flag
                else:
                    seen[byte] |= flag
                write_row((*row, bit))
            else:
                write_row((*row, None))
                buckets.outside_ascii += 1
        self.staged += len(rows)
        if rows and rows[0][3] is None:  # the file has no description column
            self._descriptions = False

    def reset(self) -> None:
        """Forget every staged row, to read the file again from the start."""
        self._close_copy()
        self.execute(f"TRUNCATE {self.table}")
        self.staged, self._buckets = 0, Buckets()
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

    def prepare(self) -> None:
        """End the COPY and commit the staged rows: reading is done."""
        self._close_copy()
        self.conn.commit()

    def interrupt(self) -> None:
        """Cancel the statements of this stage, on its connection and its helpers'."""
        database.POSTGRES.interrupt(self.conn)
        if self._build is not None:
            self._build.interrupt()

    @staticmethod
    def discard_plan(conn: Connection, job_id: int) -> None:
        """Drop the rows a plan kept, in the caller's transaction: it will not be applied."""
        conn.exec_driver_sql(drop_kept(job_id))

    @staticmethod
    def kept_tables(conn: Connection, job_id: int) -> tuple[str, str | None] | None:
        """The tables of the rows a plan of `job_id` kept, and of the lines that create products
        (None: every row does); None when it kept none."""
        kept, new = KEPT.format(int(job_id)), KEPT_NEW.format(int(job_id))
        found = conn.exec_driver_sql(
            "SELECT to_regclass(%(kept)s) IS NOT NULL, to_regclass(%(new)s) IS NOT NULL",
            {"kept": kept, "new": new},
        ).one()
        return (kept, new if found[1] else None) if found[0] else None

    @staticmethod
    def forget_unused_plans(conn: Connection) -> int:
        """Drop the rows kept by plans that will not be applied now (their apply was cancelled
        while queued, say), in the caller's transaction; return how many tables."""
        tables = conn.exec_driver_sql(UNUSED_KEPT).scalars().all()
        for name in tables:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        return len(tables)

    @staticmethod
    def drop_leftovers(conn: Connection) -> None:
        """Drop the merge's tables an import lost while applying left (its build of the whole
        catalog, say), committed. Its next attempt would drop them, but one that ended for
        good (cancelled, or lost too often) has none. A lost import's helpers may still hold
        them until recovery ends their sessions: then they are left for the next drain, rather
        than waited for while this one holds the turn every import needs."""
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LEFTOVERS_LOCK_WAIT}'")
        try:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {STAGING}, {PLAN}, {bulk.BUILD}")
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != bulk.LOCK_NOT_AVAILABLE:
                raise
            conn.rollback()
            log.info("the scratch tables of a lost import are still in use: left for later")
            return
        conn.commit()

    @staticmethod
    def refresh_search(engine) -> None:
        """Build the search indexes a bulk import left for after its commit."""
        bulk.refresh_search(engine)

    def cleanup(self) -> None:
        """Drop the staging tables of this import (or of an attempt that died), committed."""
        if self.table != STAGING:
            self.execute(f"DROP TABLE IF EXISTS {self.table}")
        elif database.POSTGRES.holds_turn(self.conn):  # applying: the merge's tables too
            self.execute(f"DROP TABLE IF EXISTS {STAGING}, {PLAN}, {bulk.BUILD}")
        else:
            # Its session was cut: the shared names may be the next holder's tables now (that
            # holder drops this attempt's as it takes them over).
            log.warning("import %s: lost the turn with its session, merge tables left", self.job)
        if self.table == STAGING:
            self.execute(FORGET_UNWRITTEN_RECORD, {"job": self.job})
        self.conn.commit()

    def _take_over_shared_names(self) -> None:
        """Give the staged rows the name the merge reads (it is this import's turn), committed."""
        # a lost attempt's
        self.execute(f"DROP TABLE IF EXISTS {STAGING}, {PLAN}, {bulk.BUILD}")
        self.execute(FORGET_UNWRITTEN_RECORD, {"job": self.job})
        self.execute(f"ALTER TABLE {self.table} RENAME TO {STAGING}")
        self.table = STAGING
        self.conn.commit()

    def lock_catalog(self) -> None:
        """Hold the catalog for this transaction: product edits and other imports wait.

        Reads do not wait. An import's comparison stays true until it commits, so its INSERT
        needs no costly ON CONFLICT. Its changes are not logged row by row for the list totals.
        """
        database.POSTGRES.hold_apply_lock(self.conn)
        database.POSTGRES.change_in_bulk(self.conn)
        self.execute("LOCK TABLE products IN SHARE ROW EXCLUSIVE MODE")

    def adopt_plan(self, distinct: int, superseded: int) -> bool:
        """Take the staged rows a plan of this job kept, instead of reading its file again.

        True when they are there and whole (`distinct` rows: a crash empties unlogged tables);
        committed.
        """
        kept = KEPT.format(self.job)
        found = self.execute("SELECT to_regclass(%(name)s) IS NOT NULL", {"name": kept}).scalar()
        whole = found and self.execute(f"SELECT count(*) FROM {kept}").scalar() == distinct
        self.execute(f"DROP TABLE IF EXISTS {self.table}, {KEPT_NEW.format(self.job)}")
        self.execute(f"ALTER TABLE {kept} RENAME TO {self.table}" if whole else drop_kept(self.job))
        if whole:
            self.staged, self._kept_superseded = distinct + superseded, superseded
            no_description = f"SELECT description IS NULL FROM {self.table} LIMIT 1"
            self._descriptions = not self.execute(no_description).scalar()
        self.conn.commit()
        return bool(whole)

    def _keep_plan(self) -> None:
        """Keep the staged rows, and which of them create products, past the plan's end."""
        kept, new = KEPT.format(self.job), KEPT_NEW.format(self.job)
        self.execute(f"DROP TABLE IF EXISTS {kept}, {new}")
        if self._planned:
            self.execute(
                f"CREATE UNLOGGED TABLE {new} WITH (autovacuum_enabled = false) AS "
                f"SELECT rn FROM {PLAN} WHERE product_id IS NULL"
            )
        self.execute(f"ALTER TABLE {STAGING} RENAME TO {kept}")

    def _deduplicate(self, steps: Steps) -> int:
        """Drop rows whose SKU comes again later, commit the staging table; return how many."""
        self._close_copy()
        self._take_over_shared_names()
        steps.start("deduplicating")
        if self._kept_superseded is not None:  # a plan's rows: deduplicated when it ran
            return self._kept_superseded
        superseded = self._drop_superseded()
        if self._joined_to_catalog(self.staged - superseded):
            self.execute(f"ANALYZE {STAGING}")
        self.conn.commit()  # the staging table, readable by helpers; the catalog is untouched
        return superseded

    def _drop_superseded(self) -> int:
        """Delete the rows a later row of the same SKU supersedes; return how many."""
        buckets, self._buckets = self._buckets, Buckets(bytearray(), bytearray())  # read
        if not buckets.outside_ascii and not buckets.repeated():
            return 0
        statement = _superseded_statement(buckets.outside_ascii)
        again = buckets.again
        del buckets  # the other bitmap's 8 MB given back before this one is copied
        self.execute(f"CREATE TEMP TABLE {REPEATS} (bits bytea) ON COMMIT DROP")
        # stored as it is: compressing it cost 0.3 s at 5M rows, to be undone the next moment
        self.execute(f"ALTER TABLE {REPEATS} ALTER bits SET STORAGE EXTERNAL")
        cursor = self.conn.connection.driver_connection.cursor()
        # COPY, not a parameter: a server that logs its statements would write out 8 MB
        with cursor.copy(f"COPY {REPEATS} FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["bytea"])
            copy.write_row((again,))
        del again
        return self.execute(statement).rowcount

    def _joined_to_catalog(self, distinct: int) -> bool:
        """Whether the merge may join the staged rows, so that its plans need their statistics.

        A large import into an empty catalog only reads them through, to build the catalog
        (`bulk.py`): ANALYZE of 500K staged rows (0.2-0.3 s) would be for nothing. The catalog's
        size is read from pg_class, which takes no lock: the catalog may be held by an import's
        switch or an operator (the comparing step waits for it, as a job's progress says). Where
        pg_class calls it empty but it is not (rows inserted since a TRUNCATE, not yet analyzed),
        the merge's plans are made without the statistics: that costs time, not correctness.
        """
        return distinct < BULK_MIN_ROWS or self.execute(CATALOG_MAY_HOLD_PRODUCTS).scalar()

    def plan(self, steps: Steps) -> MergeCounts:
        """Compare the staged rows with the catalog and record what applying would change."""
        superseded = self._deduplicate(steps)
        distinct = self.staged - superseded
        steps.start("comparing")
        catalog = self.execute(CATALOG_SIZE).scalar()
        created, updated = self._compare(catalog, distinct, committed=False)
        self._record_updated(PLANNED_KINDS["updated"])
        self._keep_plan()  # the new products are listed from the kept rows
        return MergeCounts(distinct, created, updated, superseded)

    def _record_updated(self, kind: str = "updated") -> None:
        """Record the products the plan updates, with their values before (set-based)."""
        if self._planned and self.job_id is not None:
            self.execute(PG_RECORD_UPDATED, {"job": self.job_id, "kind": kind})

    def merge(self, steps: Steps) -> MergeCounts:
        """Apply the staged rows to the catalog; the caller's transaction is still open."""
        superseded = self._deduplicate(steps)
        self.lock_catalog()
        # Stamped once the catalog is the import's: after every edit it overwrites, which
        # may have been committed while the file was read or the import waited its turn.
        self.now = utcnow()
        distinct = self.staged - superseded
        steps.start("comparing")
        catalog = self.execute(CATALOG_SIZE).scalar()
        bulk_possible = distinct >= max(BULK_MIN_ROWS, BULK_MIN_SHARE * catalog)
        bulk_possible = bulk_possible and bulk.possible(self.conn)
        created, updated = self._compare(catalog, distinct, committed=bulk_possible)
        # New products take a block of ids: the change record of what this import creates.
        block = bulk.reserve_ids(self.conn) if created else None
        counts = MergeCounts(
            distinct, created, updated, superseded, created_ids=block, written_at=self.now
        )
        writes = created + updated
        if bulk_possible and writes >= max(BULK_MIN_ROWS, BULK_MIN_SHARE * (catalog + created)):
            return self._merge_in_bulk(steps, counts, catalog)
        return self._merge_in_place(steps, counts)

    def _written(self, counts: MergeCounts) -> dict:
        """The parameters of the statements that write products: the stamp, the id base."""
        base = counts.created_ids[0] - 1 if counts.created_ids else 0
        return {"now": self.now, "base": base}

    def _compare(self, catalog: int, distinct: int, *, committed: bool) -> tuple[int, int]:
        """Write the plan: the staged rows that are new or change their product; count them."""
        self._planned = catalog > 0
        if not self._planned:  # a fresh catalog: every row is new, nothing to compare
            return distinct, 0
        # Rows with descriptions compare by hash: a narrow join, not one of every column.
        plan = PG_PLAN if self._descriptions else PG_PLAN_BY_VALUES
        if committed:  # the bulk path's helpers read it
            unlogged = plan.format(kind="UNLOGGED")
            bulk.run_alone(self.conn, unlogged, f"SET {COMPARE_IN_PARALLEL}")
        else:
            self.execute(f"SET LOCAL {COMPARE_IN_PARALLEL}")
            self.execute(plan.format(kind="TEMP"))
            self.execute("SET LOCAL parallel_tuple_cost TO DEFAULT")
        return self.execute(PG_PLAN_COUNTS).one()

    def _merge_in_place(self, steps: Steps, counts: MergeCounts) -> MergeCounts:
        steps.expect([("updating", counts.updated), ("inserting", counts.created)])
        plan = PLAN if self._planned else STAGING_AS_PLAN
        if counts.updated:
            steps.start("updating")
            self._record_updated()
            self.execute(PG_UPDATE.format(plan=plan), self._written(counts))
        if counts.created:
            steps.start("inserting")
            self.execute(PG_INSERT.format(plan=plan), self._written(counts))
        return counts

    def _merge_in_bulk(self, steps: Steps, counts: MergeCounts, catalog: int) -> MergeCounts:
        self._build = bulk.Build(
            self.conn,
            self.now,
            fresh=catalog == 0,
            job=self.job_id,
            defer=self.search_index_after_switch,
        )
        rows = catalog + counts.created
        indexing = "indexing" if self._build.defer else "indexing for search"
        analyzing = [("analyzing", rows)] if self._build.analyzes else []
        steps.expect([("copying", rows), (indexing, rows), *analyzing])
        steps.start("copying")
        self._build.fill(self._written(counts)["base"])
        steps.start(indexing)
        self._build.index()
        if analyzing:
            steps.start("analyzing")
            self._build.analyze()
        steps.expect([("switching", rows)])
        steps.start("switching")
        deferred = self._build.switch()
        return dataclasses.replace(counts, search_deferred=deferred)


# The record of updates a bulk merge's helpers committed ahead of the import, while the job
# has not written the catalog: an attempt that failed, was cancelled or died (`bulk.Build.analyze`).
FORGET_UNWRITTEN_RECORD = """
DELETE FROM import_changes
WHERE job_id = %(job)s AND kind = 'updated'
  AND (SELECT written_at FROM import_jobs WHERE id = %(job)s) IS NULL
"""


def _superseded_statement(outside_ascii: int) -> str:
    """The statement that deletes superseded rows, for a file with this many rows outside ASCII."""
    if not outside_ascii:
        return PG_DROP_SUPERSEDED_ASCII
    if outside_ascii <= OUTSIDE_ASCII_HASHED:
        return PG_DROP_SUPERSEDED_FEW_OUTSIDE_ASCII
    return PG_DROP_SUPERSEDED_MANY_OUTSIDE_ASCII


# Within the file the last row of a SKU wins: delete the earlier ones. A row is in a bucket
# with repeats (`Buckets`): the bitmap is read once (its concatenation makes one plain copy of
# it, where the value as stored would be fetched again for every row).
REPEATED = f"get_bit((SELECT bits || ''::bytea FROM {REPEATS}), bucket) = 1"

# The rows that may repeat a SKU are found in one scan and grouped (a hash aggregate of a few
# keys, no sort); the earlier ones are deleted by their row address. `{candidates}` says which
# rows: every SKU in ASCII, only rows of a bucket with repeats can repeat one.
DROP_SUPERSEDED = f"""
WITH candidates AS MATERIALIZED (
    SELECT ctid AS address, key, rn FROM {STAGING} WHERE {{candidates}}
)
DELETE FROM {STAGING} WHERE ctid = ANY (ARRAY(
    SELECT c.address FROM candidates AS c
    JOIN (SELECT key, max(rn) AS rn FROM candidates GROUP BY key HAVING count(*) > 1) AS last
      ON c.key = last.key AND c.rn < last.rn
))
"""
PG_DROP_SUPERSEDED_ASCII = DROP_SUPERSEDED.format(candidates=REPEATED)
# A few SKUs are not in ASCII: such a key may equal an ASCII one's, in another bucket. Every row
# of such a key is a candidate too (the keys of the rows without a bucket: one more scan). Those
# keys are hashed in memory, which PostgreSQL never spills to disk here: fine for a few.
PG_DROP_SUPERSEDED_FEW_OUTSIDE_ASCII = DROP_SUPERSEDED.format(
    candidates=f"{REPEATED} OR key IN (SELECT key FROM {STAGING} WHERE bucket IS NULL)"
)
OUTSIDE_ASCII_HASHED = 100_000  # the most rows outside ASCII whose keys are hashed so
# Many (a catalog in another script): every key of a row without a bucket or in a bucket with
# repeats is joined, in a hash join that spills to disk where it must (three scans).
PG_DROP_SUPERSEDED_MANY_OUTSIDE_ASCII = f"""
DELETE FROM {STAGING} AS s
USING (
    SELECT key, max(rn) AS rn FROM {STAGING}
    WHERE key IN (SELECT key FROM {STAGING} WHERE bucket IS NULL OR {REPEATED})
    GROUP BY key HAVING count(*) > 1
) AS last
WHERE s.key = last.key AND s.rn < last.rn
"""

# A product's row hash (migration 0006 stores it on products): sku, name and description with a
# separator no valid value holds. Equal hashes mean equal values (a 64-bit hash: one chance in
# 2^64 per row that a change goes unseen); unequal ones certainly differ.
ROW_HASH = "hashtextextended(sku || E'\\x1f' || name || E'\\x1f' || description, 0)"

# The plan: every staged row that creates a product (product_id NULL) or changes one. Rows
# whose values already match are left out here, so nothing later touches them. The join
# carries hashes, not values: its hash table is a quarter of the size.
PG_PLAN = f"""
CREATE {{kind}} TABLE {PLAN} WITH (autovacuum_enabled = false) AS
SELECT s.rn, p.id AS product_id
FROM {STAGING} AS s LEFT JOIN products AS p ON lower(p.sku) = s.key
WHERE p.id IS NULL OR p.row_hash <> s.hash
   OR p.active IS DISTINCT FROM COALESCE(s.active, p.active)
"""
# The planner cannot tell how few staged rows a comparison keeps (it expects every one), so it
# never pays for worker processes to pass them on, and joins in one. They pass on the few that
# change: same file again (B), 466,693 rows compared in 0.40 s instead of 0.67 (psql, 500K).
COMPARE_IN_PARALLEL = "parallel_tuple_cost = 0"
# A file without descriptions keeps the catalog's: compare the values themselves.
PG_PLAN_BY_VALUES = f"""
CREATE {{kind}} TABLE {PLAN} WITH (autovacuum_enabled = false) AS
SELECT s.rn, p.id AS product_id
FROM {STAGING} AS s LEFT JOIN products AS p ON lower(p.sku) = s.key
WHERE p.id IS NULL
   OR (p.sku, p.name, p.description, p.active)
      IS DISTINCT FROM (s.sku, s.name, COALESCE(s.description, p.description),
                        COALESCE(s.active, p.active))
"""
# Whether the catalog is empty, else about how many products it has (enough to choose a path).
CATALOG_SIZE = """
SELECT CASE WHEN NOT EXISTS (SELECT FROM products) THEN 0
            ELSE greatest((SELECT reltuples FROM pg_class WHERE oid = 'products'::regclass), 1)
       END::bigint
"""
# TRUNCATE sets relpages to 0 (and reltuples to -1) at once; VACUUM and ANALYZE set them after.
CATALOG_MAY_HOLD_PRODUCTS = (
    "SELECT relpages > 0 OR reltuples > 0 FROM pg_class WHERE oid = 'products'::regclass"
)
PG_PLAN_COUNTS = f"SELECT count(*) - count(product_id), count(product_id) FROM {PLAN}"


def drop_kept(job_id: int) -> str:
    """The statement that drops the rows a plan of `job_id` kept."""
    return f"DROP TABLE IF EXISTS {KEPT.format(int(job_id))}, {KEPT_NEW.format(int(job_id))}"


# Tables of rows kept by plans whose job is no longer planned, nor applying them.
UNUSED_KEPT = """
SELECT c.relname FROM pg_class AS c
WHERE c.relkind = 'r' AND c.relname ~ '^import_planned_(new_)?[0-9]+$'
  AND NOT EXISTS (
      SELECT FROM import_jobs AS j
      WHERE j.id = substring(c.relname FROM '([0-9]+)$')::bigint
        AND j.status IN ('planned', 'queued', 'running'))
"""
# A fresh catalog has no plan: every staged row is new.
STAGING_AS_PLAN = f"(SELECT rn, NULL::bigint AS product_id FROM {STAGING})"

# Every product an import writes gets the same stamp, %(now)s: while a product's updated_at is
# that stamp it holds what the import wrote (undo.py).
PG_UPDATE = f"""
UPDATE products AS p
SET sku = s.sku, name = s.name,
    description = COALESCE(s.description, p.description),
    active = COALESCE(s.active, p.active),
    updated_at = %(now)s
FROM {{plan}} AS plan JOIN {STAGING} AS s ON s.rn = plan.rn
WHERE p.id = plan.product_id
"""

# New products go in in key order, so the lower(sku) index fills from left to right; COLLATE
# "C" sorts by bytes, faster than the database's collation and the same for equality. Their
# ids are the block the import took: base + line.
PG_INSERT = f"""
INSERT INTO products (id, sku, name, description, active, created_at, updated_at)
SELECT %(base)s + s.rn, s.sku, s.name, COALESCE(s.description, ''), COALESCE(s.active, true),
       %(now)s, %(now)s
FROM {{plan}} AS plan JOIN {STAGING} AS s ON s.rn = plan.rn
WHERE plan.product_id IS NULL
ORDER BY s.key COLLATE "C"
"""

# The change record (migrations 0007, 0013): for an update, what the import writes and what was
# there; the description only where it changes (null otherwise: most of the bytes). A plan
# records the products it would create too; an import's created products are its block of ids.
CHANGE_COLUMNS = (
    "(job_id, rn, kind, product_id, sku, name, description, active, "
    "before_sku, before_name, before_description, before_active, before_updated_at)"
)
PG_RECORD_UPDATED = f"""
INSERT INTO import_changes {CHANGE_COLUMNS}
SELECT %(job)s, s.rn, %(kind)s, p.id, s.sku, s.name,
       CASE WHEN s.description <> p.description THEN s.description END,
       COALESCE(s.active, p.active), p.sku, p.name,
       CASE WHEN s.description <> p.description THEN p.description END, p.active, p.updated_at
FROM {PLAN} AS plan JOIN {STAGING} AS s ON s.rn = plan.rn
JOIN products AS p ON p.id = plan.product_id
"""
