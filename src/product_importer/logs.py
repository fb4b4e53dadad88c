"""Log lines: readable text by default, one JSON object per line with LOG_FORMAT=json.

Each line names the request (X-Request-ID) or the import job it belongs to, when it does: the
request id comes in from a proxy (or is made here) and goes back in the answer's header, so a
person's report, the proxy's log and ours meet on one id.
"""

import logging
import os
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from flask import Flask, g, has_request_context, request
from gunicorn import glogging
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
# A proxy's id is kept when it is this plain (no spaces, no quotes, not too long); else ours.
PLAIN_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(job_id)s"
# gunicorn's access line knows the answer's headers by this name
ACCESS_ID_ATOM = "{x-request-id}o"
_job_id: ContextVar[int | None] = ContextVar("job_id", default=None)


class Context(logging.Filter):
    """Give every record the request id and job id of the code that logs it (or None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id(record)
        record.job_id = _job_id.get()
        return True


class AlembicPreamble(logging.Filter):
    """Drop the lines alembic logs before an upgrade ("Context impl PostgresqlImpl.", "Will
    assume transactional DDL.", and one "setup plugin ..." per plugin as it is loaded, which
    is when a command finds its database behind): above a new password or a progress bar,
    they tell an operator nothing. The migrations it runs ("Running upgrade 0020 -> 0021,
    ...") are still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        said = record.getMessage()
        return not said.startswith(("Context impl ", "Will assume ", "setup plugin "))


ALEMBIC_PREAMBLE = AlembicPreamble()


def _request_id(record: logging.LogRecord) -> str | None:
    if has_request_context():
        return g.get("request_id")
    if isinstance(record.args, dict):  # a gunicorn access line: the id its answer carried
        return record.args.get(ACCESS_ID_ATOM) or None
    return None


class Text(logging.Formatter):
    """TEXT, then `request_id=... job_id=...` when the line belongs to one."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{name}={value}"
            for name in ("request_id", "job_id")
            if (value := getattr(record, name, None)) is not None
        ]
        return f"{line} {' '.join(ids)}" if ids else line


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of LOG_FORMAT: `json` or `text`."""
    if log_format == "json":
        names = {"asctime": "time", "levelname": "level", "name": "logger"}
        return JsonFormatter(JSON_FIELDS, rename_fields=names)
    return Text(TEXT)


def handler(log_format: str) -> logging.Handler:
    """A handler to stderr in LOG_FORMAT, which fills in the ids."""
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setFormatter(formatter(log_format))
    to_stderr.addFilter(Context())
    to_stderr.product_importer = True  # ours: replaced, not doubled, by a second configure()
    return to_stderr


def configure(level: str, log_format: str) -> None:
    """Send every logger's lines (ours, Flask's, Celery's, alembic's) to one handler."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "product_importer", False)]:
        root.removeHandler(old)
    root.addHandler(handler(log_format))
    root.setLevel(level)
    for alembic in ("alembic.runtime.migration", "alembic.runtime.plugins"):
        logging.getLogger(alembic).addFilter(ALEMBIC_PREAMBLE)  # once: a set
    # Python's warnings (Celery's about running as root, say) as log lines too: one format.
    logging.captureWarnings(log_format == "json")


def quiet_unless_asked() -> None:
    """Leave a command's INFO lines (an import's step log, each migration it runs) out of a
    person's terminal: warnings and errors only, unless LOG_LEVEL is set (environment or .env)."""
    if not (os.environ.get("LOG_LEVEL") or "").strip():
        logging.getLogger().setLevel(logging.WARNING)


@contextmanager
def job(job_id: int) -> Iterator[None]:
    """Mark the lines logged inside as those of import job `job_id`."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


def init_app(app: Flask) -> None:
    """Configure logging; give every request an id, and send it back in X-Request-ID."""
    configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    app.before_request(_take_request_id)
    app.after_request(_echo_request_id)


def _take_request_id() -> None:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = offered if PLAIN_ID.fullmatch(offered) else uuid.uuid4().hex


def _echo_request_id(response):
    if "request_id" not in g:  # refused before the first before_request ran
        _take_request_id()
    response.headers[REQUEST_ID_HEADER] = g.request_id
    return response


class GunicornLogger(glogging.Logger):
    """gunicorn's own lines (start, stop, access) in the app's LOG_FORMAT, to the same stream."""

    log_format = "text"

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.handlers = [handler(self.log_format)]


def gunicorn_logger(log_format: str) -> type[GunicornLogger]:
    """The gunicorn logger class for LOG_FORMAT."""
    return type("AppGunicornLogger", (GunicornLogger,), {"log_format": log_format})
