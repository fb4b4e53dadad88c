"""`product-importer import FILE --url URL --token TOKEN`: import into a remote server over the
resumable (tus) upload, which survives a flaky link: a failed piece is retried from the offset
the server has. The import is asked for as soon as the upload exists, so the server reads the
rows while they arrive and applies them after the last byte. Between pieces it looks at the
import: one that failed on the file's own bytes stops the upload, as the upload page does.
The bars and the summary are the local command's (`display.py`), read from the job's JSON.
"""

import contextlib
import json
import os
import time
from urllib.parse import urlsplit

import click
import httpx
import requests
from rich.console import Console
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from ..errors import said
from . import display
from .states import FINISHED, INTERRUPTED, Status
from .views import size_label

PIECE_BYTES = 8 * 1024 * 1024  # one PATCH each; a dropped one costs at most this much again
RETRIES = 10
RETRY_DELAY_SECONDS = 3
POLL_SECONDS = 0.5


def import_remotely(path: str, url: str, token: str, given: dict) -> int:
    """Upload `path` to the server at `url` and import it there with the `given` options
    (plan, max_invalid, columns as JSON text); return an exit code."""
    options = _options(given)
    base = _server_address(url)
    if not os.path.isfile(path):  # a pipe: the upload says its length before its first byte
        raise click.UsageError(
            f"{path} is not a regular file (a pipe?): --url sends a file whose size is known. "
            "Save it to a file first, or import it here without --url."
        )
    headers = {"Authorization": f"Bearer {token}"}
    started: dict = {}  # the upload's address and the job, once the server has them
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        try:
            return _upload_and_import(http, base, path, options, started)
        except KeyboardInterrupt:
            return _cancel_on_interrupt(http, base, started)


def _upload_and_import(http: httpx.Client, base: str, path: str, options: dict, started) -> int:
    """Send the file, follow its import to the end, report it; note in `started` what exists."""
    size = os.path.getsize(path)
    try:
        uploader = _start_upload(base, {"Authorization": http.headers["Authorization"]}, path)
        started["upload"] = uploader.url
        job = started["job"] = _ask_for_import(http, uploader.url.rsplit("/", 1)[-1], options)
        failed = _send(uploader, size, lambda: _failed_for_good(http, job["id"]))
    except (TusCommunicationError, TusUploadFailed) as error:
        raise click.ClickException(_tus_error(error, base)) from error
    if failed:
        _stop_upload(http, uploader.url)
        click.echo(
            f"The upload was stopped after {size_label(uploader.offset)} of "
            f"{size_label(size)}: the import failed on the file's own bytes, and the rest "
            "of the file could not change this."
        )
        return _report(failed, base)
    return _report(_watch(http, base, job["id"]), base)


def _cancel_on_interrupt(http: httpx.Client, base: str, started: dict) -> int:
    """Ctrl-C: cancel the server's import and remove its upload, as the page's Cancel does; an
    import that ended meanwhile is reported as it ended."""
    click.echo("", err=True)  # off the progress bar's line
    job = started.get("job")
    if job is None:  # no import yet: at most an upload, removed
        if "upload" in started:
            _stop_upload(http, started["upload"])
        click.echo("Stopped (Ctrl-C) before the import was asked for: nothing changed.", err=True)
        return INTERRUPTED
    answer = http.post(f"/api/imports/{job['id']}/cancel")
    if answer.status_code not in (202, 409):  # 409: it had ended; its outcome is reported
        raise click.ClickException(
            f"Ctrl-C: import {job['id']} could not be cancelled: {_api_error(answer)} "
            f"Cancel it on its page: {base}/imports/{job['id']}"
        )
    _stop_upload(http, started["upload"])
    if answer.status_code == 202:
        click.echo(f"Cancelling import {job['id']} on the server (Ctrl-C)...", err=True)
    ended = _watch(http, base, job["id"])
    code = _report(ended, base)
    return INTERRUPTED if ended["status"] == Status.CANCELLED else code


def _server_address(url: str) -> str:
    """The server's address as given, checked: http(s) and a host, else a usage error."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.UsageError(
            f"--url {url!r} is not a server's address: give it with http:// or https://, "
            "as the browser shows it (https://products.example.com)."
        )
    return url.strip().rstrip("/")


def _start_upload(base: str, headers: dict, path: str):
    client = tus.TusClient(f"{base}/api/uploads", headers=headers)
    uploader = client.uploader(
        file_path=path,
        chunk_size=PIECE_BYTES,
        metadata={"filename": os.path.basename(path)},
        retries=0,  # retried by _send_piece, which knows which failures a retry can mend
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


def _send(uploader, size: int, failed_for_good) -> dict | None:
    """Send the pieces, with a bar of the bytes sent; before each piece but the first, ask
    `failed_for_good()`: the job it returns (an import its bytes failed) stops the upload, and
    is returned."""
    with display.progress_bar(Console(stderr=True)) as bar:
        task = bar.add_task("Upload", total=max(size, 1), phase="Uploading", figures="")
        while uploader.offset < size:
            sent = f"{size_label(uploader.offset)} of {size_label(size)} sent"
            display.show(bar, task, "Uploading", [sent], uploader.offset)
            # A look per piece (8 MiB) costs little next to the piece it may spare.
            if uploader.offset and (failed := failed_for_good()):
                return failed
            _send_piece(uploader)
        display.show(bar, task, "Uploaded", [f"{size_label(size)} sent"], max(size, 1))
    return None


def _send_piece(uploader) -> None:
    """Send the next piece; what a retry can mend (a dropped connection, a server error, a
    piece still arriving) is retried from the server's offset up to RETRIES times. A refusal
    (a file the server will not take) is raised at once: sending it again changes nothing."""
    for attempt in range(RETRIES + 1):
        try:
            if attempt:
                uploader.offset = uploader.get_offset()
            uploader.upload_chunk()
            return
        except requests.RequestException as error:  # get_offset lets the library's through
            failure = TusCommunicationError(error)
        except TusCommunicationError as error:
            failure = error
        if attempt == RETRIES or not _worth_retrying(failure):
            raise failure
        time.sleep(RETRY_DELAY_SECONDS)


def _worth_retrying(failure: TusCommunicationError) -> bool:
    """Whether sending again may go through: no answer, a server error, an offset that moved
    (409) or a piece still arriving (423), not a refusal such as 413 or 422."""
    status = failure.status_code
    return status is None or status >= 500 or status in (409, 423, 429)


def _failed_for_good(http: httpx.Client, job_id: int) -> dict | None:
    """The job if it failed on the file's own bytes, whatever the rest holds (the server says
    why in `retry_refusal`: binary data, a line too long...); else None. An import that lacks a
    column is not: the column mapping's retry reads the whole file, so it must arrive."""
    try:
        response = http.get(f"/api/imports/{job_id}")
        job = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return None  # not answered now: the upload goes on, and the job is looked at again
    return job if job.get("status") == Status.FAILED and job.get("retry_refusal") else None


def _stop_upload(http: httpx.Client, url: str) -> None:
    """Remove the upload (tus termination), as the page's Cancel does: nothing of it is left
    to resume, and the server keeps the bytes the failed import read."""
    with contextlib.suppress(httpx.HTTPError):
        http.delete(url, headers={"Tus-Resumable": "1.0.0"})


def _watch(http: httpx.Client, base: str, job_id: int) -> dict:
    """Show the import's progress, as the local command does, until it finishes; return the
    final job."""
    with display.progress_bar(Console(stderr=True)) as bar:
        task = bar.add_task(f"Import {job_id}", total=100, phase="Queued", figures="")
        while True:
            job = http.get(f"/api/imports/{job_id}").json()
            if job["status"] in FINISHED:  # the server rebuilds the search index on its own
                display.show_job(bar, task, job | {"search_index": None})
                return job
            display.show_job(bar, task, job)
            time.sleep(POLL_SECONDS)


def _report(job: dict, base: str) -> int:
    """Print the outcome as the local command does, with where a person gets the rejected rows
    (and for a plan, where to review and apply it); return the exit code."""
    page = f"{base}/imports/{job['id']}"
    after = ()
    if job["rows_invalid"]:  # each address at the end of its line, to copy whole
        after = (
            f"Rejected rows, to fix and import again: on the import's page {page}",
            f"or with your token: {base}/api/imports/{job['id']}/rejected.csv",
        )
    return display.report(Console(), job, [], f"Review and apply it: {page}", after)


def _api_error(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return said(error["message"], error.get("details"))
    except (ValueError, KeyError, TypeError):
        return f"The server answered {response.status_code}."


def _tus_error(failure: TusCommunicationError, base: str) -> str:
    """What went wrong with the upload, as a person reads it: the server's message if it sent
    one, else its status (and error code), never Python's spelling of its JSON."""
    if failure.status_code == 404:  # the app's own 404 says "check your spelling" alone
        return (
            f"The upload failed: nothing at {base}/api/uploads answered it (404). Give --url "
            "as the server's address alone, without a page's path (https://products.example.com)."
        )
    content = failure.response_content or b""
    body = None
    try:
        body = json.loads(content).get("error")
        return said(body["message"], body.get("details"))
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    if failure.status_code is None:
        return f"The upload failed: {_unreachable(str(failure), base)}"
    code = body.get("code") if isinstance(body, dict) else None
    named = f" ({code})" if isinstance(code, str) else ""
    return f"The upload failed: the server answered {failure.status_code}{named}."


# What a connection error's text says (urllib3's, through requests), as a person would.
NO_ANSWER = (
    (("NameResolutionError", "Name or service not known"), "its host name was not found"),
    (("Connection refused",), "nothing answered there (connection refused)"),
    (("timed out", "Timeout"), "it did not answer in time"),
    (("SSLError", "CERTIFICATE_VERIFY_FAILED"), "its TLS certificate was not accepted"),
)


def _unreachable(error: str, base: str) -> str:
    """Why the server at `base` could not be reached, and what to check."""
    why = _no_answer(error)
    return f"could not reach {base}: {why}. Check --url, and that the server is running there."


def _no_answer(error: str) -> str:
    """A connection error's text (urllib3's) as a person would say it."""
    return next((said for marks, said in NO_ANSWER if any(m in error for m in marks)), error)
