"""Request counts and latency per route (the URL rule, not the path), in every web process."""

import os
import tempfile
import time
from pathlib import Path

from flask import Flask, current_app, g, request

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# HTTP's methods (RFC 9110, and PATCH): others are counted as "(other)"
METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class RequestMetrics:
    """This process's request counter and latency histogram, in a registry of their own."""

    def __init__(self) -> None:
        # Imported here, not at the top: prometheus-client chooses its multiprocess mode when
        # first imported, and `serve` names the folder before that.
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Histogram,
            disable_created_metrics,
        )

        disable_created_metrics()  # the `_created` series only double the output
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "product_importer_http_requests",
            "HTTP requests answered, by route (the URL rule), method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "product_importer_http_request_duration_seconds",
            "Seconds to answer a request (to the first byte, for streams), by route and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )


def init_app(app: Flask) -> None:
    """Count every request; register before anything that may answer early (401, 413)."""
    app.extensions["request_metrics"] = RequestMetrics()
    app.before_request(_start_clock)
    app.after_request(_count)


def _start_clock() -> None:
    g.request_started = time.perf_counter()


def _count(response):
    metrics = current_app.extensions["request_metrics"]
    route = request.url_rule.rule if request.url_rule else "(unmatched)"
    # Any word is a method to the server: counted as it came, each one a caller made up (no
    # sign-in needed) would add series to every scrape, without end.
    method = request.method if request.method in METHODS else "(other)"
    metrics.requests.labels(route, method, str(response.status_code)).inc()
    started = g.get("request_started")
    if started is not None:
        metrics.latency.labels(route, method).observe(time.perf_counter() - started)
    return response


def multiprocess_dir() -> str | None:
    """The folder gunicorn's processes count in, when they share one."""
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir() -> str | None:
    """Give the web processes an empty folder to count in; return it when made here.

    Call before anything imports prometheus-client. A folder named in PROMETHEUS_MULTIPROC_DIR
    is emptied (counts of an earlier run would add up); else a temporary one is made, for the
    caller to remove when the server stops.
    """
    configured = multiprocess_dir()
    if configured:
        Path(configured).mkdir(parents=True, exist_ok=True)
        for stale in Path(configured).glob("*.db"):
            stale.unlink()
        return None
    made = tempfile.mkdtemp(prefix="product-importer-metrics-")
    os.environ[MULTIPROC_ENV] = made
    return made


def process_gone(pid: int) -> None:
    """Forget the live gauges of a web process that exited (its counts stay in the sums)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
