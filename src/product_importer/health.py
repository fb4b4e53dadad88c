"""Liveness and readiness probes."""

from flask import Blueprint, current_app, jsonify
from kombu import Connection
from sqlalchemy import text

from .accounts.auth import public
from .extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz():
    """Answer while the process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
@public
def readyz():
    """Answer 200 when the database and the broker are reachable, 503 naming what is not."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if ready else "unavailable", checks=checks), 200 if ready else 503


def _check_database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        db.session.rollback()
        return f"unreachable: {exc.__class__.__name__}"


def _check_broker() -> str:
    if current_app.config["EMBEDDED_WORKER"]:
        return "ok"  # the embedded worker needs no broker
    try:
        with Connection(current_app.config["CELERY_BROKER_URL"], connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        return f"unreachable: {exc.__class__.__name__}"
