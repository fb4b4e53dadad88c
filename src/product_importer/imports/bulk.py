"""The bulk path of a PostgreSQL import: build the catalog anew beside the live one, then switch.

Inserting half a million rows into a table with trigram indexes costs three times the insert
alone, because every index is kept up to date row by row. Here the new catalog is written into
`products_build` without indexes by helper connections (unchanged products copied with their
ids, changed ones with their ids and new values, new ones with fresh ids), its indexes are then
built in bulk by two helpers side by side, and the import's own transaction switches it in:
it waits for the catalog in tries of LOCK_WAIT, so readers of the products are never held up
longer than one try, then drops the old table and renames the new one, its indexes, primary
key, statistics objects and triggers. Until that transaction commits nothing a reader sees has
changed; a cancel, failure or crash before it leaves the catalog as it was (the build table is
dropped later).

The import's transaction holds SHARE ROW EXCLUSIVE on products throughout (product edits wait,
as for an in-place merge), so the build cannot miss an edit. The indexes in DEFERRED (the
trigram indexes on sku, name and descriptions: ~14 s of one core for 500K products, more than
the rest of the import) are built either with the others, before the switch (readers keep the
old catalog's indexed filters meanwhile), or, into an empty catalog (`defer`), after the
commit by `refresh_search`: the products are listed sooner, the substring filters answer
correctly but by a scan until then, and the job says its search index is refreshing.
"""

import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from .. import database
from .failures import HelperNotConnected

log = logging.getLogger(__name__)

BUILD = "products_build"
BUILDERS = 2  # helper connections that fill and index the build table side by side
LOCK_WAIT = "300ms"  # the longest a reader may wait behind one try to switch the catalog
LOCK_RETRY_SECONDS = 0.2
DEADLOCK_CHECK = "100ms"
HELPER_SETTINGS = ("SET maintenance_work_mem = '256MB'", "SET work_mem = '256MB'")
LOCK_NOT_AVAILABLE = "55P03"
DESCRIPTION_HALF = (
    "CREATE INDEX IF NOT EXISTS ix_products_description_lower_trgm_{half} ON products "
    "USING gin (description_lower gin_trgm_ops) WHERE (id %% 2) = {half}"  # %% for psycopg
)
TRIGRAM = (
    "CREATE INDEX IF NOT EXISTS ix_products_{column}_trgm ON products "
    "USING gin ({column} gin_trgm_ops)"
)
# The trigram indexes, built after the commit in two lanes of about equal work (a description
# half is ~3x the sku or name index): each lane is one connection, one core. The sku and name
# indexes come first: the filters people use most have their index back within seconds.
LANES = (
    {
        "ix_products_sku_trgm": TRIGRAM.format(column="sku"),
        "ix_products_description_lower_trgm_0": DESCRIPTION_HALF.format(half=0),
    },
    {
        "ix_products_name_trgm": TRIGRAM.format(column="name"),
        "ix_products_description_lower_trgm_1": DESCRIPTION_HALF.format(half=1),
    },
)
LANE_LOST = "search indexes not built, connection lost (%s): the maintenance loop tries again"
# The session name of each lane: a lane whose worker was lost builds on (the server runs its
# statement to its end, minutes of a core at 5M rows), beside the next build of the same index.
SEARCH_BUILD = "product-importer search index build"
# Only the holder of the import's turn builds: a lane of another session is a lost worker's.
END_LOST_LANES = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE application_name = %s AND datname = current_database() AND pid <> pg_backend_pid()"
)
DEFERRED = {name: statement for lane in LANES for name, statement in lane.items()}
ANALYZE = "ANALYZE products"
# Whether the catalog has the planner's statistics (ANALYZE writes them in its transaction;
# of an empty catalog it writes none).
ANALYZED = (
    "SELECT EXISTS (SELECT FROM pg_stats WHERE schemaname = current_schema() "
    "AND tablename = 'products') OR NOT EXISTS (SELECT FROM products)"
)


class Build:
    """One build of the catalog beside the live one, switched in by `conn`'s transaction."""

    def __init__(
        self,
        conn: Connection,
        now: datetime,
        *,
        fresh: bool,
        job: int | None,
        defer: bool | None = None,
    ):
        self.conn, self.now, self.fresh = conn, now, fresh
        self.job = job  # whose change record the products it updates join (None: no record)
        self.record = job is not None and not fresh
        # Whether the indexes in DEFERRED wait until after the commit; by default (None) only
        # into an empty catalog, where nobody's filters lose their index and the products are
        # listed sooner. Into a catalog people read, every substring filter would scan the new
        # table until they are built: on a busy server list p95 went from 40 ms to seconds
        # (bench/load_bench.py); built before the switch, readers keep the old indexes.
        self.defer = fresh if defer is None else defer
        self.engine = conn.engine
        # the helpers are named after the import's session: recovery ends them with it
        self.session_name = database.POSTGRES.session_name(conn)
        self.helpers: list[Connection] = []
        self.indexes: list[tuple[str, str, str | None]] = []  # (build name, name, constraint)
        self.deferred: list[str] = []
        self.interrupted = False  # set by a cancel or a stop: the switch gives up its tries

    def interrupt(self) -> None:
        """Cancel whatever the helpers are running, and the switch's tries for the catalog."""
        self.interrupted = True
        for helper in list(self.helpers):
            database.POSTGRES.interrupt(helper)

    def fill(self, base: int) -> None:
        """Create the build table and write the whole new catalog into it, without indexes.

        New products get the ids base + line (`reserve_ids`).
        """
        columns = self._columns()
        with self._helper() as helper:
            helper.exec_driver_sql(CREATE_BUILD)
            self._keep_statistics_targets(helper)
        params = {"now": self.now, "base": base}
        self._parallel(_fill_statements(columns, self.fresh), params)

    def index(self) -> None:
        """Build the live catalog's indexes on the build table, side by side."""
        statements = []
        for name, definition, constraint in self.conn.execute(text(INDEXES)).all():
            if self.defer and name in DEFERRED:
                self.deferred.append(name)
                continue
            build_name = f"{name[:50]}_build"
            # run through psycopg, which reads % as a placeholder
            statements.append(_retarget(definition, name, build_name).replace("%", "%%"))
            self.indexes.append((build_name, name, constraint))
        # trigram (GIN) builds take longest and use one core each: start them first
        statements.sort(key=lambda statement: " USING gin " not in statement)
        self._parallel(statements)

    @property
    def analyzes(self) -> bool:
        """Whether ANALYZE runs before the switch. Into an empty catalog whose search indexes
        wait until after the commit, it waits with them (`refresh_search`): no reader had plans
        on that catalog, its substring filters scan until the trigram indexes are built anyway,
        and the import is `completed` the ANALYZE sooner (~1.5 s at 500K products)."""
        return not (self.fresh and self.defer)

    def analyze(self) -> None:
        """Give the planner the new catalog's statistics before anyone queries it, and write
        the values before of the products it updates into the job's change record meanwhile.

        ANALYZE keeps one core busy (~1.1 s at 500K products): the record, written from the
        join of the changed products on the other, adds ~0.35 s to this step where it added
        ~0.75 s to `fill` (half the names of 500K products changed; README, "Plans").
        Its rows are committed by the helpers, ahead of the import: until the job says it
        wrote the catalog they are not its record (`changes`), and an import that ends
        otherwise deletes them (postgres_stage.FORGET_UNWRITTEN_RECORD).
        """
        statements = [f"ANALYZE {BUILD}"]  # first: it takes longest
        if self.record:
            statements += [RECORD_UPDATES.format(half=half) for half in (0, 1)]
        self._parallel(statements, {"job": self.job} if self.record else None)

    def switch(self) -> bool:
        """Put the build table in the live one's place; True when indexes were deferred."""
        execute = self.conn.exec_driver_sql
        triggers = execute(TRIGGERS).scalars().all()
        sequence = execute("SELECT pg_get_serial_sequence('products', 'id')").scalar()
        statistics = self._statistics_names()
        self._lock_catalog()
        if sequence:  # owned by the old table, DROP would take it along
            execute(f"ALTER SEQUENCE {sequence} OWNED BY {BUILD}.id")
        execute("DROP TABLE products")
        execute(f"ALTER TABLE {BUILD} RENAME TO products")
        for build_name, name, constraint in self.indexes:
            if constraint in ("p", "u"):
                kind = "PRIMARY KEY" if constraint == "p" else "UNIQUE"
                using = f"{kind} USING INDEX {build_name}"
                execute(f"ALTER TABLE products ADD CONSTRAINT {name} {using}")
            else:
                execute(f"ALTER INDEX {build_name} RENAME TO {name}")
        for build_name, name in statistics:
            execute(f"ALTER STATISTICS {build_name} RENAME TO {name}")
        for trigger in triggers:
            execute(trigger)
        execute("ALTER TABLE products RESET (autovacuum_enabled)")
        # No trigger saw the build's rows: move the catalog version on, and mark it for a
        # recount of the list totals (a trigger on the version would mark it anyway).
        execute("UPDATE products_version SET version = version + 1, recount_from = version + 1")
        return bool(self.deferred)

    def _lock_catalog(self) -> None:
        """Take the catalog for the switch in short tries, letting readers through between."""
        execute = self.conn.exec_driver_sql
        execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
        # An autovacuum in the way is cancelled once a lock waits deadlock_timeout (1 s by
        # default): shorter than one try, where the server lets us set it (superusers).
        with suppress(DBAPIError), self.conn.begin_nested():
            execute(f"SET LOCAL deadlock_timeout = '{DEADLOCK_CHECK}'")
        while True:
            try:
                with self.conn.begin_nested():
                    execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
                break
            except OperationalError as error:
                if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise
            # The import's own interrupt may land between two tries and be lost (the heartbeat
            # beats every 0.5 s, about one try's length): the flag it sets is not.
            if self.interrupted:
                raise InterruptedError("the import was stopped while it waited to switch")
            self._release_deadlocked()
            time.sleep(LOCK_RETRY_SECONDS)
        execute("SET LOCAL lock_timeout = 0")

    def _release_deadlocked(self) -> None:
        """Cancel statements that hold the catalog and wait for this import: they never end."""
        for (pid,) in self.conn.exec_driver_sql(DEADLOCKED).all():
            log.warning("cancelled session %s: it held the catalog and waited for the import", pid)

    def _statistics_names(self) -> list[tuple[str, str]]:
        """(the build table's name, the live one's) of each statistics object LIKE copied.

        LIKE names its copies after the build table; renamed back, a migration or an operator
        finds each object by the name it was created with (migration 0006). Objects are paired
        by what they are on and their kinds; where two share both, their names stay as LIKE
        gave them (they work the same), rather than risk renaming two to one name.
        """
        quote = self.conn.dialect.identifier_preparer.quote
        live = self._statistics_objects("products")
        built = self._statistics_objects(BUILD)
        return [
            (quote(built[key][0]), quote(live[key][0]))
            for key in built.keys() & live.keys()
            if len(built[key]) == len(live[key]) == 1
        ]

    def _statistics_objects(self, table: str) -> dict[tuple[str, str], list[str]]:
        """The names of a table's statistics objects, by (what they are on, their kinds)."""
        found: dict[tuple[str, str], list[str]] = {}
        for columns, kinds, name in self.conn.exec_driver_sql(
            STATISTICS_OBJECTS.format(table=table)
        ):
            found.setdefault((columns, kinds), []).append(name)
        return found

    def _keep_statistics_targets(self, helper: Connection) -> None:
        """Give the build table the live one's statistics targets, which LIKE does not copy.

        Without them the planner's estimates of substring filters swing tenfold from one
        ANALYZE to the next (migration 0015).
        """
        quote = helper.dialect.identifier_preparer.quote
        changes = [
            f"ALTER COLUMN {quote(name)} SET STATISTICS {int(target)}"
            for name, target in self.conn.exec_driver_sql(STATISTICS_TARGETS)
        ]
        if changes:
            helper.exec_driver_sql(f"ALTER TABLE {BUILD} {', '.join(changes)}")

    def _columns(self) -> list[str]:
        return self.conn.exec_driver_sql(COLUMNS).scalars().all()

    def _parallel(self, statements: list[str], params: dict | None = None) -> None:
        """Run the statements on BUILDERS helper connections side by side; raise the first error."""
        pending: queue.SimpleQueue[str] = queue.SimpleQueue()
        for statement in statements:
            pending.put(statement)
        errors: list[BaseException] = []

        def work() -> None:
            # A helper that cannot connect fails the build too: raised in its thread, it was
            # lost, and with both refused (the server out of connections) the step did
            # nothing and passed (an empty build, an import without its change record).
            connected = False
            try:
                with self._helper() as helper:
                    connected = True
                    while not errors:
                        try:
                            statement = pending.get_nowait()
                        except queue.Empty:
                            return
                        helper.exec_driver_sql(statement, *([params] if params else []))
            except BaseException as error:  # noqa: BLE001  (raised in the caller's thread)
                errors.append(error if connected else _not_connected(error))
                self.interrupt()

        threads = [threading.Thread(target=work) for _ in range(min(BUILDERS, len(statements)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    @contextmanager
    def _helper(self) -> Iterator[Connection]:
        with helper_connection(self.engine) as helper:
            database.POSTGRES.name_helper(helper, self.session_name)
            self.helpers.append(helper)
            try:
                yield helper
            finally:
                self.helpers.remove(helper)


def _not_connected(error: BaseException) -> BaseException:
    """A helper's failure to connect, as the attempt's error: the queue tries again."""
    if not isinstance(error, DBAPIError):
        return error
    described = HelperNotConnected(f"a helper session could not connect: {error.orig}")
    described.__cause__ = error
    return described


def reserve_ids(conn: Connection) -> tuple[int, int]:
    """Take a block of ids for an import's new products: base + line, in file order.

    Two helpers insert new products side by side; ids taken by each row from the sequence
    would interleave, ids from the line numbers follow the file (with gaps, as ids may), and
    the block is the change record of what the import created. No one else takes ids
    meanwhile: product edits wait for the import. Returns the block's first and last id.
    """
    execute = conn.exec_driver_sql
    sequence = execute("SELECT pg_get_serial_sequence('products', 'id')").scalar()
    last_line = execute("SELECT coalesce(max(rn), 0) FROM import_staging").scalar()
    base = execute(f"SELECT nextval('{sequence}')").scalar()
    execute(f"SELECT setval('{sequence}', {base + last_line})")
    return base + 1, base + last_line


@contextmanager
def helper_connection(engine: Engine) -> Iterator[Connection]:
    """A connection of its own in autocommit, with room for sorts and index builds, and no
    timeouts (`database.NO_TIMEOUTS`)."""
    with engine.connect() as helper:
        helper = helper.execution_options(isolation_level="AUTOCOMMIT")
        for setting in (*HELPER_SETTINGS, *database.NO_TIMEOUTS):
            helper.exec_driver_sql(setting)
        try:
            yield helper
        finally:
            # Back to the pool as the server set it: its next user (a web request, in the
            # embedded mode) must not sort with 256MB of work_mem. One cut off is not given
            # back (the pool makes a new one): RESET on it raised in the helper's thread.
            if not helper.invalidated:
                with suppress(DBAPIError):
                    helper.exec_driver_sql("RESET ALL")


def run_alone(conn: Connection, statement: str, setting: str | None = None) -> None:
    """Run one statement on a helper connection of `conn`'s session (after a `setting`, SET for
    the helper's session: RESET when it goes back to the pool), committed when it returns."""
    with helper_connection(conn.engine) as helper:
        database.POSTGRES.name_helper(helper, database.POSTGRES.session_name(conn))
        if setting:
            helper.exec_driver_sql(setting)
        helper.exec_driver_sql(statement)


def possible(conn: Connection) -> bool:
    """Whether the catalog can be switched: no table refers to it, no exclusion constraint."""
    return not conn.exec_driver_sql(BLOCKERS).scalar()


def refresh_search(engine: Engine) -> None:
    """Build the search indexes an import deferred, side by side, then say so on its job;
    first end the lanes of a lost worker's build of them (the caller holds the turn), and
    analyze the catalog if it was switched in without its statistics (`Build.analyzes`)."""
    with helper_connection(engine) as helper:
        if not helper.execute(text(REFRESHING)).scalar():
            return
        ended = helper.exec_driver_sql(END_LOST_LANES, (SEARCH_BUILD,)).all()
        if ended:
            log.warning("ended %s lanes of a lost search index build", len(ended))
        if not helper.execute(text(ANALYZED)).scalar():
            # first: ANALYZE and an index build lock each other out, and the planner's
            # estimates serve every filter, the trigram indexes only the substring ones
            started = time.monotonic()
            _build_deferred(engine, [ANALYZE])
            if not helper.execute(text(ANALYZED)).scalar():
                return  # logged by `_build_deferred`; the maintenance loop tries again
            log.info("products analyzed in %.1fs", time.monotonic() - started)
        started = time.monotonic()
        threads = [
            threading.Thread(target=_build_deferred, args=(engine, list(lane.values())))
            for lane in LANES
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for name in DEFERRED:
            if not helper.execute(text(EXISTS), {"name": name}).scalar():
                return  # logged by its thread; the maintenance loop tries again
        seconds = time.monotonic() - started
        log.info("search indexes %s built in %.1fs", ", ".join(DEFERRED), seconds)
        helper.execute(text(REFRESHED))


def _build_deferred(engine: Engine, statements: list[str]) -> None:
    """Build one lane of deferred indexes, one after another, on a connection of its own."""
    with helper_connection(engine) as helper:
        database.POSTGRES.name_session(helper, SEARCH_BUILD)
        helper.exec_driver_sql("SET maintenance_work_mem = '512MB'")
        for statement in statements:
            try:
                helper.exec_driver_sql(statement)
            except Exception as error:
                if helper.invalidated:  # the lane's next statements cannot run either
                    log.warning(LANE_LOST, getattr(error, "orig", error))
                    return
                log.exception("search index not built: %s", statement)


def _retarget(definition: str, name: str, build_name: str) -> str:
    """An index definition of the live table, for the build table under another name."""
    old = f" {name} ON public.products "
    if old not in definition:
        raise RuntimeError(f"unexpected index definition: {definition}")
    return definition.replace(old, f" {build_name} ON public.{BUILD} ", 1)


def _fill_statements(columns: list[str], fresh: bool) -> list[str]:
    """INSERTs that write the new catalog, split in halves so that two helpers share them."""
    written = ("id", "sku", "name", "description", "active", "created_at", "updated_at")
    kept = [column for column in columns if column not in written]
    halves = []
    for half in (0, 1):
        halves.append(FILL_NEW.format(half=half, source=NEW_FROM_STAGING if fresh else NEW_ROWS))
        if not fresh:
            halves.append(FILL_KEPT.format(half=half, columns=", ".join(columns)))
            extra = "".join(f", {column}" for column in kept)
            pick = "".join(f", p.{column}" for column in kept)
            halves.append(FILL_CHANGED.format(half=half, extra=extra, pick=pick))
    return halves


CREATE_BUILD = f"""
CREATE TABLE {BUILD} (LIKE products INCLUDING DEFAULTS INCLUDING CONSTRAINTS
    INCLUDING GENERATED INCLUDING STORAGE INCLUDING STATISTICS) WITH (autovacuum_enabled = false)
"""
# The statistics objects on a table: what they are on (columns and expressions), their kinds.
STATISTICS_OBJECTS = """
SELECT pg_get_statisticsobjdef_columns(oid), stxkind::text, stxname FROM pg_statistic_ext
WHERE stxrelid = '{table}'::regclass
"""
# Columns given a target of their own (-1, or NULL from PostgreSQL 17, is the default).
STATISTICS_TARGETS = """
SELECT attname, attstattarget FROM pg_attribute
WHERE attrelid = 'products'::regclass AND attnum > 0 AND NOT attisdropped AND attstattarget >= 0
ORDER BY attnum
"""
COLUMNS = """
SELECT attname FROM pg_attribute
WHERE attrelid = 'products'::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
ORDER BY attnum
"""
# Products the file does not change, as they are.
FILL_KEPT = f"""
INSERT INTO {BUILD} ({{columns}}) SELECT {{columns}} FROM products AS p
WHERE p.id %% 2 = {{half}}
  AND NOT EXISTS (SELECT FROM import_plan AS plan WHERE plan.product_id = p.id)
"""
# Products the file changes: their ids, the file's values, what the file leaves as it was.
FILL_CHANGED = f"""
INSERT INTO {BUILD} (id, sku, name, description, active, created_at, updated_at{{extra}})
SELECT p.id, s.sku, s.name, COALESCE(s.description, p.description),
       COALESCE(s.active, p.active), p.created_at, %(now)s{{pick}}
FROM import_plan AS plan JOIN import_staging AS s ON s.rn = plan.rn
JOIN products AS p ON p.id = plan.product_id
WHERE s.rn %% 2 = {{half}}
"""
# The values before of the products the file changes, into the job's change record (the
# description only where it changes; not the generated columns: the lowered description would
# double what is held of each). The live catalog is still the one before the import.
RECORD_UPDATES = """
INSERT INTO import_changes (job_id, rn, kind, product_id, sku, name, description, active,
    before_sku, before_name, before_description, before_active, before_updated_at)
SELECT %(job)s, s.rn, 'updated', p.id, s.sku, s.name,
       CASE WHEN s.description <> p.description THEN s.description END,
       COALESCE(s.active, p.active), p.sku, p.name,
       CASE WHEN s.description <> p.description THEN p.description END, p.active,
       p.updated_at
FROM import_plan AS plan JOIN import_staging AS s ON s.rn = plan.rn
JOIN products AS p ON p.id = plan.product_id
WHERE s.rn %% 2 = {half}
"""
NEW_ROWS = (
    "(SELECT s.* FROM import_plan AS plan JOIN import_staging AS s ON s.rn = plan.rn "
    "WHERE plan.product_id IS NULL)"
)
NEW_FROM_STAGING = "import_staging"
# New products, with ids reserved from the products' own sequence (`reserve_ids`).
FILL_NEW = f"""
INSERT INTO {BUILD} (id, sku, name, description, active, created_at, updated_at)
SELECT %(base)s + s.rn, s.sku, s.name, COALESCE(s.description, ''), COALESCE(s.active, true),
       %(now)s, %(now)s
FROM {{source}} AS s WHERE s.rn %% 2 = {{half}}
"""
INDEXES = """
SELECT i.relname, pg_get_indexdef(i.oid), c.contype
FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid
LEFT JOIN pg_constraint AS c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
WHERE x.indrelid = 'products'::regclass
"""
TRIGGERS = """
SELECT pg_get_triggerdef(oid) FROM pg_trigger
WHERE tgrelid = 'products'::regclass AND NOT tgisinternal ORDER BY tgname
"""
BLOCKERS = """
SELECT EXISTS (SELECT FROM pg_constraint WHERE confrelid = 'products'::regclass
               OR (conrelid = 'products'::regclass AND contype = 'x'))
"""
# Sessions that hold a lock on the catalog and wait for this one (a deadlock not yet found).
DEADLOCKED = """
SELECT pid FROM (
    SELECT DISTINCT l.pid FROM pg_locks AS l
    WHERE l.relation = 'products'::regclass AND l.granted AND l.pid <> pg_backend_pid()
      AND pg_backend_pid() = ANY (pg_blocking_pids(l.pid))
    OFFSET 0  -- found first, cancelled after
) AS stuck
WHERE pg_cancel_backend(pid)
"""
EXISTS = "SELECT to_regclass(:name) IS NOT NULL"
REFRESHING = "SELECT EXISTS (SELECT FROM import_jobs WHERE search_index = 'refreshing')"
REFRESHED = (
    "UPDATE import_jobs SET search_index = 'ready', message = 'Import complete' "
    "WHERE search_index = 'refreshing'"
)
