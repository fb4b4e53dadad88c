"""`product-importer import FILE`: the same import engine, from a terminal, with a progress bar."""

import os
import shutil
import threading
import time

import click
from flask import current_app

from ..errors import AppError
from ..extensions import db
from . import options, plans, queue, service, uploads
from .states import SUCCEEDED, Status


def run_import_from_terminal(path: str, given: dict | None = None) -> int:
    """Queue `path` like an upload, run the queue here, show progress; return an exit code.

    `given` holds the options as typed (plan, max_invalid, columns).
    """
    try:
        chosen = options.Options(**options.parse(given or {}))
    except AppError as error:
        click.echo(f"Error: {error.message} {error.details}", err=True)
        return 2
    stored = _store(path)
    try:
        uploads.check(stored, os.path.getsize(stored))
    except AppError as error:
        os.remove(stored)
        click.echo(f"Error: {error.message}", err=True)
        return 2
    job = service.create(
        db.session,
        filename=os.path.basename(path),
        file_path=stored,
        bytes_total=os.path.getsize(stored),
        created_by=None,
        sha256=uploads.sha256(stored),
        options=chosen,
    )
    db.session.commit()
    return _run_and_watch(job.id)


def apply_from_terminal(job_id: int) -> int:
    """Apply a plan, run the queue here, show progress; return an exit code."""
    try:
        plans.apply(db.session, job_id, created_by=None)
    except AppError as error:
        click.echo(f"Error: {error.message}", err=True)
        return 2
    db.session.commit()
    return _run_and_watch(job_id)


def _run_and_watch(job_id: int) -> int:
    app = current_app._get_current_object()
    threading.Thread(target=_run_queue, args=(app,), daemon=True).start()
    return _watch(job_id)


def _store(path: str) -> str:
    """Copy the file into the upload folder: the retention cleanup may remove it later."""
    stored = uploads.new_path(path)
    shutil.copyfile(path, stored)
    return stored


def _run_queue(app) -> None:
    """Run the queue in this process unless a worker is already running it."""
    with app.app_context():
        queue.drain_queue()


def _watch(job_id: int) -> int:
    """Show a progress bar until the job finishes; print its outcome."""
    with click.progressbar(length=100, label=f"Import {job_id}", show_eta=False) as bar:
        shown = 0
        while True:
            db.session.rollback()
            job = service.get(db.session, job_id)
            percent = int(job.percent)
            bar.label = f"{job.message[:40]:<40}"
            bar.update(max(0, percent - shown))
            shown = max(shown, percent)
            if job.finished:
                break
            time.sleep(0.5)
    _wait_for_search_index(job)
    return _report(job)


def _wait_for_search_index(job) -> None:
    """Stay while this process builds the search index the import left for after it."""
    if job.search_index != "refreshing":
        return
    click.echo("Refreshing the search index...")
    while job.search_index == "refreshing":
        time.sleep(0.5)
        db.session.rollback()
        job = service.get(db.session, job.id)


def _report(job) -> int:
    would = "would be " if job.status == Status.PLANNED else ""
    click.echo(
        f"{job.status}: {job.rows_processed:,} rows read, {job.created:,} {would}created, "
        f"{job.updated:,} {would}updated, {job.unchanged:,} unchanged, "
        f"{job.rows_invalid:,} rejected"
    )
    if job.status == Status.PLANNED:
        click.echo(f"Nothing has changed yet. Apply it: product-importer import --apply {job.id}")
    for warning in job.warnings or []:
        click.echo(f"Warning: {warning}")
    if job.error:
        click.echo(f"Error: {job.error}", err=True)
    return 0 if job.status in SUCCEEDED | {Status.PLANNED} else 1
