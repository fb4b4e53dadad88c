"""Exact totals of product lists without counting every match on every request.

The catalog has a version that a trigger moves on in the transaction that adds, changes or
removes products (migrations 0003 and 0004). The unfiltered total is counted once per version
and kept in this process; a filtered total is counted once per filter and version and kept in
the unlogged table `product_list_totals`, shared by every web process, because counting every
match of a common word reads a large part of the table. SQLite keeps no version: there the
totals are counted every time.
"""

import logging

from sqlalchemy import ColumnElement, func, not_, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from .. import database
from .models import Product

log = logging.getLogger(__name__)

TOTALS_TABLE = "product_list_totals"
CACHED_TOTAL = text(
    "SELECT total FROM product_list_totals WHERE filters = :filters AND version = :version"
)
REMEMBER_TOTAL = text(
    "INSERT INTO product_list_totals (filters, version, total) "
    "VALUES (:filters, :version, :total) ON CONFLICT (filters) DO UPDATE "
    "SET version = EXCLUDED.version, total = EXCLUDED.total "
    "WHERE product_list_totals.version < EXCLUDED.version"
)
# Rows another request is forgetting or filing are skipped, not waited for: two requests that
# each locked a row the other needed deadlocked (found by bench/load_bench.py, a 500).
FORGET_OLD_TOTALS = text(
    "DELETE FROM product_list_totals WHERE filters IN (SELECT filters FROM product_list_totals "
    "WHERE version < :version FOR UPDATE SKIP LOCKED)"
)
VERSION_AND_TOTAL = text("SELECT version, (SELECT count(*) FROM products) FROM products_version")
# The number of products per database, with the catalog version it was counted at.
_catalog_totals: dict[str, tuple[int, int]] = {}


def catalog_total(session: Session) -> int:
    """Return the number of products; counted again only after the catalog changed."""
    version = database.of(session).catalog_version(session)
    if version is None:
        return count(session, [])
    key = str(session.get_bind().url)
    cached = _catalog_totals.get(key)
    if cached and cached[0] == version:
        return cached[1]
    version, total = session.execute(VERSION_AND_TOTAL).one()
    _catalog_totals[key] = (version, total)
    return total


def active_total(session: Session, active: bool) -> int:
    """Return how many products are (in)active, counted from the partial index of inactive."""
    inactive = count(session, [not_(Product.active)])
    return catalog_total(session) - inactive if active else inactive


def count(session: Session, conditions: list[ColumnElement[bool]]) -> int:
    """Count the products that match, reading every match."""
    return session.scalar(select(func.count()).select_from(Product).where(*conditions))


class FilteredTotals:
    """The totals of one filter at the catalog version read when this was made."""

    def __init__(self, session: Session, filters_key: str):
        self.session, self.filters_key = session, filters_key
        seam = database.of(session)
        # Read before counting: a count is never older than the version it is filed under.
        usable = seam.has_table(session, TOTALS_TABLE)
        self.version = seam.catalog_version(session) if usable else None

    def known(self) -> int | None:
        """The total counted for this filter at this version, if one was."""
        if self.version is None:
            return None
        params = {"filters": self.filters_key, "version": self.version}
        return self.session.scalar(CACHED_TOTAL, params)

    def remember(self, total: int) -> None:
        """File a count under its catalog version, in its own short transaction."""
        if self.version is None:
            return
        values = {"filters": self.filters_key, "version": self.version, "total": total}
        try:
            with self.session.get_bind().begin() as conn:  # the request's transaction only reads
                conn.execute(FORGET_OLD_TOTALS, values)
                conn.execute(REMEMBER_TOTAL, values)
        except OperationalError as error:  # a deadlock, say: the next request files it
            log.info("product list total not kept: %s", error.orig)
