"""Exact totals of product lists without counting every match on every request.

The catalog has a version that a trigger moves on in each statement that adds, changes or
removes products (migrations 0003, 0004, 0012). A total, counted once, is kept in the unlogged
table `product_list_totals` with the version it was counted at, for every web process. Small
edits are logged in `product_edit_log` (each changed product's row before, sign -1, and after,
sign +1, under the version its statement made), so a total kept at version v0 is carried to the
version now by adding the signs of the rows logged since that match the filter: an edit costs
the next request a look at the few rows logged, not a count of every match. A total is counted
again when an import, an undo or a delete-all marked the version `recount_from` after v0 (they
log nothing), or when more than MAX_CARRIED rows were logged since. The version and what is
read with it always come from one statement (one snapshot): a total is never filed under a
version it does not match. SQLite keeps no version: there the totals are counted every time.

A total of at most MATCHES_AT_MOST keeps the ids of its matches too (migration 0017), once a
request has found them all, so that its pages are read by id instead of by searching: they are
carried as the total is, the products logged since with a row that matches added to them (a
superset, then: whoever reads a page by them tests each row against the filter again).
"""

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    ColumnElement,
    Connection,
    Select,
    SmallInteger,
    Text,
    and_,
    case,
    column,
    func,
    null,
    select,
    table,
    text,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from .. import database
from ..extensions import bookkeeping

log = logging.getLogger(__name__)

# Rows logged after a kept total that it is carried over at most; past that, counting the
# matches again is about as cheap as reading the rows. The maintenance loop drops older rows.
MAX_CARRIED = 2000
# A total of at most this many matches keeps their ids, so that its pages are read by id: a
# phrase of common words at 5M products has a handful of matches among ~90,000 candidates, all
# rechecked to find any page of it (290 ms); by id, its page takes a few ms. Carried over the
# edits the ids grow (every product logged with a matching row is added): past KEPT_IDS_AT_MOST
# they are dropped, and found again by the next page that needs them.
MATCHES_AT_MOST = 2000
KEPT_IDS_AT_MOST = 2 * MATCHES_AT_MOST
VERSION = table(
    "products_version", column("version", BigInteger), column("recount_from", BigInteger)
)
KEPT = table(
    "product_list_totals",
    column("filters", Text),
    column("version", BigInteger),
    column("total", BigInteger),
    column("counted_at", BigInteger),
    column("matches", ARRAY(BigInteger)),
    column("matches_at", BigInteger),  # the version the ids are for: used at the total's only
)
EDIT_LOG = table(
    "product_edit_log",
    column("version", BigInteger),
    column("sign", SmallInteger),
    column("product_id", BigInteger),
    column("sku", Text),
    column("name", Text),
    column("description", Text),
    column("active", Boolean),
)
# A newer total replaces the kept one; one at the same version only adds the ids it lacked
# (the total is the same: it keeps the version it was counted at).
REMEMBER_TOTAL = text(
    "INSERT INTO product_list_totals (filters, version, total, counted_at, matches, matches_at) "
    "VALUES (:filters, :version, :total, :counted_at, CAST(:matches AS bigint[]), :matches_at) "
    "ON CONFLICT (filters) DO UPDATE "
    "SET version = EXCLUDED.version, total = EXCLUDED.total, "
    "counted_at = CASE WHEN product_list_totals.version = EXCLUDED.version "
    "THEN product_list_totals.counted_at ELSE EXCLUDED.counted_at END, "
    "matches = EXCLUDED.matches, matches_at = EXCLUDED.matches_at "
    "WHERE product_list_totals.version < EXCLUDED.version "
    "OR (product_list_totals.version = EXCLUDED.version AND EXCLUDED.matches IS NOT NULL "
    "AND product_list_totals.matches_at IS DISTINCT FROM EXCLUDED.version)"
)
# The log is pruned, and the totals it can no longer carry forgotten, under the version row's
# lock: no statement changes products meanwhile (one that holds it is waited for next time).
# Rows another request is filing are skipped, not waited for: two requests that each locked a
# row the other needed deadlocked (found by bench/load_bench.py, a 500).
PRUNE = text("""
WITH now AS (SELECT recount_from FROM products_version FOR UPDATE SKIP LOCKED),
upto AS (
    SELECT greatest(now.recount_from, (SELECT version FROM product_edit_log
                                       ORDER BY version DESC OFFSET :keep LIMIT 1)) AS version
    FROM now
),
pruned AS (DELETE FROM product_edit_log WHERE version <= (SELECT version FROM upto) RETURNING 1),
marked AS (
    UPDATE products_version SET recount_from = upto.version FROM upto
    WHERE products_version.recount_from < upto.version
),
forgotten AS (
    DELETE FROM product_list_totals WHERE filters IN (
        SELECT filters FROM product_list_totals WHERE version < (SELECT version FROM upto)
        FOR UPDATE SKIP LOCKED
    )
)
SELECT count(*) FROM pruned
""")


# One request counts a filter's total, the others that need it wait for it and carry its count:
# after an import every filter is counted again, and a count that took long drew more requests
# counting the same. Two 32-bit keys: a space apart from the single-key locks of the imports.
WAIT_FOR_COUNT = text("SELECT pg_advisory_xact_lock(:space, hashtext(:filters))")
COUNT_LOCKS = 0x1D0


@dataclass
class Counting:
    """The query that counts the matches of a filter, and how to plan it."""

    query: Select
    planned: AbstractContextManager = field(default_factory=nullcontext)


class ExactTotal:
    """The exact total of one filter: carried over the edits logged since one was kept."""

    def __init__(
        self,
        session: Session,
        filters_key: str,
        counting: Callable[[], Counting],
        log_conditions: list[ColumnElement[bool]],
    ):
        """`counting()` gives the count of the products that match; `log_conditions` match
        logged rows."""
        self.session, self.filters_key, self.counting = session, filters_key, counting
        self.log_conditions = log_conditions
        self.kept = database.of(session).has_table(session, EDIT_LOG.name)
        self.seen_version: int | None = None  # the catalog version last read (`_carry`)
        # the ids of every match (and maybe of a few more products), kept with the total
        self.matches: list[int] | None = None
        self.counted = False  # whether this request counted the matches (`count`)
        # the total at the version now, when one was kept and can be carried to it
        self.known: int | None = self._carry() if self.kept else None

    def wait_for_other_counts(self) -> None:
        """Wait while another request counts these filters, then carry its count if it can be.

        The lock is held until this request's transaction ends: count, if need be, after it.
        """
        if not self.kept:
            return
        self.session.execute(WAIT_FOR_COUNT, {"space": COUNT_LOCKS, "filters": self.filters_key})
        self.known = self._carry()

    def _carry(self) -> int | None:
        """Return the total now, carried from the kept one, and keep it; None if it cannot be."""
        version, kept_at, counted_at, total, matches, added = self.session.execute(
            _carried(self.filters_key, self.log_conditions)
        ).one()
        self.seen_version = version
        self.matches = None
        if matches is not None:
            carried = set(matches).union(added or ())
            self.matches = list(carried) if len(carried) <= KEPT_IDS_AT_MOST else None
        if total is not None and kept_at < version:
            self.remember(total, version, counted_at=counted_at, matches=self.matches)
        return total

    def value(self) -> int:
        """Return the total: the one carried, else counted (and kept)."""
        return self.known if self.known is not None else self.count()

    def count(self) -> int:
        """Count the matches and keep the count with the version of the same snapshot."""
        self.counted = True
        if not self.kept:
            counting = self.counting()
            with counting.planned:
                return self.session.scalar(counting.query)
        version, total = self._with_version(self.counting())
        self.seen_version = version
        self.remember(total, version)
        return total

    def find_matches(self, finding: Counting) -> list[int]:
        """Find the ids of every match (`finding` aggregates them) and keep them and their
        number, with the version of the same snapshot."""
        version, ids = self._with_version(finding)
        self.seen_version = version
        self.matches = ids or []
        # the total now: an edit may have committed since the one carried was read
        self.known = len(self.matches)
        self.remember(self.known, version, matches=self.matches)
        return self.matches

    def _with_version(self, counting: Counting) -> tuple[int, object]:
        """The catalog version and what `counting` finds, read in one snapshot."""
        with counting.planned:
            query = select(VERSION.c.version, counting.query.scalar_subquery())
            return tuple(self.session.execute(query).one())

    def moved_on(self) -> bool:
        """Whether the catalog changed since the version this total was read at: a page read
        meanwhile may hold what the total does not. The total is then carried again."""
        if self._version_unchanged() is not False:
            return False
        self.known = self._carry()
        return True

    def remember_if_unchanged(self, total: int) -> None:
        """Keep `total`, found by a query that read no row (so no version with it), if the
        version is still the one read before that query: the catalog did not change between."""
        if self._version_unchanged():
            self.remember(total, self.seen_version, matches=[])

    def _version_unchanged(self) -> bool | None:
        """Whether the catalog version now is the one last read; None where none was read."""
        if not self.kept or self.seen_version is None:
            return None
        return self.session.scalar(select(VERSION.c.version)) == self.seen_version

    def remember(
        self,
        total: int,
        version: int | None,
        *,
        counted_at: int | None = None,
        matches: list[int] | None = None,
    ) -> None:
        """Keep the total at `version` (counted then, or at `counted_at` and carried), with
        the ids of its matches where they are known and few enough."""
        if not self.kept or version is None:
            return
        values = {"filters": self.filters_key, "version": version, "total": total}
        values["counted_at"] = version if counted_at is None else counted_at
        values["matches"] = (
            sorted(matches) if matches is not None and total <= MATCHES_AT_MOST else None
        )
        values["matches_at"] = None if values["matches"] is None else version
        try:
            # the request's transaction only reads; this one keeps a total, not its work
            with bookkeeping(), self.session.get_bind().begin() as conn:
                conn.execute(REMEMBER_TOTAL, values)
        except OperationalError as error:  # a deadlock, say: the next request files it
            log.info("product list total not kept: %s", error.orig)


def version_now(session: Session) -> ColumnElement:
    """A column of the catalog version, to read it in the same snapshot as a query's rows."""
    if not database.of(session).has_table(session, EDIT_LOG.name):
        return null()
    return select(VERSION.c.version).scalar_subquery()


def _carried(filters_key: str, log_conditions: list[ColumnElement[bool]]):
    """The version now, the kept total's version and count's, the total now (or NULL), and
    where it is carried and kept the ids of its matches, those of the products logged since
    with a row that matches (or NULLs).

    One statement: the rows logged up to the version read are exactly those it sees.
    """
    since = EDIT_LOG.c.version > KEPT.c.version
    # the version of the oldest row a carry may need: more rows after the kept total, no carry
    oldest_carried = (
        select(EDIT_LOG.c.version)
        .order_by(EDIT_LOG.c.version.desc())
        .offset(MAX_CARRIED)
        .limit(1)
        .scalar_subquery()
    )
    # A carry reads at most MAX_CARRIED rows (the case below says when it may): the limit lets
    # the planner walk the version index from the kept total on, whatever the log's size (it
    # scanned the whole log, 187K rows left by one large statement, for every request).
    signs = (
        select(EDIT_LOG.c.sign)
        .where(since, *log_conditions)
        .order_by(EDIT_LOG.c.version)
        .limit(MAX_CARRIED)
        .correlate(KEPT)  # a subquery in FROM is not correlated unless told
        .subquery()
    )
    changes = select(func.coalesce(func.sum(signs.c.sign), 0))
    carries = and_(  # no unlogged change, nor more than MAX_CARRIED rows, since the kept total
        KEPT.c.version >= VERSION.c.recount_from,
        func.coalesce(oldest_carried, 0) <= KEPT.c.version,
    )
    matching = (
        select(EDIT_LOG.c.product_id)
        .where(since, EDIT_LOG.c.sign == 1, *log_conditions)
        .order_by(EDIT_LOG.c.version)
        .limit(MAX_CARRIED)
        .correlate(KEPT)
        .subquery()
    )
    # ids kept at the total's version (not left behind by a process that moved the total on
    # without them), of a total carried
    ids_carry = and_(carries, KEPT.c.matches.is_not(None), KEPT.c.matches_at == KEPT.c.version)
    kept_ids = case((ids_carry, KEPT.c.matches), else_=null())
    added = case(
        (ids_carry, select(func.array_agg(matching.c.product_id)).scalar_subquery()),
        else_=null(),
    )
    carried = case((carries, KEPT.c.total + changes.scalar_subquery()), else_=null())
    joined = VERSION.outerjoin(KEPT, KEPT.c.filters == filters_key)
    kept = (KEPT.c.version, KEPT.c.counted_at, carried, kept_ids, added)
    return select(VERSION.c.version, *kept).select_from(joined)


def prune_edit_log(conn: Connection) -> int:
    """Drop logged edits no kept total can be carried over any more; return how many."""
    if conn.dialect.name != "postgresql":
        return 0
    return conn.execute(PRUNE, {"keep": MAX_CARRIED}).scalar()
