"""Celery entry point: `celery -A product_importer.worker worker` (or `product-importer worker`)."""

from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from . import background, create_app
from .imports.progress import WORKER_STOPPING
from .metrics import pushed

flask_app = create_app()
background.register_tasks()
celery_app = flask_app.extensions["celery"]
_maintenance = {}


@worker_ready.connect
def _start_maintenance(**_kwargs) -> None:
    """Every worker recovers stalled imports and sends due webhook deliveries."""
    _maintenance["stop"] = background.start_maintenance_thread(flask_app)
    with flask_app.app_context():
        background.run_periodic()


@worker_shutdown.connect
def _stop_maintenance(**_kwargs) -> None:
    if "stop" in _maintenance:
        _maintenance["stop"].set()
    with flask_app.app_context():
        pushed.flush()  # the last second's counts


@worker_shutting_down.connect
def _hand_back_imports(**_kwargs) -> None:
    """Asked to stop (SIGTERM, as a deploy does): running imports go back to the queue now.

    Celery's warm shutdown waits for running tasks; an import could take an hour, so each
    one rolls back within a heartbeat and its job is queued for another worker.
    """
    WORKER_STOPPING.set()
