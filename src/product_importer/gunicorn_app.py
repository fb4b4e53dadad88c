"""Run gunicorn from the `serve` command, starting the embedded worker in its process."""

import json
import shutil
import signal

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.http.errors import LimitRequestLine
from gunicorn.workers import base as base_worker
from gunicorn.workers.gthread import ThreadWorker

from .errors import UriTooLong, error_body, uri_too_long_message
from .metrics import requests as request_metrics
from .security import HEADERS

STREAMS_END_SECONDS = 2  # how long a quick stop waits for the progress streams to end


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
        self.cfg.set("post_worker_init", self._post_worker_init)
        self.cfg.set("worker_int", _stopping_now)  # SIGINT or SIGQUIT: Ctrl-C, a quick stop
        self.cfg.set("child_exit", _web_process_gone)
        self.cfg.set("on_exit", self._remove_metrics_folder)

    def load(self):
        from .wsgi import app

        return app

    def _remove_metrics_folder(self, _server) -> None:
        if self.remove_on_exit:
            shutil.rmtree(self.remove_on_exit, ignore_errors=True)

    def _post_worker_init(self, worker) -> None:
        """Once a web process has loaded the app: hear its stop, start the embedded worker."""
        _hear_graceful_stop(worker)
        if self.embedded:
            from .background import EmbeddedWorker

            EmbeddedWorker(worker.wsgi).start()


def _stopping() -> None:
    """Tell the requests that would run on (progress streams) that this process stops: they
    end within a second, where gunicorn would wait out its graceful timeout (30 s) for them
    and then kill the process."""
    from .imports.streams import server_stopping

    server_stopping.set()


def _stopping_now(_worker) -> None:
    """`_stopping`, for a quick stop: gunicorn ends the process 0.1 s after this returns, so
    the streams are given a moment to send their end (a client reading one would see it cut
    off) before it does."""
    from .imports.streams import stream_slots

    _stopping()
    stream_slots.wait_until_none_open(STREAMS_END_SECONDS)


def _hear_graceful_stop(worker) -> None:
    """Call `_stopping` on SIGTERM (a graceful stop: systemctl stop or restart) too, for which
    gunicorn has no hook, before its own handler."""

    def on_term(sig, frame) -> None:
        _stopping()
        worker.handle_exit(sig, frame)

    signal.signal(signal.SIGTERM, on_term)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn sets it: requests go on


class WebWorker(ThreadWorker):
    """gunicorn's gthread worker, whose quick stop (SIGINT, SIGQUIT) takes no lock.

    gthread's own shuts its thread pool from the signal handler, which takes the pool's lock:
    a Ctrl-C landing while the process hands a new connection to the pool (which holds that
    lock) would wait for it forever, until the master's SIGKILL 30 s later. Skipped here: the
    process exits 0.1 s later, and Python's exit stops the pool's threads as that shutdown did.
    """

    def handle_quit(self, sig, frame) -> None:
        base_worker.Worker.handle_quit(self, sig, frame)

    def handle_error(self, req, client, addr, exc) -> None:
        """A request line past limit_request_line: answer 414 in the API's JSON error shape,
        not gunicorn's HTML page (the path is not read yet: pages get the JSON too)."""
        if not isinstance(exc, LimitRequestLine):
            return super().handle_error(req, client, addr, exc)
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            util.write_nonblock(client, uri_too_long_response(self.wsgi.config["MAX_URL_BYTES"]))
        except Exception:  # the client went away: nothing to tell it, as gunicorn does
            self.log.debug("Failed to send error message.")
        return None


def uri_too_long_response(limit: int) -> bytes:
    """The whole HTTP answer to a request line too long to read: 414, the API's JSON error."""
    body = json.dumps(error_body(UriTooLong.code, uri_too_long_message(limit))).encode()
    headers = {
        "Connection": "close",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        **HEADERS,
    }
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"HTTP/1.1 414 URI Too Long\r\n{head}\r\n".encode("latin-1") + body


def _web_process_gone(_server, worker) -> None:
    request_metrics.process_gone(worker.pid)
