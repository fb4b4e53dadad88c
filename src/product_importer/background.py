"""Background work: Celery workers in production, threads of the web process when embedded.

The database is the source of truth for all background work (queued import jobs, pending
webhook deliveries). A task message only wakes a worker up; the periodic maintenance loop
finds anything a lost message or a dead worker left behind.

Tasks are sent by name (`product_importer.imports.drain_imports`), so a module that queues
work never imports the module of the task that does it. Work caused by a request is sent after
its commit by this process's doorbell thread: a request never waits on the broker.
"""

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from importlib import import_module

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# Each domain's `periodic()`; run every MAINTENANCE_INTERVAL seconds by every worker.
PERIODIC = [
    "product_importer.imports.maintenance",
    "product_importer.webhooks.delivery",
    "product_importer.metrics.pushed",  # what this worker counted, into the database
]
# Importing these registers every task with Celery.
TASK_MODULES = ["product_importer.imports.tasks", "product_importer.webhooks.tasks"]
QUEUES = {"product_importer.imports.": "imports", "product_importer.webhooks.": "webhooks"}
MAINTENANCE_INTERVAL = 1.0
SESSION_KEY = "tasks_after_commit"
MAX_ITEMS_PER_MESSAGE = 500
# Each task message costs a worker a few milliseconds: gather a burst of commits into one.
LINGER_SECONDS = 0.05
_doorbell_lock = threading.Lock()
# task name -> what to do with the items of a message that could not be sent (the broker is
# down): the work stays in the database, and this makes sure the sweep takes it at once.
UNSENT: dict[str, Callable[[list], None]] = {}


def submit(task_name: str, *args) -> None:
    """Run task `task_name` with `args` in the background: on Celery, or the embedded worker."""
    embedded = current_app.extensions.get("embedded_worker")
    if embedded is not None:
        embedded.submit(task_name, args)
    elif current_app.config["EMBEDDED_WORKER"]:
        log.debug("no embedded worker in this process; %s waits for one", task_name)
    else:
        current_app.extensions["celery"].send_task(task_name, args=args)


def send_after_commit(session: Session, task_name: str, items: list | None = None) -> None:
    """Send `task_name` once `session` commits; forget it if the session rolls back.

    With `items`, the task takes one list: the items of every commit that comes within
    LINGER_SECONDS go in one message (a burst of product edits wakes a worker once).
    """
    session.info.setdefault(SESSION_KEY, []).append((task_name, items))


@event.listens_for(Session, "after_commit")
def _ring_committed(session: Session) -> None:
    pending = session.info.pop(SESSION_KEY, None)
    if pending:
        _doorbell(current_app._get_current_object()).put(pending)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(SESSION_KEY, None)


def _doorbell(app: Flask) -> queue.SimpleQueue:
    """This process's queue of messages to send, with the thread that sends them."""
    with _doorbell_lock:
        pid, waiting = app.extensions.get("doorbell", (None, None))
        if pid != os.getpid():  # first use, or a forked web worker: its own thread
            waiting = queue.SimpleQueue()
            app.extensions["doorbell"] = (os.getpid(), waiting)
            threading.Thread(
                target=_ring, args=(app, waiting), name="doorbell", daemon=True
            ).start()
        return waiting


def _ring(app: Flask, waiting: queue.SimpleQueue) -> None:
    while True:
        messages = _gather(waiting)
        with app.app_context():
            for task_name, items in messages.items():
                _send_quietly(task_name, items)


def _gather(waiting: queue.SimpleQueue) -> dict[str, list | None]:
    """Wait for messages; merge those that come within LINGER_SECONDS by task."""
    merged: dict[str, list | None] = {}
    batches = [waiting.get()]
    deadline = time.monotonic() + LINGER_SECONDS
    while True:
        for task_name, items in (message for batch in batches for message in batch):
            if items is None:
                merged.setdefault(task_name, None)
            else:
                merged[task_name] = (merged.get(task_name) or []) + list(items)
        try:
            batches = [waiting.get(timeout=max(0.0, deadline - time.monotonic()))]
        except queue.Empty:
            return merged


def _send_quietly(task_name: str, items: list | None) -> None:
    """Send one task (its items in chunks); a failure only delays the work to the sweep."""
    try:
        if items is None:
            submit(task_name)
        for start in range(0, len(items or []), MAX_ITEMS_PER_MESSAGE):
            submit(task_name, items[start : start + MAX_ITEMS_PER_MESSAGE])
    except Exception:  # the work is safe in the database
        log.exception("could not send %s; the maintenance loop will", task_name)
        if items and task_name in UNSENT:
            UNSENT[task_name](items)


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


def register_tasks() -> None:
    """Import every task module, so Celery knows each task by its name."""
    for module_name in TASK_MODULES:
        import_module(module_name)


class EmbeddedWorker:
    """Threads in the web process that run tasks, one thread per Celery queue."""

    def __init__(self, app: Flask):
        self.app = app
        self.queues = {name: queue.Queue() for name in (*QUEUES.values(), "default")}
        self.stop = threading.Event()

    def start(self) -> None:
        """Start one thread per queue and the maintenance loop."""
        register_tasks()
        for name, tasks in self.queues.items():
            threading.Thread(
                target=self._run, args=(tasks,), name=f"embedded-{name}", daemon=True
            ).start()
        self.stop = start_maintenance_thread(self.app)
        self.app.extensions["embedded_worker"] = self

    def submit(self, task_name: str, args: tuple) -> None:
        """Queue a task for the thread of its queue."""
        self.queues[queue_of(task_name)].put((task_name, args))

    def _run(self, tasks: queue.Queue) -> None:
        celery_tasks = self.app.extensions["celery"].tasks
        while True:
            task_name, args = tasks.get()
            try:
                celery_tasks[task_name](*args)  # a FlaskTask pushes the app context itself
            except Exception:
                log.exception("embedded task %s failed", task_name)


def queue_of(task_name: str) -> str:
    """The Celery queue a task runs on: one per domain, so imports never wait on webhooks."""
    for prefix, name in QUEUES.items():
        if task_name.startswith(prefix):
            return name
    return "default"


def celery_settings(broker_url: str) -> dict:
    """Celery configuration: Redis broker, no result backend, one queue per domain."""
    return {
        "broker_url": broker_url or "memory://",
        "task_ignore_result": True,
        "task_default_queue": "default",
        "task_routes": {f"{prefix}*": {"queue": name} for prefix, name in QUEUES.items()},
        # A worker takes no more messages than it has threads free: acknowledged early, each
        # thread would also hold one waiting message, and one worker could take every webhook
        # batch of an event (8 receivers, 4 threads) while another worker stood idle. Work is
        # claimed in the database, so a message delivered again finds nothing left to do.
        "worker_prefetch_multiplier": 1,
        "task_acks_late": True,
        # A lost broker connection leaves running imports running (Celery 6 would cancel them).
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }


def register(app: Flask, make_celery) -> None:
    """Configure Celery on the app."""
    app.config["CELERY"] = celery_settings(app.config["CELERY_BROKER_URL"])
    make_celery(app)
