"""The `product-importer` command: serve, worker, migrate, import."""

import multiprocessing
import os

import click
import flask_migrate

from . import create_app


@click.group()
def main() -> None:
    """Product Importer: import product CSVs and manage the catalog."""


@main.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    app = create_app()
    with app.app_context():
        flask_migrate.upgrade()
    click.echo("Database schema is up to date.")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run the web app (gunicorn), with the embedded worker when no broker is configured."""
    from .gunicorn_app import GunicornApp

    app = create_app()
    with app.app_context():
        flask_migrate.upgrade()
    embedded = app.config["EMBEDDED_WORKER"]
    # SQLite has one writer: one process with threads. PostgreSQL: a process per core.
    workers = 1 if embedded else int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
    mode = "embedded (SQLite + in-process worker)" if embedded else "production"
    click.echo(f"Serving on http://{host}:{port} in {mode} mode")
    GunicornApp(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": 16,
            "worker_class": "gthread",
            "timeout": 120,
            "accesslog": "-",
            "loglevel": app.config["LOG_LEVEL"].lower(),
        },
        embedded=embedded,
    ).run()


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", default=8, show_default=True, help="Threads for tasks.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(concurrency: int, celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker for every queue (imports, webhooks, default)."""
    from .worker import celery_app, flask_app

    argv = [
        "worker",
        "--queues",
        "imports,webhooks,default",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        flask_app.config["LOG_LEVEL"],
        *celery_args,
    ]
    celery_app.worker_main(argv)


@main.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def import_file(path: str) -> None:
    """Import a CSV file from a terminal, with a progress bar."""
    from .imports.cli import run_import_from_terminal

    app = create_app()
    with app.app_context():
        flask_migrate.upgrade()
        raise SystemExit(run_import_from_terminal(path))
