"""Worker metrics pushed through the database: counted in memory, added to a table every second.

Workers serve no port: each adds what it counted since its last flush to the rows of
`metric_totals` (one upsert per sample, in one transaction), and `/metrics` of any web process
reads the sums. A worker killed between two flushes loses at most a second of counts; a
restarted one adds to the same totals, so they only grow (as Prometheus counters must).
"""

import json
import logging
import threading

from sqlalchemy import Connection, bindparam, select

from .. import database
from ..extensions import db
from .models import MetricTotal

log = logging.getLogger(__name__)

ATTEMPTS = "product_importer_webhook_attempts"
ATTEMPT_SECONDS = "product_importer_webhook_attempt_duration_seconds"
# What each pushed family is, for the scrape: (type, help).
FAMILIES = {
    ATTEMPTS: (
        "counter",
        "Webhook delivery attempts by outcome: succeeded; retry (timeout, network error, 5xx "
        "or 429: sent again for about a day); failed (any other answer, or not sent); "
        "gone (410: the endpoint was disabled).",
    ),
    ATTEMPT_SECONDS: (
        "histogram",
        "Seconds a webhook receiver took to answer an attempt, by outcome.",
    ),
}
ATTEMPT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
totals = MetricTotal.__table__
_lock = threading.Lock()
_counted: dict[tuple[str, str], float] = {}


def webhook_attempt(outcome: str, response_time_ms: int | None) -> None:
    """Count one delivery attempt and, when the receiver answered, how long it took."""
    _add(f"{ATTEMPTS}_total", {"outcome": outcome})
    if response_time_ms is not None:
        _observe(ATTEMPT_SECONDS, {"outcome": outcome}, response_time_ms / 1000, ATTEMPT_BUCKETS)


def _observe(family: str, labels: dict, value: float, buckets: tuple) -> None:
    for bound in buckets:
        if value <= bound:
            _add(f"{family}_bucket", labels | {"le": str(bound)})
    _add(f"{family}_bucket", labels | {"le": "+Inf"})
    _add(f"{family}_sum", labels, value)
    _add(f"{family}_count", labels)


def _add(sample: str, labels: dict, amount: float = 1.0) -> None:
    key = (sample, json.dumps(labels, sort_keys=True, separators=(",", ":")))
    with _lock:
        _counted[key] = _counted.get(key, 0.0) + amount


def periodic() -> None:
    """Push what this process counted since its last flush (every worker, every second)."""
    flush()


def flush() -> int:
    """Add this process's counts to the database's totals; return how many samples moved."""
    with _lock:
        counted = dict(_counted)
        _counted.clear()
    if not counted:
        return 0
    rows = [{"n": n, "l": labels, "v": value} for (n, labels), value in sorted(counted.items())]
    try:
        with db.engine.begin() as conn:
            conn.execute(_adding(conn), rows)
    except Exception:
        with _lock:  # kept for the next round: a count is never dropped for a failed write
            for key, value in counted.items():
                _counted[key] = _counted.get(key, 0.0) + value
        raise
    return len(rows)


def _adding(conn: Connection):
    # Rows in sorted order, so two workers flushing at once take their row locks in one order.
    insert = database.of(conn).upsert(totals)
    statement = insert.values(name=bindparam("n"), labels=bindparam("l"), value=bindparam("v"))
    return statement.on_conflict_do_update(
        index_elements=[totals.c.name, totals.c.labels],
        set_={"value": totals.c.value + statement.excluded.value},
    )


def samples(conn: Connection) -> dict[str, list[tuple[str, dict, float]]]:
    """Every pushed sample, by family: `(sample name, labels, total)`."""
    found: dict[str, list] = {family: [] for family in FAMILIES}
    for name, labels, value in conn.execute(select(totals)):
        family = name.rsplit("_", 1)[0]  # less its _total, _bucket, _sum or _count
        if family in found:
            found[family].append((name, json.loads(labels), value))
    return {family: sorted(rows, key=_in_order) for family, rows in found.items()}


def _in_order(sample: tuple[str, dict, float]):
    """Samples by name and labels, a histogram's buckets by their bound (`+Inf` last)."""
    name, labels, _ = sample
    rest = sorted((k, v) for k, v in labels.items() if k != "le")
    return name, rest, float(labels.get("le", 0))
