"""Background work: Celery workers in production, threads of the web process when embedded.

The database is the source of truth for all background work (queued import jobs, pending
webhook deliveries). A task message only wakes a worker up; the periodic maintenance loop
finds anything a lost message or a dead worker left behind.
"""

import logging
import queue
import threading
from collections.abc import Callable
from importlib import import_module

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# Each domain's `periodic()`; run every MAINTENANCE_INTERVAL seconds by every worker.
PERIODIC = ["product_importer.imports.service", "product_importer.webhooks.service"]
MAINTENANCE_INTERVAL = 1.0


def submit(task, *args) -> None:
    """Run `task(*args)` in the background: on Celery, or on the embedded worker."""
    embedded = current_app.extensions.get("embedded_worker")
    if embedded is not None:
        embedded.submit(task, args)
    elif current_app.config["EMBEDDED_WORKER"]:
        log.debug("no embedded worker in this process; %s waits for one", task.name)
    else:
        task.apply_async(args=args)


def submit_after_commit(session: Session, task, *args) -> None:
    """Submit `task(*args)` once `session` commits; forget it if the session rolls back."""
    session.info.setdefault("after_commit_tasks", []).append((task, args))


@event.listens_for(Session, "after_commit")
def _submit_pending(session: Session) -> None:
    for task, args in session.info.pop("after_commit_tasks", []):
        try:
            submit(task, *args)
        except Exception:  # the periodic loop picks the work up from the database
            log.exception("could not submit %s; the maintenance loop will retry", task.name)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop("after_commit_tasks", None)


def run_periodic() -> None:
    """Run one round of every domain's maintenance (recover jobs, due deliveries, cleanup)."""
    for module_name in PERIODIC:
        try:
            import_module(module_name).periodic()
        except Exception:
            log.exception("periodic maintenance of %s failed", module_name)


def maintenance_loop(app: Flask, stop: threading.Event) -> None:
    """Call run_periodic() until `stop` is set; every worker runs one of these."""
    while not stop.wait(app.config.get("MAINTENANCE_INTERVAL", MAINTENANCE_INTERVAL)):
        with app.app_context():
            run_periodic()


def start_maintenance_thread(app: Flask) -> threading.Event:
    """Start the maintenance loop on a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=maintenance_loop, args=(app, stop), name="maintenance", daemon=True
    )
    thread.start()
    return stop


class EmbeddedWorker:
    """Threads in the web process that run tasks, one thread per Celery queue."""

    def __init__(self, app: Flask, queues: tuple[str, ...] = ("imports", "webhooks", "default")):
        self.app = app
        self.queues = {name: queue.Queue() for name in queues}
        self.stop = threading.Event()

    def start(self) -> None:
        """Start one thread per queue and the maintenance loop."""
        for name, tasks in self.queues.items():
            threading.Thread(
                target=self._run, args=(tasks,), name=f"embedded-{name}", daemon=True
            ).start()
        self.stop = start_maintenance_thread(self.app)
        self.app.extensions["embedded_worker"] = self

    def submit(self, task, args: tuple) -> None:
        queue_name = getattr(task, "queue", None) or _routed_queue(task.name)
        self.queues.get(queue_name, self.queues["default"]).put((task, args))

    def _run(self, tasks: queue.Queue) -> None:
        while True:
            task, args = tasks.get()
            try:
                task(*args)  # a FlaskTask pushes the app context itself
            except Exception:
                log.exception("embedded task %s failed", task.name)


def _routed_queue(task_name: str) -> str:
    for prefix, name in (
        ("product_importer.imports.", "imports"),
        ("product_importer.webhooks.", "webhooks"),
    ):
        if task_name.startswith(prefix):
            return name
    return "default"


def celery_settings(broker_url: str) -> dict:
    """Celery configuration: Redis broker, no result backend, one queue per domain."""
    return {
        "broker_url": broker_url or "memory://",
        "task_ignore_result": True,
        "task_default_queue": "default",
        "task_routes": {
            "product_importer.imports.*": {"queue": "imports"},
            "product_importer.webhooks.*": {"queue": "webhooks"},
        },
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }


def register(app: Flask, make_celery: Callable[[Flask], object]) -> None:
    """Configure Celery on the app."""
    app.config["CELERY"] = celery_settings(app.config["CELERY_BROKER_URL"])
    make_celery(app)
