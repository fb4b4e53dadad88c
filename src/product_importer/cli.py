"""The `product-importer` command: serve, worker, migrate, import."""

import errno
import logging
import multiprocessing
import os
import shlex
import socket
import stat
import sys
from contextlib import contextmanager

import click
from click.core import ParameterSource
from flask import current_app
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from . import create_app, database, logs, schema
from .accounts import audit, credentials
from .accounts import service as accounts_service
from .accounts.roles import ROLES
from .apidoc import MAX_ID
from .config import (
    MAX_REQUEST_LINE,
    WILDCARDS,
    SettingError,
    load_env_file,
    tls_files,
    whole_number,
)
from .errors import AppError, said
from .extensions import db
from .metrics import requests as request_metrics

log = logging.getLogger(__name__)
INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE for "permission denied"


class Commands(click.Group):
    """The commands; a mistyped setting or a database out of reach stops any of them with what
    to check, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SettingError as error:
            raise click.ClickException(f"{error} (from the environment or .env)") from error
        except schema.NotThisRelease as error:
            raise click.ClickException(str(error)) from error
        except OperationalError as error:
            raise click.ClickException(_database_unreachable(error)) from error
        except ProgrammingError as error:
            if getattr(error.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
                raise
            said_by_driver = str(error.orig).strip().splitlines()[0]
            raise click.ClickException(
                f"The database refused: {said_by_driver}. Give the role DATABASE_URL names that "
                "right (CREATEDB to create the database), or have its administrator do it."
            ) from error


def _database_unreachable(error: OperationalError) -> str:
    """What the driver said about the database it could not use, and what to do about it."""
    said_by_driver = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    if "does not exist" in said_by_driver and "database" in said_by_driver:
        advice = "Create it with `product-importer migrate --create-database`."
    else:
        advice = "Check DATABASE_URL (from the environment or .env) and that the server runs."
    return f"The database could not be used: {said_by_driver}. {advice}"


@click.group(cls=Commands)
def main() -> None:
    """Product Importer: import product CSVs and manage the catalog."""


@main.command()
@click.option(
    "--create-database", is_flag=True, help="Create the PostgreSQL database first if missing."
)
def migrate(create_database: bool) -> None:
    """Bring the database schema up to date."""
    app = create_app()
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if create_database and database.create_if_missing(url):
        log.info("created the database %s", make_url(url).database)
    with app.app_context():
        schema.upgrade()
    _say(app, "Database schema is up to date.")


@main.command(short_help="Run the web app (gunicorn), and the worker when embedded.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def serve(host: str, port: int) -> None:
    """Run the web app (gunicorn), with the embedded worker when no broker is configured."""
    _check_address_free(host, port)
    os.environ["SERVE_HOST"] = host  # the address to answer as, for every web process
    os.environ["SERVE_PORT"] = str(port)  # the one port a Host header may name (changes_url)
    load_env_file()  # PROMETHEUS_MULTIPROC_DIR may be set there
    # gunicorn reads WEB_CONCURRENCY as it is imported, with int(): checked first, and an
    # empty one (a copy of .env.example) is the default, as every setting's is.
    processes = whole_number("WEB_CONCURRENCY", multiprocessing.cpu_count())
    os.environ["WEB_CONCURRENCY"] = str(processes)
    tls = tls_files()
    scheme = "https" if tls else "http"
    from .gunicorn_app import GunicornApp

    metrics_dir = request_metrics.prepare_multiprocess_dir()  # before the app loads metrics
    app = create_app()
    with app.app_context():
        schema.upgrade()
        _announce_setup_link(f"{scheme}://{_shown(host)}:{port}")
    _warn_if_instance_open(app)
    embedded = app.config["EMBEDDED_WORKER"]
    # SQLite has one writer: one process with threads. PostgreSQL: a process per core.
    workers = 1 if embedded else processes
    sqlite = app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
    store = "SQLite" if sqlite else "PostgreSQL"  # DATABASE_URL names it, without a broker too
    mode = f"embedded ({store} + in-process worker)" if embedded else "production"
    _say(app, f"Serving on {scheme}://{_bracketed(host)}:{port} in {mode} mode")
    GunicornApp(
        {
            "bind": f"{_bracketed(host)}:{port}",  # gunicorn splits "::1:8000" at its first colon
            "workers": workers,
            "threads": 16,
            "worker_class": "product_importer.gunicorn_app.WebWorker",  # gthread, safer stop
            "timeout": 120,
            # Idle connections stay open longer than a proxy keeps its own (nginx: 60 s), so
            # the proxy always closes first: closed here first, a request the proxy or a
            # client sent on it at that moment is lost ("connection closed", found by
            # bench/load_bench.py). gthread waits on idle connections without a thread.
            "keepalive": 75,
            # Its default (4094) refused a filter of a few KB with its own HTML page before the
            # app saw it. Longer addresses now reach the app, which refuses those past
            # MAX_URL_BYTES in the API's JSON; a longer line is still refused after 8190 bytes
            # (by WebWorker, in the same JSON), never read whole into memory (0 would be).
            "limit_request_line": MAX_REQUEST_LINE,
            "accesslog": "-",
            "loglevel": app.config["LOG_LEVEL"].lower(),
            "logger_class": logs.gunicorn_logger(app.config["LOG_FORMAT"]),
            **({"certfile": tls[0], "keyfile": tls[1]} if tls else {}),
        },
        embedded=embedded,
        remove_on_exit=metrics_dir,
    ).run()


def _check_address_free(host: str, port: int) -> None:
    """Refuse at once an address that cannot be listened on: gunicorn would try for five
    seconds, after "Serving on ...", and end on "Can't connect" with no word of what to do."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
            probe.bind(address)
    except OSError as error:
        # Said for `make run` too, whose options are HOST= and PORT= (make refuses --port).
        if error.errno == errno.EADDRINUSE:
            other = port + 1 if port < 65535 else port - 1
            raise click.ClickException(
                f"Port {port} of {host} is already in use (another `product-importer serve`?): "
                f"stop what listens there, or give another: --port {other} (make run PORT={other})."
            ) from error
        raise click.ClickException(
            f"Cannot listen on {host}:{port} ({error.strerror or error}): give an address of "
            "this machine with --host (127.0.0.1, or 0.0.0.0 for every one), and a port from "
            "1024 with --port unless running as root (make run HOST=... PORT=...)."
        ) from error


def _say(app, message: str) -> None:
    """Tell the person at the terminal; with LOG_FORMAT=json, a log line (every line is JSON)."""
    if app.config["LOG_FORMAT"] == "json":
        log.info("%s", message)
    else:
        click.echo(message)


def _warn_if_instance_open(app) -> None:
    """Warn when other users of the machine may read the instance folder: one made before it
    was made private (0700) keeps its mode, and it holds the secret key (and, embedded, the
    database with the webhook secrets, and the uploads)."""
    folder = app.instance_path
    mode = stat.S_IMODE(os.stat(folder).st_mode)
    if mode & 0o077:
        who = "every user of this machine" if mode & 0o007 else "the folder's group"
        log.warning(
            "%s may read the instance folder %s (mode %o), which holds the secret key and,"
            " embedded, the database: run chmod 700 %s",
            who, folder, mode, shlex.quote(folder),
        )  # fmt: skip


def _shown(host: str) -> str:
    """The address a link names for a server bound to `host`: a name the Host check allows
    (it takes no IPv6 address: the loopback's is named localhost), else the address."""
    if host in WILDCARDS:
        return "127.0.0.1"
    return "localhost" if host == "::1" else _bracketed(host)


def _bracketed(host: str) -> str:
    """`host` as an address with a port names it: an IPv6 one in brackets."""
    return f"[{host}]" if ":" in host else host


def _announce_setup_link(origin: str) -> None:
    """While no account exists, print (and log) a one-time link that creates the first admin."""
    token = accounts_service.new_setup_link_token(db.session)
    db.session.commit()
    if token:
        link = f"{origin}/setup?token={token}"
        if current_app.config["LOG_FORMAT"] != "json":
            click.secho(f"No account exists yet. Create the first admin here: {link}", bold=True)
        log.warning("no account exists yet; create the first admin at %s", link)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", default=8, show_default=True, help="Threads for tasks.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(concurrency: int, celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker for every queue (imports, webhooks, default)."""
    load_env_file()
    # Celery reads the variable itself too: a blank one would be RabbitMQ on a host named " "
    os.environ["CELERY_BROKER_URL"] = os.environ.get("CELERY_BROKER_URL", "").strip()
    if not os.environ["CELERY_BROKER_URL"]:  # Celery would listen on memory:// alone
        raise click.ClickException(
            "A worker needs CELERY_BROKER_URL, the broker the web app sends its work to "
            "(redis://127.0.0.1:6379/0, say). Without one (the embedded default), "
            "`product-importer serve` runs the worker itself."
        )
    from .worker import celery_app, flask_app

    with flask_app.app_context():  # out of reach, it would log a traceback every second
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        schema.check_current()  # as on tables that are not there yet
    quiet = ["--quiet"] if flask_app.config["LOG_FORMAT"] == "json" else []  # no banner
    argv = [
        *quiet,
        "worker",
        "--queues",
        "imports,webhooks,default",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        flask_app.config["LOG_LEVEL"],
        # Celery's startup sync with the other workers (revoked tasks, clocks) waits a second
        # for their answers: nothing here uses it, every task's work is claimed in the database
        "--without-mingle",
        *celery_args,
    ]
    celery_app.worker_main(argv)


@main.command("import", short_help="Import a CSV file here or on a server; plan, or apply a plan.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option(
    "--plan", is_flag=True, help="Compare with the catalog, change nothing; print counts."
)
@click.option(
    "--apply",
    "apply_id",
    type=click.IntRange(1, MAX_ID),  # SQLite takes no larger number (a traceback, not a 404)
    help="Apply the plan with this job id, as the command line (no account, like FILE), "
    "with the options it was made with (it takes no others).",
)
@click.option("--max-invalid", help="Fail past this many invalid rows: a count (100) or 1%.")
@click.option("--columns", help='Map fields to header names: \'{"sku": "Item Code"}\'.')
@click.option(
    "--rejected",
    "rejected_to",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the rejected rows here, replacing the file (default: beside FILE, as "
    "NAME-rejected.csv; for a pipe or --apply, import-ID-rejected.csv here).",
)
@click.option(
    "--url",
    help="A remote server (https://...): upload there with the resumable protocol and import.",
)
@click.option(
    "--token",
    envvar="PRODUCT_IMPORTER_TOKEN",
    help="A personal access token (editor) of the remote server; or PRODUCT_IMPORTER_TOKEN.",
)
def import_file(path, plan, apply_id, max_invalid, columns, rejected_to, url, token) -> None:
    """Import a CSV file from a terminal, with a progress bar: here, or on a server (--url);
    or plan it, or apply a plan."""
    from .imports.cli import apply_from_terminal, options_problem, run_import_from_terminal

    if (path is None) == (apply_id is None):
        raise click.UsageError("Give a FILE to import, or --apply ID of a plan (not both).")
    given = {"plan": plan or None, "max_invalid": max_invalid, "columns": columns}
    ignored = [f"--{name.replace('_', '-')}" for name, value in given.items() if value is not None]
    if apply_id is not None and ignored:  # a plan runs with the options it was made with
        raise click.UsageError(f"--apply ID takes no other options (given: {', '.join(ignored)}).")
    if token and not url:
        _token_without_url(apply_id)
    if problem := options_problem(given):  # before a file is sent or copied anywhere
        click.echo(f"Error: {problem}", err=True)
        raise SystemExit(2)
    if url:
        from .imports.remote import import_remotely

        if not token or path is None:
            raise click.UsageError("--url needs a FILE and --token (or PRODUCT_IMPORTER_TOKEN).")
        if rejected_to:  # the server keeps them: the addresses printed after the table
            raise click.UsageError("--rejected is for an import here; leave it out with --url.")
        raise SystemExit(import_remotely(path, url, token, given))
    _check_rejected_to(rejected_to, path)
    app = create_app()
    logs.quiet_unless_asked()  # the bar and the summary, not the step log, unless asked
    with app.app_context():
        schema.upgrade()
        if apply_id is not None:
            raise SystemExit(apply_from_terminal(apply_id, rejected_to))
        raise SystemExit(run_import_from_terminal(path, given, rejected_to))


def _check_rejected_to(rejected_to: str | None, path: str | None) -> None:
    """Refuse, before anything is imported, a --rejected that is FILE itself (it would be
    replaced) or in a folder that does not exist."""
    if not rejected_to:
        return
    if path and os.path.exists(rejected_to) and os.path.samefile(rejected_to, path):
        raise click.UsageError(f"--rejected {rejected_to} is FILE itself: name another file.")
    folder = os.path.dirname(os.path.abspath(rejected_to))
    if not os.path.isdir(folder):
        raise click.UsageError(f"--rejected {rejected_to}: the folder {folder} does not exist.")


def _token_without_url(apply_id: int | None) -> None:
    """A token is for a remote server: refuse one given on the command line without --url
    (it would be ignored, and the file imported into this machine's database instead); one
    from the environment is said, and the import goes on here."""
    source = click.get_current_context().get_parameter_source("token")
    if source == ParameterSource.COMMANDLINE and apply_id is not None:
        raise click.UsageError(
            "--token is for a remote server, and --apply ID applies a plan of this machine's "
            "database: leave --token out."
        )
    if source == ParameterSource.COMMANDLINE:
        raise click.UsageError(
            "--token is for a remote server: add --url https://... (the server to import "
            "into), or leave --token out to import into this machine's database."
        )
    click.echo(
        "Note: PRODUCT_IMPORTER_TOKEN is set, but without --url the file is imported into "
        "this machine's database. Add --url https://... to import into a remote server.",
        err=True,
    )


@main.group()
def users() -> None:
    """Manage accounts (for provisioning without a browser)."""


@users.command("create", short_help="Create an account, with a password printed or piped.")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (in a terminal: asked for twice, not shown).",
)
def create_user(email: str, role: str, password_stdin: bool) -> None:
    """Create an account; without --password-stdin, print a new password (once)."""
    password = _password_from_stdin(email) if password_stdin else None
    shown = password is None
    with _cli_app():
        password = credentials.new_password() if shown else password
        user = accounts_service.create_user(db.session, email=email, role=role, password=password)
        audit.record(db.session, "user.created", user.email, role=user.role, via="cli")
        db.session.commit()
        click.echo(f"Created {user.email} ({user.role}).", err=True)
    if shown:
        said = "Password (shown only once; it works until changed on the account page)"
        click.echo(f"{said}: {password}", err=True)


def _password_from_stdin(email: str) -> str:
    """The password on standard input: a line piped in, or typed unseen after a prompt."""
    if sys.stdin.isatty():
        return click.prompt(
            f"Password for {email} (at least 10 characters)",
            hide_input=True,
            confirmation_prompt=True,
            err=True,
        )
    # An empty line is a password too short, refused: not a random one that no one is shown.
    return sys.stdin.readline().rstrip("\r\n")


@main.group()
def tokens() -> None:
    """Manage personal access tokens (for scripts and other systems)."""


@tokens.command("create", short_help="Create a token for an account and print it.")
@click.argument("email")
@click.option("--name", required=True, help="What the token is for.")
@click.option("--role", type=click.Choice(ROLES), help="At most the account's role (default).")
@click.option("--expires-days", type=click.IntRange(1, 3650), help="Default: never expires.")
def create_token(email: str, name: str, role: str | None, expires_days: int | None) -> None:
    """Create a token for an account and print it alone on standard output."""
    with _cli_app():
        owner = accounts_service.find_user(db.session, email)
        if owner is None:
            raise click.ClickException(
                f"No account {email}. Create it first: "
                f"product-importer users create {shlex.quote(email)} --role viewer|editor|admin"
            )
        if not owner.active:
            raise click.ClickException(
                f"The account {email} is deactivated: an admin reactivates it on the Users page."
            )
        token, secret = accounts_service.create_token(
            db.session, owner, name=name, role=role or owner.role, expires_days=expires_days
        )
        details = {"role": token.role, "owner": owner.email, "via": "cli"}
        audit.record(db.session, "token.created", token.name, **details)
        db.session.commit()
    click.echo(secret)


@contextmanager
def _cli_app():
    """An app context on a migrated database; domain errors become clean CLI errors."""
    with create_app().app_context():
        schema.upgrade()
        try:
            yield
        except AppError as error:
            raise click.ClickException(said(error.message, error.details)) from error
