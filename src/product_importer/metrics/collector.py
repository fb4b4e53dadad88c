"""Figures read from the database at each scrape, so every web process answers the same."""

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import Connection, func, select

from .. import database
from ..extensions import db
from ..imports.models import ImportJob
from ..imports.states import FINISHED, Kind, Status
from ..timeutil import utcnow
from ..webhooks.models import Delivery, DeliveryStatus
from . import pushed

IMPORT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
# A plan has ended its run but not its job: applied, it is queued again. Counted among the
# ended ones, its status's counters would go down, which Prometheus reads as a restart.
ENDED = sorted(FINISHED - {Status.PLANNED})
WAITING = (Status.QUEUED, Status.RUNNING, Status.PLANNED)
jobs = ImportJob.__table__
deliveries = Delivery.__table__


class DatabaseCollector:
    """A prometheus-client collector whose figures are the rows of the jobs and deliveries."""

    def collect(self):
        """Read every figure in one short transaction."""
        with db.engine.connect() as conn:
            yield from import_families(conn)
            yield from queue_families(conn)
            yield from delivery_families(conn)
            yield from pushed_families(conn)


def import_families(conn: Connection):
    """Finished imports by status: how many, their rows, and how long each took."""
    seconds = database.of(conn).seconds_between(jobs.c.started_at, jobs.c.finished_at)
    columns = [
        jobs.c.status,
        func.count(),
        func.coalesce(func.sum(jobs.c.rows_processed), 0),
        func.count(seconds),
        func.coalesce(func.sum(seconds), 0.0),
        *(func.count().filter(seconds <= bound) for bound in IMPORT_BUCKETS),
    ]
    rows = conn.execute(
        select(*columns)
        .where(jobs.c.status.in_(ENDED), jobs.c.kind == Kind.IMPORT)  # an undo is no import
        .group_by(jobs.c.status)
    ).all()
    imports = CounterMetricFamily(
        "product_importer_imports", "Imports that ended, by status.", labels=["status"]
    )
    imported = CounterMetricFamily(
        "product_importer_import_rows",
        "Rows read by the imports that ended, by status.",
        labels=["status"],
    )
    duration = HistogramMetricFamily(
        "product_importer_import_duration_seconds",
        "Seconds from an import's start to its end, by status (cancelled while queued: none).",
        labels=["status"],
    )
    for status, count, rows_read, timed, total_seconds, *within in rows:
        imports.add_metric([status], count)
        imported.add_metric([status], rows_read)
        buckets = [(str(b), n) for b, n in zip(IMPORT_BUCKETS, within, strict=True)]
        duration.add_metric([status], buckets + [("+Inf", timed)], total_seconds)
    return [imports, imported, duration]


def queue_families(conn: Connection):
    """The import queue: jobs waiting (for a worker, or planned: for a person) and running."""
    counts = dict(
        conn.execute(
            select(jobs.c.status, func.count())
            .where(jobs.c.status.in_(WAITING))
            .group_by(jobs.c.status)
        ).all()
    )
    depth = GaugeMetricFamily(
        "product_importer_import_queue_depth",
        "Imports queued (waiting for a worker), running, and planned (waiting to be applied).",
        labels=["status"],
    )
    for status in WAITING:
        depth.add_metric([status.value], counts.get(status.value, 0))
    return [depth]


def delivery_families(conn: Connection):
    """Webhook deliveries not yet sent: all of them, and those due now (the backlog)."""
    now = utcnow()
    pending, due = conn.execute(
        select(func.count(), func.count().filter(deliveries.c.next_attempt_at <= now)).where(
            deliveries.c.status == DeliveryStatus.PENDING
        )
    ).one()
    waiting = GaugeMetricFamily(
        "product_importer_webhook_deliveries_pending",
        "Webhook deliveries not yet delivered nor given up (due now or waiting for a retry).",
        value=pending,
    )
    backlog = GaugeMetricFamily(
        "product_importer_webhook_deliveries_due",
        "Pending webhook deliveries whose time has come (a growing number: workers lag).",
        value=due,
    )
    return [waiting, backlog]


def pushed_families(conn: Connection):
    """The totals workers pushed (webhook attempts by outcome, and their latency)."""
    families = []
    for family, found in pushed.samples(conn).items():
        kind, documentation = pushed.FAMILIES[family]
        metric = Metric(family, documentation, kind)
        for name, labels, value in found:
            metric.add_sample(name, labels, value)
        families.append(metric)
    return families
