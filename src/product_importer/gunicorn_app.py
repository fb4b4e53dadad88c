"""Run gunicorn from the `serve` command, starting the embedded worker in its process."""

import shutil

from gunicorn.app.base import BaseApplication

from .metrics import requests as request_metrics


class GunicornApp(BaseApplication):
    """gunicorn with our settings; loads the Flask app in the worker process."""

    def __init__(self, options: dict, *, embedded: bool, remove_on_exit: str | None = None):
        self.options = options
        self.embedded = embedded
        self.remove_on_exit = remove_on_exit  # the metrics folder `serve` made for this run
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        # gunicorn 25.1+ keeps a control socket at one path per user ($HOME/.gunicorn or
        # $XDG_RUNTIME_DIR): a second instance on the machine replaces it, and the first to stop
        # deletes the other's. Nothing here uses it.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)
        if self.embedded:
            self.cfg.set("post_worker_init", _start_embedded_worker)
        self.cfg.set("child_exit", _web_process_gone)
        self.cfg.set("on_exit", self._remove_metrics_folder)

    def load(self):
        from .wsgi import app

        return app

    def _remove_metrics_folder(self, _server) -> None:
        if self.remove_on_exit:
            shutil.rmtree(self.remove_on_exit, ignore_errors=True)


def _start_embedded_worker(worker) -> None:
    """Start the in-process background worker once the web worker has loaded the app."""
    from .background import EmbeddedWorker

    EmbeddedWorker(worker.wsgi).start()


def _web_process_gone(_server, worker) -> None:
    request_metrics.process_gone(worker.pid)
