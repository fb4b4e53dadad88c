"""Product Importer: import product CSVs in the background and manage the catalog."""

import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import background, logs, security
from .accounts import auth
from .apiutil import IdConverter
from .config import load_config, load_env_file
from .errors import logged_as_unavailable, register_errorhandlers
from .extensions import celery_init_app, csrf, db, limiter
from .imports.uploads import MethodOverride, UploadRequest
from .metrics import requests as request_metrics


class ProductImporter(Flask):
    """Flask, logging a request the database could not serve for now in one line."""

    def log_exception(self, exc_info) -> None:
        """Log an unhandled error with its traceback, unless it is answered 503 (errors.py)."""
        if not logged_as_unavailable(exc_info[1]):
            super().log_exception(exc_info)


def create_app(test_config: dict | None = None) -> Flask:
    """Create the web application; `test_config` overrides settings read from the environment."""
    load_env_file()
    instance_path = os.path.abspath(os.environ.get("INSTANCE_PATH") or "instance")
    app = ProductImporter(__name__, instance_path=instance_path)
    app.request_class = UploadRequest  # uploads stream to disk, never into memory
    app.url_map.converters["int"] = IdConverter  # before any route: ids past 64 bits are 404
    app.config.from_mapping(load_config(app.instance_path))
    app.config.update(test_config or {})
    logs.init_app(app)  # first: a request refused early still gets its id
    if app.config["PROXY_COUNT"]:  # the client's address and scheme, as the proxies saw them
        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)
    app.wsgi_app = MethodOverride(app.wsgi_app)  # tus clients behind a proxy that drops PATCH
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    return app


def register_extensions(app: Flask) -> None:
    """Attach the database, metrics, CSRF, sign-in, rate limits, hardening, Celery."""
    db.init_app(app)
    request_metrics.init_app(app)  # first: it times and counts every request, refused or not
    security.init_app(app)  # first: body limits hold before anything reads a body
    limiter.init_app(app)
    auth.init_app(app)  # before CSRF: a signed-out caller is sent to sign in, not told of tokens
    security.init_chunked_body_check(app)  # after auth: a refused caller's body is never read
    csrf.init_app(app)
    background.register(app, celery_init_app)


def register_blueprints(app: Flask) -> None:
    """Register every domain's API and page blueprints."""
    from . import health, openapi
    from .accounts import api as accounts_api
    from .accounts import views as accounts_views
    from .imports import api as imports_api
    from .imports import tus
    from .imports import views as imports_views
    from .metrics import views as metrics_views
    from .products import api as products_api
    from .products import views as products_views
    from .webhooks import api as webhooks_api
    from .webhooks import views as webhooks_views

    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(metrics_views.bp)
    for module in (accounts_api, imports_api, tus, products_api, webhooks_api):
        # Token callers hold no CSRF token: auth.enforce asks it of cookie sessions only.
        csrf.exempt(module.bp)
        app.register_blueprint(module.bp)
    for module in (accounts_views, imports_views, products_views, webhooks_views):
        app.register_blueprint(module.bp)
