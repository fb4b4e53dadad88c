"""`product-importer import FILE --url URL --token TOKEN`: import into a remote server over the
resumable (tus) upload, which survives a flaky link: a failed piece is retried from the offset
the server has. The import is asked for as soon as the upload exists, so the server reads the
rows while they arrive and applies them after the last byte.
"""

import json
import os
import time

import click
import httpx
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from ..errors import said
from .states import FINISHED, SUCCEEDED, Status

PIECE_BYTES = 8 * 1024 * 1024  # one PATCH each; a dropped one costs at most this much again
RETRIES = 10
RETRY_DELAY_SECONDS = 3


def import_remotely(path: str, url: str, token: str, given: dict) -> int:
    """Upload `path` to the server at `url` and import it there with the `given` options
    (plan, max_invalid, columns as JSON text); return an exit code."""
    options = _options(given)
    base = url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        try:
            uploader = _start_upload(base, headers, path)
            job = _ask_for_import(http, uploader.url.rsplit("/", 1)[-1], options)
            _send(uploader, os.path.getsize(path))
        except (TusCommunicationError, TusUploadFailed) as error:
            raise click.ClickException(_tus_error(error)) from error
        return _report(_watch(http, job["id"]), base)


def _start_upload(base: str, headers: dict, path: str):
    client = tus.TusClient(f"{base}/api/uploads", headers=headers)
    uploader = client.uploader(
        file_path=path,
        chunk_size=PIECE_BYTES,
        metadata={"filename": os.path.basename(path)},
        retries=RETRIES,
        retry_delay=RETRY_DELAY_SECONDS,
    )
    uploader.set_url(uploader.create_url())
    return uploader


def _options(given: dict) -> dict:
    """The import options for the server's JSON: those given, `columns` as an object."""
    options = {name: value for name, value in given.items() if value is not None}
    if "columns" in options:
        try:
            options["columns"] = json.loads(options["columns"])
        except ValueError as error:
            raise click.UsageError(f"--columns is not JSON: {error}") from error
    return options


def _ask_for_import(http: httpx.Client, upload_id: str, options: dict) -> dict:
    response = http.post("/api/imports", json={"upload": upload_id, **options})
    if response.status_code != 202:
        raise click.ClickException(_api_error(response))
    return response.json()


def _send(uploader, size: int) -> None:
    """Send the pieces, with a progress bar of bytes sent."""
    with click.progressbar(length=size, label="Uploading", show_pos=True) as bar:
        while uploader.offset < size:
            before = uploader.offset
            uploader.upload_chunk()
            bar.update(uploader.offset - before)


def _watch(http: httpx.Client, job_id: int) -> dict:
    """Show the import's progress until it finishes; return the final job."""
    with click.progressbar(length=100, label=f"Import {job_id}", show_eta=False) as bar:
        shown = 0
        while True:
            job = http.get(f"/api/imports/{job_id}").json()
            bar.label = f"{job['message'][:40]:<40}"
            bar.update(max(0, int(job["percent"]) - shown))
            shown = max(shown, int(job["percent"]))
            if job["status"] in FINISHED:
                return job
            time.sleep(0.5)


def _report(job: dict, base: str) -> int:
    """Print the outcome (for a plan, what applying it would do, and where); return the exit
    code: 0 for a completed import or a plan."""
    planned = job["status"] == Status.PLANNED
    click.echo(
        f"{job['status']}: {job['rows_processed']:,} rows read, "
        f"{'would be ' if planned else ''}{job['created']:,} created, "
        f"{job['updated']:,} updated, {job['unchanged']:,} unchanged, "
        f"{job['rows_invalid']:,} rejected"
    )
    for warning in job["warnings"]:
        click.echo(f"Warning: {warning}")
    if planned:
        click.echo(f"Nothing has changed yet. Review and apply it: {base}/imports/{job['id']}")
    if job["error"]:
        click.echo(f"Error: {job['error']}", err=True)
    return 0 if job["status"] in SUCCEEDED | {Status.PLANNED} else 1


def _api_error(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return said(error["message"], error.get("details"))
    except (ValueError, KeyError, TypeError):
        return f"The server answered {response.status_code}."


def _tus_error(failure: TusCommunicationError) -> str:
    """What went wrong with the upload, as a person reads it: the server's message if it sent
    one, else its status (and error code), never Python's spelling of its JSON."""
    content = failure.response_content or b""
    body = None
    try:
        body = json.loads(content).get("error")
        return said(body["message"], body.get("details"))
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    if failure.status_code is None:
        return f"The upload failed: {failure}"
    code = body.get("code") if isinstance(body, dict) else None
    named = f" ({code})" if isinstance(code, str) else ""
    return f"The upload failed: the server answered {failure.status_code}{named}."
