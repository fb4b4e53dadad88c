"""Where PostgreSQL and SQLite differ, behind one object each: nothing else asks which it is on.

`of(conn_or_session)` returns the object for the database the caller is connected to. Both have
the same methods; each says in its own words how it keeps the promise on its database.
"""

import fcntl
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    event,
    func,
    make_url,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

# Session-level lock held by the import whose turn it is to apply: imports apply one at a time.
IMPORT_LOCK_KEY = 0x1D0_0001
# A bigint advisory lock is listed in pg_locks as its two halves (classid, objid), objsubid 1;
# pg_locks lists every database's locks, so only this database's count.
TURN_TAKEN = """
SELECT EXISTS (
    SELECT FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND (classid::bigint << 32) + objid::bigint = :key
)
"""
# Whether this session holds the turn: a session made anew after a cut holds none, whatever
# its connection object says (SQLAlchemy connects again by itself).
TURN_HELD_HERE = TURN_TAKEN.replace("AND granted", "AND granted AND pid = pg_backend_pid()")
# Transaction-level lock held while an import merges; delete-all refuses to run meanwhile.
APPLY_LOCK_KEY = 0x1D0_0002
# Session-level lock held while a process migrates the database (`wait_to_migrate`).
MIGRATION_LOCK_KEY = 0x1D0_0003
MIGRATION_WAIT_SECONDS = 0.5
TRY_LOCK = "SELECT pg_try_advisory_lock(%s)"
# Set in a transaction that changes many products (migration 0012 reads it).
BULK_CHANGE_SETTING = "product_importer.bulk_change"
# Room for an exact bitmap of the rows a filter matches: ~16MB at 5M products (170K pages),
# so twice that for growth. A larger bitmap is not an error: it goes lossy, and slower.
LIST_WORK_MEM = "32MB"
# For this transaction only (is_local): JIT off, and work_mem raised to :mem (never lowered).
PLAN_FOR_LISTS = """
SELECT set_config('jit', 'off', true),
       set_config('work_mem', CASE WHEN pg_size_bytes(current_setting('work_mem'))
                                        < pg_size_bytes(:mem)
                                   THEN :mem ELSE current_setting('work_mem') END, true)
"""

# For this transaction only: no index scans; and the setting before, to put back (one round trip:
# PostgreSQL computes a SELECT's columns in order).
INDEX_SCANS_OFF = (
    "SELECT current_setting('enable_indexscan'), set_config('enable_indexscan', 'off', true)"
)
# For this transaction: no cost to start parallel workers, and no table (under 1 TB) big enough
# to be scanned in parallel, so that the branches of an Append run side by side, one per process.
BRANCHES_APART = """
SELECT current_setting('parallel_setup_cost'), current_setting('min_parallel_table_scan_size'),
       set_config('parallel_setup_cost', '0', true),
       set_config('min_parallel_table_scan_size', '1TB', true)
"""
BRANCHES_RESTORED = """
SELECT set_config('parallel_setup_cost', :cost, true),
       set_config('min_parallel_table_scan_size', :size, true)
"""

# The values ANALYZE sampled of each text column (most common ones, then the histogram's
# bounds), by the filter they serve: the description's are those of its lowered copy (migration
# 0016). It and the planner's count of products are kept per process for STATISTICS_SECONDS.
SAMPLED_COLUMNS = {"sku": "sku", "name": "name", "description_lower": "description"}
PRODUCT_SAMPLES = """
SELECT attname, coalesce(most_common_vals::text::text[], '{}') || histogram_bounds::text::text[]
FROM pg_stats
WHERE schemaname = current_schema() AND tablename = 'products'
  AND attname IN ('sku', 'name', 'description_lower')
"""
STATISTICS_SECONDS = 60
# A read that found nothing (a catalog not analyzed yet) is kept this long instead: a fresh
# import's ANALYZE comes a second or so after its commit, and a small catalog autovacuum never
# analyzes would otherwise be read on every request.
NOTHING_FOUND_SECONDS = 1
# An import's statements run for minutes at 5M rows, and its session sits idle in its
# transaction while helpers fill and index the new catalog: a server's timeouts for everyone
# else (an operator's safety settings) cut it there, three attempts running, and it failed.
NO_TIMEOUTS = ("SET statement_timeout = 0", "SET idle_in_transaction_session_timeout = 0")
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cut by a timeout or a cancel
# What PostgreSQL tells the sessions it ends as it shuts down or restarts after a crash
# (57P01, 57P02), and a connection's own failures (class 08). A connection not made (refused,
# the server starting up or out of connections, or refusing the credentials) raises an error
# with no SQLSTATE at all in psycopg 3, as does a connection lost mid-request.
SERVER_AWAY = ("57P01", "57P02", "57P03")
# SQLite's SQLITE_BUSY (the primary code, the low byte of Python's extended one): another
# connection kept the one writer past the timeout.
SQLITE_BUSY = 5


def unavailable(error: BaseException | None) -> str | None:
    """Why the database could not serve a request for now, or None for any other error:
    "away" (PostgreSQL not answering, restarting, or out of connections, the pool's included)
    or "busy" (SQLite's one writer held past the timeout). A deadlock or a statement timeout is
    neither: the request itself would meet it again."""
    if isinstance(error, PoolTimeout):  # every connection of the pool busy past its timeout
        return "away"
    if not isinstance(error, DBAPIError):
        return None
    cause = error.orig
    if type(cause).__module__.startswith("sqlite3"):
        code = getattr(cause, "sqlite_errorcode", None)
        return "busy" if code is not None and code & 0xFF == SQLITE_BUSY else None
    state = getattr(cause, "sqlstate", None)
    if error.connection_invalidated or (isinstance(error, OperationalError) and state is None):
        return "away"
    return "away" if state and (state.startswith("08") or state in SERVER_AWAY) else None


def helper_name(name: str) -> str:
    """The session label of the helper connections of the session labelled `name`."""
    return f"{name} helper"


def lower_letters(value: str) -> str:
    """`value` lowered letter by letter, one letter to one, as PostgreSQL's lower() does.

    PostgreSQL (a libc locale, as `initdb` makes by default) lowers each letter alone: 'Σ' to
    'σ' at the end of a word too, where Python writes 'ς', and 'İ' to 'i', where Python adds
    U+0307. SQLite's lower() is this (extensions.py), so that SKUs and emails are one in the
    same cases on both; equal to PostgreSQL's for every code point (Debian 12, C.UTF-8).
    """
    lowered = value.lower()
    if len(lowered) == len(value) and "ς" not in lowered:
        return lowered  # no letter lowered with regard to the others: the same, faster
    return "".join(letter.lower()[0] for letter in value)


@dataclass(frozen=True)
class Plan:
    """What a query's plan does, as far as the list of products asks."""

    scans_table: bool  # reads all of the products (a sequential scan)
    in_parallel: bool  # runs in several processes (a Gather)


class Postgres:
    """PostgreSQL: advisory locks, COPY, statement cancel, a catalog version kept by triggers."""

    name = "postgresql"
    # Imports read side by side, on any worker; `take_turn` lets one apply at a time.
    parallel_reading = True
    # The description filter's two trigram index halves (migration 0006) are read as two
    # branches of a UNION ALL, which PostgreSQL runs in two processes (products/service.py).
    search_in_halves = True
    # Row locks: a cancel writes its request while the import merges, and the import's
    # heartbeat reads it (its worker may be another process, on another machine).
    one_writer = False

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str], bool] = {}
        self._statistics: dict[tuple[str, str], tuple[float, object]] = {}

    @contextmanager
    def import_lock(self, conn: Connection) -> Iterator[bool]:
        """Every worker may run the queue: imports wait for their turn only to apply."""
        yield True

    def take_turn(self, conn: Connection) -> bool:
        """Take the session lock of the import that applies now; False if another holds it."""
        locked = conn.execute(select(func.pg_try_advisory_lock(IMPORT_LOCK_KEY))).scalar()
        conn.commit()
        return bool(locked)  # closing the connection releases it, even if the process dies

    def end_turn(self, conn: Connection) -> None:
        """Let the next import apply."""
        conn.execute(select(func.pg_advisory_unlock(IMPORT_LOCK_KEY)))
        conn.commit()

    def holds_turn(self, conn: Connection) -> bool:
        """Whether this connection's session holds the turn: the lock goes with the session,
        and another import may have taken it since."""
        held = bool(conn.execute(text(TURN_HELD_HERE), {"key": IMPORT_LOCK_KEY}).scalar())
        conn.commit()
        return held

    def turn_taken(self, conn: Connection) -> bool:
        """Whether a session of this database holds the turn (an import applies, or builds the
        search indexes it left after its switch); read only, so no lock is ever left behind."""
        return bool(conn.execute(text(TURN_TAKEN), {"key": IMPORT_LOCK_KEY}).scalar())

    def drop_staging(self, conn: Connection, job_id: int) -> None:
        """Drop the staging table a lost import of `job_id` left (`postgres_stage`)."""
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS import_staging_{int(job_id)}")

    def prepare_import(self, conn: Connection) -> None:
        """Give the import's session room to sort and hash its staged rows in memory, and no
        timeouts (`NO_TIMEOUTS`)."""
        conn.exec_driver_sql("SET temp_buffers = '128MB'")
        conn.exec_driver_sql("SET work_mem = '256MB'")
        for setting in NO_TIMEOUTS:
            conn.exec_driver_sql(setting)
        conn.commit()

    def session_id(self, conn: Connection) -> int | None:
        """The server process of this connection, so that recovery can end it."""
        return conn.connection.driver_connection.info.backend_pid

    def name_session(self, conn: Connection, name: str) -> None:
        """Label this connection's session (recovery ends only a session with this name)."""
        conn.exec_driver_sql("SELECT set_config('application_name', %s, false)", (name,))

    def session_name(self, conn: Connection) -> str:
        """This connection's session label (`name_session`), '' if it has none."""
        return conn.exec_driver_sql("SELECT current_setting('application_name')").scalar()

    def name_helper(self, helper: Connection, name: str) -> None:
        """Label a helper's session after the session `name` it helps (recovery ends both);
        RESET ALL, as the helper goes back to the pool, takes the label off."""
        if name:
            self.name_session(helper, helper_name(name))

    def end_session(self, conn: Connection, session_id: int | None, name: str) -> None:
        """End a lost worker's session, so its transaction and locks go away, and its helpers'
        sessions: the server runs their statements to the end otherwise (a build of the whole
        catalog, holding the tables its next attempt drops)."""
        if session_id:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE (pid = %s AND application_name = %s) "
                # job ids start at 1 in every database: another database's import of the same
                # number (a staging catalog on the same server) has helpers of the same name
                "OR (application_name = %s AND datname = current_database())",
                (session_id, name, helper_name(name)),
            )

    def interrupt(self, conn: Connection) -> None:
        """Cancel the statement running on `conn`, from another thread."""
        driver = conn.connection.driver_connection
        cancel = getattr(driver, "cancel_safe", None) or driver.cancel
        cancel()

    def write_rows(self, conn: Connection, table: str, columns: tuple, rows: Iterable) -> None:
        """Append rows to a table with COPY."""
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def hold_apply_lock(self, conn: Connection) -> None:
        """Take the lock that says an import is applying, until this transaction ends."""
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (APPLY_LOCK_KEY,))

    def without_statement_timeout(self, bind: Connection | Session) -> None:
        """Lift a server's statement_timeout (README) for this transaction: maintenance deletes
        old rows by the million (the change records of 5M-product imports) in one statement."""
        bind.execute(text("SET LOCAL statement_timeout = 0"))

    def change_in_bulk(self, bind: Connection | Session) -> None:
        """Say that this transaction changes many products: totals are counted again after it.

        The edit log's trigger (migration 0012) skips every row, and the catalog version is
        marked for a recount, instead of logging each changed product for the list totals.
        """
        bind.execute(text(f"SET LOCAL {BULK_CHANGE_SETTING} = 'on'"))

    def plan_for_lists(self, session: Session) -> None:
        """Plan this transaction's queries as a list request needs: no JIT, exact bitmaps.

        A list request's queries run in milliseconds, but at 5M products (or with a long edit
        log) the planner's estimates pass `jit_above_cost`, and compiling took 100-200 ms of
        every request (bench/list_bench.py); a count of 1.2M matches ran no slower without it.
        And counting a common word's matches at 5M, the bitmap of matching rows outgrew the
        default work_mem (4MB) and went lossy: every row of those pages was matched again
        (6.1 s; with LIST_WORK_MEM 2.1 s; a scan of the whole table 3.6 s).
        """
        session.execute(text(PLAN_FOR_LISTS), {"mem": LIST_WORK_MEM})

    def walks(self, session: Session, query) -> bool:
        """Whether the plan of `query` walks an index, filtering the rows it passes."""
        return _walks(_plan(session, query))

    def plan_of(self, session: Session, query) -> Plan:
        """What the plan of `query` does (planning only)."""
        node = _plan(session, query)
        in_parallel = _has(node, "Gather", "Gather Merge")
        return Plan(scans_table=_has(node, "Seq Scan", of="products"), in_parallel=in_parallel)

    @contextmanager
    def without_sort_walk(self, session: Session) -> Iterator[None]:
        """Plan the queries inside without index scans: every match is found, then sorted."""
        before = session.execute(text(INDEX_SCANS_OFF)).scalar()
        yield
        # Not in a finally: after a database error the transaction is aborted (the setting is
        # LOCAL to it), and a request's session is rolled back at its end whatever failed.
        session.execute(
            text("SELECT set_config('enable_indexscan', :before, true)"), {"before": before}
        )

    @contextmanager
    def branches_apart(self, session: Session) -> Iterator[None]:
        """Plan the queries inside with each branch of an Append in a process of its own.

        PostgreSQL plans a bitmap scan from the rows it expects to match, not from the rows its
        index hands to the recheck. A trigram index can hand it far more: 'e. t' is in 1.5% of
        the descriptions at 500K products, but its one trigram ('  t') in 61% of them, so both
        halves were read in one process (1.0-1.1 s; side by side 0.5-0.6 s). Without a cost to
        start a worker it runs them side by side; with no table (under 1 TB) big enough to be
        scanned in parallel, as each branch whole (a parallel scan of each half still ran in one
        process).
        """
        cost, size, *_ = session.execute(text(BRANCHES_APART)).one()
        yield
        # not in a finally, as in without_sort_walk
        session.execute(text(BRANCHES_RESTORED), {"cost": cost, "size": size})

    def applying(self, session: Session) -> bool:
        """Whether an import is applying; if not, none starts before this transaction ends."""
        got = session.execute(select(func.pg_try_advisory_xact_lock(APPLY_LOCK_KEY))).scalar()
        return not got

    def has_table(self, session: Session, table: str) -> bool:
        """Whether the table exists; a database stamped while empty lacks later tables."""
        key = (str(session.get_bind().url), table)
        if key not in self._tables:
            found = session.scalar(text("SELECT to_regclass(:table) IS NOT NULL"), {"table": table})
            self._tables[key] = bool(found)
        return self._tables[key]

    def samples(self, session: Session) -> dict[str, tuple[str, ...]]:
        """The planner's sample of each text column of products (pg_stats), lowercased."""

        def read() -> dict[str, tuple[str, ...]]:
            rows = session.execute(text(PRODUCT_SAMPLES)).all()
            return {
                SAMPLED_COLUMNS[column]: tuple(value.lower() for value in values or ())
                for column, values in rows
            }

        return self._statistic(session, "samples", read)

    def products_estimated(self, session: Session) -> int | None:
        """How many products the planner counts (its last ANALYZE); None if never analyzed."""

        def read() -> int | None:
            found = session.scalar(
                text("SELECT reltuples FROM pg_class WHERE oid = 'products'::regclass")
            )
            return int(found) if found is not None and found >= 0 else None

        return self._statistic(session, "products", read)

    def _statistic(self, session: Session, name: str, read: Callable[[], object]):
        """`read()`, kept for STATISTICS_SECONDS per database: an import's ANALYZE changes it.

        Read on list requests: once a minute instead of once per request; nothing found, once
        a second (NOTHING_FOUND_SECONDS).
        """
        key = (str(session.get_bind().url), name)
        read_at, found = self._statistics.get(key, (-STATISTICS_SECONDS, None))
        kept_for = STATISTICS_SECONDS if found else NOTHING_FOUND_SECONDS
        if time.monotonic() - read_at >= kept_for:
            found = read()
            self._statistics[key] = (time.monotonic(), found)
        return found

    def lock_products(self, session: Session) -> bool:
        """Lock the products table for emptying; False when readers keep it busy for 5 s."""
        # TRUNCATE waits for every reader (a long export, say); meanwhile, readers wait for it.
        session.execute(text("SET LOCAL lock_timeout = '5s'"))
        try:
            with session.begin_nested():
                session.execute(text("LOCK TABLE products IN ACCESS EXCLUSIVE MODE"))
        except OperationalError:
            return False
        return True

    def empty_products(self, session: Session) -> None:
        """Empty the products table: instant however many products, and transactional.

        TRUNCATE logs no edits: its trigger marks the catalog version for a recount.
        """
        session.execute(text("TRUNCATE products"))

    def lock_before_reading(self, session: Session, model, row_id) -> None:
        """Nothing first: the caller reads the row FOR UPDATE, which locks it."""

    def lock_for_edit(self, session: Session) -> None:
        """Wait for a running import before reading the product to edit, not after.

        An import switching in a new catalog needs it to itself for a moment; an edit that
        read it first and then waited for the import would never let it.
        """
        session.execute(text("LOCK TABLE products IN ROW EXCLUSIVE MODE"))

    def locked_ids(self, session: Session, model, *where) -> list[int]:
        """The ids of `model`'s rows matching `where`, locked until the commit.

        Locked in id order, so two callers never each hold a row the other waits for; one that
        waited reads the rows as the other committed them (a row that no longer matches is
        left out).
        """
        query = select(model.id).where(*where).order_by(model.id)
        return list(session.scalars(query.with_for_update(key_share=True)))

    def seconds_between(self, start, end):
        """A SQL expression: the seconds from timestamp `start` to `end`."""
        return func.extract("epoch", end - start)

    def upsert(self, table: Table):
        """An INSERT on `table` that can say what to do ON CONFLICT."""
        return postgresql.insert(table)


class Sqlite:
    """SQLite (embedded default): one writer, lock files beside the database, no versions."""

    name = "sqlite"
    # One writer: one process runs the queue (`import_lock`), one import after the other.
    parallel_reading = False
    # No trigram indexes: a filter reads the table once, not once per half.
    search_in_halves = False
    # The merge holds the one writer until it commits: a cancel could not write its request,
    # nor the heartbeat the bar's progress. The web requests of the process that runs the
    # import (the embedded worker's) reach it in memory instead (`runner.cancel_here`).
    one_writer = True

    def take_turn(self, conn: Connection) -> bool:
        """The queue's lock file is the turn: this import is the only one running."""
        return True

    def end_turn(self, conn: Connection) -> None:
        """Nothing to end: the queue's lock file is held until the queue is empty."""

    def holds_turn(self, conn: Connection) -> bool:
        """The queue's lock file is the turn, held by this process until the queue is empty."""
        return True

    def turn_taken(self, conn: Connection) -> bool:
        """No import leaves its search indexes to build here: nothing holds the turn for it."""
        return False

    def drop_staging(self, conn: Connection, job_id: int) -> None:
        """Nothing to drop: SQLite stages in the connection's temp database."""

    @contextmanager
    def import_lock(self, conn: Connection) -> Iterator[bool]:
        """Hold a lock file beside the database while this process runs the import queue."""
        with open(_beside(conn, "import.lock"), "w") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True

    def prepare_import(self, conn: Connection) -> None:
        """Nothing to prepare: SQLite stages in its temp database."""

    def session_id(self, conn: Connection) -> int | None:
        """No server process: a lost worker's connection died with it."""
        return None

    def name_session(self, conn: Connection, name: str) -> None:
        """No sessions to name."""

    def end_session(self, conn: Connection, session_id: int | None, name: str) -> None:
        """Nothing to end: the lost process's locks went with it."""

    def interrupt(self, conn: Connection) -> None:
        """Stop the statement running on `conn`, from another thread."""
        conn.connection.driver_connection.interrupt()

    def write_rows(self, conn: Connection, table: str, columns: tuple, rows: Iterable) -> None:
        """Append rows to a table with one executemany."""
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", list(rows)
        )

    def hold_apply_lock(self, conn: Connection) -> None:
        """Hold a lock file beside the database until this transaction commits or rolls back."""
        lock_file = open(_beside(conn, "apply.lock"), "w")  # noqa: SIM115  (closed on release)
        fcntl.flock(lock_file, fcntl.LOCK_EX)

        def release(_conn) -> None:
            lock_file.close()  # closing the file releases the lock

        for name in ("commit", "rollback"):
            event.listen(conn, name, release, once=True)

    def without_statement_timeout(self, bind: Connection | Session) -> None:
        """SQLite has no statement timeout."""

    def change_in_bulk(self, bind: Connection | Session) -> None:
        """Nothing to say: SQLite keeps no totals, it counts them every time."""

    def plan_for_lists(self, session: Session) -> None:
        """Nothing to set: SQLite has neither JIT nor bitmaps."""

    def walks(self, session: Session, query) -> bool:
        """SQLite: its plans are not read (a text filter reads every product there)."""
        return False

    def plan_of(self, session: Session, query) -> Plan:
        """SQLite: its plans are not read; a text filter reads every product there."""
        return Plan(scans_table=True, in_parallel=False)

    @contextmanager
    def without_sort_walk(self, session: Session) -> Iterator[None]:
        """Nothing to set: SQLite has no bitmaps to use instead."""
        yield

    @contextmanager
    def branches_apart(self, session: Session) -> Iterator[None]:
        """Nothing to set: SQLite runs a query in one process."""
        yield

    def applying(self, session: Session) -> bool:
        """Whether an import holds the apply lock right now."""
        with open(_beside(session.connection(), "apply.lock"), "w") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
        return False

    def has_table(self, session: Session, table: str) -> bool:
        """Whether the table exists."""
        found = session.scalar(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :table"),
            {"table": table},
        )
        return found is not None

    def samples(self, session: Session) -> dict[str, tuple[str, ...]]:
        """No planner's sample here: every term is asked of its column whole."""
        return {}

    def products_estimated(self, session: Session) -> int | None:
        """No planner's count here: the list reads every product for a text filter anyway."""
        return None

    def lock_products(self, session: Session) -> bool:
        """Nothing to lock: SQLite's single writer waits its turn."""
        return True

    def empty_products(self, session: Session) -> None:
        """Delete every product (SQLite has no TRUNCATE)."""
        session.execute(text("DELETE FROM products"))

    def lock_before_reading(self, session: Session, model, row_id) -> None:
        """Take the one writer's lock before reading a row to change (SQLite locks no row, and
        a FOR UPDATE read is a plain one): two requests then read it one after the other."""
        _take_writer_lock(session, model, model.id == row_id)

    def lock_for_edit(self, session: Session) -> None:
        """Nothing to lock: SQLite's single writer waits its turn."""

    def locked_ids(self, session: Session, model, *where) -> list[int]:
        """The ids of `model`'s rows matching `where`, read once this has the writer's lock.

        SQLite locks no row, and reads outside a transaction: a write first takes its one
        writer's lock, so a second caller reads the rows only once this one has committed.
        """
        _take_writer_lock(session, model, *where)
        return list(session.scalars(select(model.id).where(*where).order_by(model.id)))

    def seconds_between(self, start, end):
        """A SQL expression: the seconds from timestamp `start` to `end` (Julian days apart)."""
        return (func.julianday(end) - func.julianday(start)) * 86400.0

    def upsert(self, table: Table):
        """An INSERT on `table` that can say what to do ON CONFLICT."""
        return sqlite.insert(table)


def _beside(conn: Connection, suffix: str) -> str:
    """A lock file next to the SQLite database file."""
    return f"{os.path.abspath(conn.engine.url.database)}.{suffix}"


POSTGRES, SQLITE = Postgres(), Sqlite()


def create_if_missing(url: str) -> bool:
    """Create the PostgreSQL database `url` names unless it exists; True when it was created.

    Connects to the server's `postgres` database as the same user (who needs CREATEDB).
    SQLite makes its file by itself.
    """
    target = make_url(url)
    if target.get_backend_name() != "postgresql":
        return False
    engine = create_engine(
        target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            ).scalar()
            if not found:
                quoted = conn.dialect.identifier_preparer.quote(target.database)
                conn.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        engine.dispose()
    return not found


def unpooled_engine(config) -> Engine:
    """An engine on the app's database (`config`) without a pool: each connection is a
    session of its own, closed with it (an import's, a migration's)."""
    options = config["SQLALCHEMY_ENGINE_OPTIONS"]
    return create_engine(
        config["SQLALCHEMY_DATABASE_URI"],
        poolclass=NullPool,
        connect_args=options.get("connect_args", {}),
    )


@contextmanager
def migration_connection(config, engine: Engine) -> Iterator[Connection]:
    """A connection to the app's database (`engine`'s) of its own, without a pool, whose
    session lifts the server's timeouts (`NO_TIMEOUTS`) as it connects: a migration rewrites or
    indexes a whole table, minutes at 5M products, and waits idle in its transaction between
    statements. lock_timeout stays the server's (README). SQLite has none: one of `engine`'s."""
    if engine.dialect.name != "postgresql":
        with engine.connect() as conn:
            yield conn
        return
    migrating = unpooled_engine(config)
    # first: before the dialect's own first queries, which a timeout of 1 ms cuts too
    event.listen(migrating, "connect", _lift_timeouts, insert=True)
    try:
        with migrating.connect() as conn:
            yield conn
    finally:
        migrating.dispose()


def wait_to_migrate(conn: Connection) -> None:
    """Wait until no other process migrates this database; the others wait for this one
    until `conn` closes. Two web machines starting at once on a new database each ran every
    migration: one failed ("relation already exists"). SQLite has one writer already."""
    if conn.dialect.name != "postgresql":
        return
    # Asked again and again, each time in a transaction of its own: one left waiting for the
    # lock would be waited for by the other's CREATE INDEX CONCURRENTLY, a deadlock.
    while not conn.exec_driver_sql(TRY_LOCK, (MIGRATION_LOCK_KEY,)).scalar():
        conn.commit()
        time.sleep(MIGRATION_WAIT_SECONDS)
    conn.commit()  # the lock is the session's: migrations begin their own transactions


def _lift_timeouts(dbapi_connection, _record) -> None:
    """SET the session's timeouts to none: a PgBouncer in session mode passes SET on, where
    it refuses settings in the startup's `options` (PGOPTIONS's are still kept)."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        for setting in NO_TIMEOUTS:
            _set_again_if_cut(dbapi_connection, setting)
    finally:
        dbapi_connection.autocommit = autocommit


def _set_again_if_cut(dbapi_connection, setting: str, tries: int = 10) -> None:
    """Run `setting`, again if the timeout it lifts cut it: a server's timeout of 1 ms cut
    the SET itself on a busy machine (the session's timeout is the server's until it ends)."""
    for attempt in range(1, tries + 1):
        try:
            dbapi_connection.execute(setting)
            return
        except Exception as error:
            if getattr(error, "sqlstate", None) != QUERY_CANCELED or attempt == tries:
                raise


def _plan(session: Session, query) -> dict:
    """The plan PostgreSQL would run `query` by (planning only)."""
    compiled = query.compile(
        dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True}
    )
    explained = f"EXPLAIN (FORMAT JSON) {compiled}"
    return session.connection().exec_driver_sql(explained, compiled.params).scalar()[0]["Plan"]


def _has(node: dict, *node_types: str, of: str | None = None) -> bool:
    """Whether a node of a JSON plan, or one below it, is of one of `node_types` (reading
    table `of`, if given)."""
    if node["Node Type"] in node_types and of in (None, node.get("Relation Name")):
        return True
    return any(_has(child, *node_types, of=of) for child in node.get("Plans", ()))


def _walks(node: dict) -> bool:
    """Whether a node of a JSON plan, or one below it, is an index scan with a filter."""
    if node["Node Type"] == "Index Scan" and "Filter" in node:
        return True
    return any(_walks(child) for child in node.get("Plans", ()))


def _take_writer_lock(session: Session, model, *where) -> None:
    """A write that changes nothing: SQLite's one writer's lock, held until the commit."""
    # Each column kept as it is, those with an `onupdate` too (a product's updated_at).
    unchanged = {column: column for column in model.__table__.columns if column.onupdate}
    took = update(model).where(*where).values({model.id: model.id, **unchanged})
    session.execute(took, execution_options={"synchronize_session": False})


def of(bind: Connection | Session) -> Postgres | Sqlite:
    """The database behind a connection or a session."""
    # a Session (or Flask-SQLAlchemy's scoped session) has get_bind(); a Connection does not
    dialect = bind.get_bind().dialect if hasattr(bind, "get_bind") else bind.dialect
    return POSTGRES if dialect.name == "postgresql" else SQLITE
