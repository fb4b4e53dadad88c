"""`GET /metrics`: every figure in the Prometheus text format, for admins or METRICS_TOKEN."""

from flask import Blueprint, Response, current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from ..accounts.auth import admin_or_token
from .collector import DatabaseCollector
from .requests import multiprocess_dir

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@admin_or_token("METRICS_TOKEN")
def metrics():
    """Answer every metric: this server's requests, then the database's figures."""
    return Response(generate_latest(_Scrape()), mimetype=CONTENT_TYPE_LATEST)


class _Scrape:
    """The collectors of one scrape, in the order they are written."""

    def collect(self):
        yield from _requests().collect()
        yield from DatabaseCollector().collect()


def _requests() -> CollectorRegistry:
    """Request metrics of every web process (multiprocess mode), else of this one."""
    folder = multiprocess_dir()
    if folder is None:
        return current_app.extensions["request_metrics"].registry
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)
    return registry
