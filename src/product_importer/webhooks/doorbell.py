"""Wake workers for new deliveries from a thread, so a request never waits on the broker.

A product edit commits its deliveries and returns; this process's doorbell thread then sends
the task message, with the ids of every commit that came in meanwhile. If the broker is slow
or down, requests are not: the deliveries wait in the database, and a worker's sweep sends
them once their `queued_until` passes.
"""

import logging
import os
import queue
import threading
import time

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from .. import background

log = logging.getLogger(__name__)

SESSION_KEY = "webhook_delivery_ids"
MAX_IDS_PER_MESSAGE = 500
# Each task message costs a worker a few milliseconds: gather a burst of edits into one.
LINGER_SECONDS = 0.05
_lock = threading.Lock()


def ring_after_commit(session: Session, delivery_ids: list[int]) -> None:
    """Wake a worker for these deliveries once `session` commits; forget them on rollback."""
    session.info.setdefault(SESSION_KEY, []).extend(delivery_ids)


def ring(app: Flask, delivery_ids: list[int]) -> None:
    """Hand deliveries to the doorbell thread; returns at once."""
    _queue(app).put(delivery_ids)


@event.listens_for(Session, "after_commit")
def _ring_committed(session: Session) -> None:
    delivery_ids = session.info.pop(SESSION_KEY, None)
    if delivery_ids:
        ring(current_app._get_current_object(), delivery_ids)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(SESSION_KEY, None)


def _queue(app: Flask) -> queue.SimpleQueue:
    with _lock:
        pid, waiting = app.extensions.get("webhook_doorbell", (None, None))
        if pid != os.getpid():  # first use, or a forked web worker: its own thread
            waiting = queue.SimpleQueue()
            app.extensions["webhook_doorbell"] = (os.getpid(), waiting)
            threading.Thread(
                target=_run, args=(app, waiting), name="webhook-doorbell", daemon=True
            ).start()
        return waiting


def _run(app: Flask, waiting: queue.SimpleQueue) -> None:
    from .tasks import deliver

    while True:
        delivery_ids = _take(waiting)
        try:
            with app.app_context():
                background.submit(deliver, delivery_ids)
        except Exception:  # the deliveries are safe in the database
            log.exception("could not wake a worker for %d deliveries", len(delivery_ids))


def _take(waiting: queue.SimpleQueue) -> list[int]:
    """Wait for ids; add those that come within LINGER_SECONDS, so a burst is one message."""
    delivery_ids = list(waiting.get())
    deadline = time.monotonic() + LINGER_SECONDS
    while len(delivery_ids) < MAX_IDS_PER_MESSAGE:
        try:
            delivery_ids += waiting.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
    return delivery_ids
