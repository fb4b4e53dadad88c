"""`product-importer import FILE --url URL --token TOKEN`: import into a remote server over the
resumable (tus) upload, which survives a flaky link: a failed piece is retried from the offset
the server has. The import is asked for as soon as the upload exists, so the server reads the
rows while they arrive and applies them after the last byte. Between pieces it looks at the
import: one that failed on the file's own bytes stops the upload, as the upload page does.
The bars and the summary are the local command's (`display.py`), read from the job's JSON; a
server out of reach for a while (a restart, a proxy's 502) is waited for, then said.
"""

import contextlib
import io
import json
import math
import os
import shlex
import ssl
import time
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

import click
import httpx
import requests
from rich.console import Console
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from urllib3.exceptions import NameResolutionError, NewConnectionError, ProtocolError

from .. import tls
from ..errors import said
from ..timeutil import spoken_wait
from ..webhooks.sender import parse_retry_after
from . import display
from .states import FINISHED, INTERRUPTED, Status
from .uploads import shown_name
from .views import size_label

PIECE_BYTES = 8 * 1024 * 1024  # one PATCH each; a dropped one costs at most this much again
RETRIES = 10
RETRY_DELAY_SECONDS = 3
ANSWER_SECONDS = 60  # the longest wait for the server's answer to an upload's request
POLL_SECONDS = 0.5
# A server restarting, or a proxy answering 502 meanwhile, is asked again every ASK_AGAIN_SECONDS
# for this long before the command gives up: on creating the upload (when the request did not
# reach the app), or on watching the import (it goes on there); each look waits at most
# LOOK_SECONDS.
PATIENCE_SECONDS = 60
ASK_AGAIN_SECONDS = 1
LOOK_SECONDS = 10
# The answers of a server out of reach for a while, asked again: a proxy's while the app
# restarts (502, 503, 504), a rate limit (429). Any other is the server's word, said at once
# (a 507 for a disk nearly full, a 500 for a bug): asking again would not change it.
AWAY = (429, 502, 503, 504)
# Of those, the answers that say the app most likely never had the request: a proxy that
# could not reach it (502, 503), a rate limit that refused it first (429). A 504 does not: the
# app may have done what was asked after the proxy stopped waiting. Nor, rarely, does a 502
# (an app that died before it answered): a creation asked again then leaves an unused upload,
# removed with the others after UPLOAD_RETENTION_HOURS.
NOT_RECEIVED = (429, 502, 503)
# The answers whose Retry-After (seconds, or an HTTP date) says when to ask again: a rate
# limit's, a proxy's or a server's in maintenance. It is waited for in place of the command's
# own pause (never less), within PATIENCE_SECONDS of the outage's start: one that would end past
# them is said at once (_pause), since asking again sooner than asked is pointless. (The
# server's own 429, its MAX_QUEUED_IMPORTS quota on asking for the import, has none: that is
# said at once, as any refusal of it.)
ASKS_TO_WAIT = (429, 503)
# The answers that refuse the file itself (413: too large; 422: empty, say), as the upload is
# created or its import asked for: exit 2, as the local command's refusal of such a file.
REFUSED = (413, 422)


class Refused(click.ClickException):
    """A refusal of the file itself (REFUSED, as its upload starts or at its last byte), or
    of an address that redirects elsewhere (`_redirected`). Exit 2, as a wrong option's and
    as the same file imported here."""

    exit_code = 2


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
    if not token.strip().isprintable():  # a header cannot hold it: requests would refuse it
        raise click.UsageError(
            "--token holds a line break or another control character (pasted with it?): give "
            "the token alone."
        )
    headers = {"Authorization": f"Bearer {token.strip()}"}
    started: dict = {}  # the upload's address and the job, once the server has them
    cas = tls.trusted_cas()
    with (
        httpx.Client(base_url=base, headers=headers, timeout=60, verify=_verify(cas)) as http,
        _answered_in_time(cas[1] if cas else None) as answers,
    ):
        try:
            return _upload_and_import(http, base, path, options, started, answers)
        except KeyboardInterrupt:
            return _cancel_on_interrupt(http, base, started)


def _upload_and_import(
    http: httpx.Client, base: str, path: str, options: dict, started, answers: "LastAnswer"
) -> int:
    """Send the file, follow its import to the end, report it; note in `started` what exists.
    `answers` has the last answer to the upload's requests."""
    size = os.path.getsize(path)
    try:
        headers = {"Authorization": http.headers["Authorization"]}
        uploader = _start_upload(base, headers, path, answers)
        started["upload"] = uploader.url
        job = started["job"] = _ask_for_import(http, uploader.url.rsplit("/", 1)[-1], options)
        failed = _send(uploader, size, lambda: _failed_for_good(http, job["id"]), answers)
        started["sent"] = not failed  # every byte: the import no longer waits for the rest
    except (TusCommunicationError, TusUploadFailed) as error:
        if "job" in started and _worth_retrying(error):  # retried, in vain: not a refusal
            raise _gave_up_uploading(
                http, base=base, started=started, sent=uploader.offset, size=size, failure=error
            ) from error
        if "job" in started and error.status_code in (401, 403):  # it cannot be cancelled
            raise click.ClickException(_refused_midway(error, base, job["id"])) from error
        if "job" in started:  # a piece refused for good: the rest will never come
            raise _refused_piece(http, base, started, error) from error
        if error.status_code in REFUSED:  # the file itself, before a byte of it was sent
            raise Refused(_tus_error(error, base)) from error
        raise click.ClickException(_tus_error(error, base)) from error
    if failed:
        return _stopped_on_its_bytes(
            http, base=base, started=started, uploader=uploader, size=size, failed=failed
        )
    ended = _watch(http, base, job["id"])
    code = _report(ended, base)
    # the token is never printed: the command takes it from where a shell keeps it
    token = '--token "$PRODUCT_IMPORTER_TOKEN"'
    again = f"product-importer import {shlex.quote(path)} --url {shlex.quote(base)} {token}"
    display.say_next_step(ended, again, f"{base}/imports/{ended['id']}", options)
    return code


def _stopped_on_its_bytes(http, *, base: str, started: dict, uploader, size: int, failed: dict):
    """Remove the upload of an import that failed on the file's own bytes; report it."""
    ended = _end_there(http, started)
    click.echo(
        f"The upload was stopped after {size_label(uploader.offset)} of {size_label(size)}: "
        "the import failed on the file's own bytes, and the rest of the file could not change "
        f"this.{'' if ended.removed else ' ' + _kept(started['upload'])}"
    )
    return _report(failed, base)


def _gave_up_uploading(http, *, base: str, started: dict, sent: int, size: int, failure):
    """The error of an upload the server stopped taking for RETRIES tries, or for longer than
    the command waits: its import cancelled and its upload removed where the server answers
    that (a new run starts afresh), else where to end them."""
    stopped = f"The upload stopped at {size_label(sent)} of {size_label(size)}: {base} "
    if isinstance(failure, GaveUpOnPiece):
        why = _failure_why(failure)
        stopped += failure.out.said(
            why, not_done="did not take the rest", asked_for="to be sent the rest"
        )
    else:
        stopped += f"did not take the rest in {RETRIES + 1} tries ({_failure_why(failure)})."
    then = _what_became(_end_there(http, started), base, started)
    return click.ClickException(f"{stopped} Run this command again once the server answers. {then}")


def _refused_piece(
    http: httpx.Client, base: str, started: dict, failure: TusCommunicationError
) -> click.ClickException:
    """The error of a piece the server refused for good (a 507, a 413...): its words, then
    what became of its import and upload, ended here (cancelled, removed) since the rest of
    the file will never come; or, where that failed, where they are to end them."""
    then = _what_became(_end_there(http, started), base, started)
    refusal = Refused if failure.status_code in REFUSED else click.ClickException
    return refusal(f"{_tus_error(failure, base)} {then}")


class Ended(NamedTuple):
    """What became of the import and upload _end_there ended: the cancel's status (None if
    there was no import, or no answer), why it was not cancelled (None if it was, or had
    ended), and whether the upload is gone."""

    cancel: int | None
    why_not: str | None
    removed: bool


def _end_there(http: httpx.Client, started: dict) -> Ended:
    """Cancel the server's import, if asked for, and remove its upload, as the page's Cancel
    does (nothing of it is left to resume); return what happened."""
    cancel, why_not = None, None
    if job := started.get("job"):
        try:
            answer = http.post(f"/api/imports/{job['id']}/cancel", timeout=LOOK_SECONDS)
        except httpx.HTTPError as error:
            why_not = f"{str(http.base_url).rstrip('/')} did not answer ({_briefly(error)})."
        else:
            cancel = answer.status_code
            why_not = None if cancel in (202, 409) else _api_error(answer)  # 409: it ended
    # removed even where the cancel failed: an upload removed ends its import too (it fails)
    return Ended(cancel, why_not, _stop_upload(http, started["upload"]))


def _what_became(ended: Ended, base: str, started: dict) -> str:
    """What became of the import and upload ended (`ended`), in sentences; where one is left,
    its address, to end it there."""
    job_id, url = started["job"]["id"], started["upload"]
    import_now = {202: f"import {job_id} was cancelled", 409: f"import {job_id} had ended"}
    if ended.removed:  # an upload removed ends its import too: it fails, its bytes gone
        now = import_now.get(ended.cancel, f"import {job_id} ends with it")
        return f"The upload was removed, and {now}."
    if ended.cancel in import_now:
        return f"{_kept(url)} {import_now[ended.cancel].capitalize()}."
    goes_on = "goes on there" if started.get("sent") else "waits for the rest of it"
    return f"{_kept(url)} Import {job_id} {goes_on}: cancel it on its page {base}/imports/{job_id}"


def _kept(url: str) -> str:
    """That the upload at `url` could not be removed, and how it is."""
    return (
        f"The upload could not be removed: it stays at {url} (a tus DELETE there removes it; "
        "else the server does once it expires)."
    )


def _refused_midway(failure: TusCommunicationError, base: str, job_id: int) -> str:
    """The token refused half-way (revoked, expired): the server's words, and where the import
    that waits for the rest of the file can be cancelled, as this command no longer can."""
    return (
        f"{_tus_error(failure, base)} Import {job_id} waits on the server for the rest of the "
        f"file: cancel it on its page {base}/imports/{job_id}"
    )


def _cancel_on_interrupt(http: httpx.Client, base: str, started: dict) -> int:
    """Ctrl-C: cancel the server's import and remove its upload, as the page's Cancel does; an
    import that ended meanwhile is reported as it ended."""
    click.echo("", err=True)  # off the progress bar's line
    job = started.get("job")
    ended = _end_there(http, started) if "upload" in started else Ended(None, None, True)
    if job is None:  # no import yet: at most an upload, removed
        left = "" if ended.removed else f" {_kept(started['upload'])}"
        click.echo(
            f"Stopped (Ctrl-C) before the import was asked for: nothing changed.{left}", err=True
        )
        return INTERRUPTED
    if ended.why_not:
        raise click.ClickException(
            f"Ctrl-C: import {job['id']} could not be cancelled: {ended.why_not} "
            f"{_what_became(ended, base, started)}"
        )
    if ended.cancel == 202:
        click.echo(f"Cancelling import {job['id']} on the server (Ctrl-C)...", err=True)
    if not ended.removed:
        click.echo(_kept(started["upload"]), err=True)
    final = _watch(http, base, job["id"])
    code = _report(final, base)
    return INTERRUPTED if final["status"] == Status.CANCELLED else code


class LastAnswer:
    """The last answer to tuspy's requests: its errors keep an answer's status and body, not
    its headers, where a Retry-After is."""

    def __init__(self):
        self.response: requests.Response | None = None

    def wait_asked(self, failure: TusCommunicationError) -> float | None:
        """The seconds the answer that made `failure` asked to wait; None if it did not."""
        answer = self.response
        if answer is None or failure.status_code != answer.status_code:
            return None  # not answered (no connection): there is no header to read
        return _wait_asked(answer.status_code, answer.headers)


def _wait_asked(status: int, headers) -> float | None:
    """The seconds an ASKS_TO_WAIT answer's Retry-After asks to wait; None without one."""
    return parse_retry_after(headers.get("Retry-After")) if status in ASKS_TO_WAIT else None


def _verify(cas: tuple[str, str] | None) -> ssl.SSLContext | bool:
    """httpx's `verify` for the CAs named (a PEM file, or a folder of them, as requests takes);
    a path that holds none stops the command saying which variable names it."""
    if cas is None:
        return True
    name, path = cas
    try:
        return tls.context(path)
    except (OSError, ssl.SSLError) as error:
        raise click.UsageError(
            f"{name} is {path}, which holds no CA certificate that can be read ({error}): point "
            "it at the PEM file of the CA that signed the server's certificate."
        ) from None


@contextlib.contextmanager
def _answered_in_time(cas: str | None = None):
    """Give tuspy's requests a timeout while the command runs, and the CAs to trust (`cas`, a
    PEM file), and keep their last answer (yielded, a LastAnswer). It takes none, and requests
    waits for ever by default: a server or proxy that took a piece and never answered held the
    upload for good, where a timeout is retried like any lost piece. Its calls all go through
    `requests.api.request`."""
    untimed = requests.api.request
    answers = LastAnswer()

    def request(method, url, **kwargs):
        kwargs.setdefault("timeout", ANSWER_SECONDS)
        # A redirect is said, not followed (`_redirected`): requests turned the creation's POST
        # answered 301 into a GET, which the app refused (405), and took the token along.
        kwargs["allow_redirects"] = False
        if cas and kwargs.get("verify", True) is True:  # tuspy passes True: check, by default
            kwargs["verify"] = cas
        if isinstance(kwargs.get("data"), bytes):
            # A piece of bytes goes out in one sendall, which the timeout bounds whole: on a
            # link under ~140 KB/s no 8 MiB piece could be sent in time. Read from a file, it
            # goes out in blocks, each with its own timeout: a stalled link still stops.
            kwargs["data"] = io.BytesIO(kwargs["data"])
        answers.response = None
        answers.response = untimed(method, url, **kwargs)
        return answers.response

    requests.api.request = request
    try:
        yield answers
    finally:
        requests.api.request = untimed


def _server_address(url: str) -> str:
    """The server's address as given, checked: http(s) and a host, else a usage error."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.UsageError(
            f"--url {url!r} is not a server's address: give it with http:// or https://, "
            "as the browser shows it (https://products.example.com)."
        )
    return url.strip().rstrip("/")


def _start_upload(base: str, headers: dict, path: str, answers: LastAnswer):
    """Create the upload. A server out of reach before the request reached it (a proxy's 502,
    a restart's refused connection once something answered) is asked again for
    PATIENCE_SECONDS, said on a bar meanwhile; then it gives up, as it does at once on a
    refusal, on a first request that found nothing there (a wrong --url: no connection, no such
    host), or on a request that may have reached it."""
    client = tus.TusClient(f"{base}/api/uploads", headers=headers)
    uploader = client.uploader(
        file_path=path,
        chunk_size=PIECE_BYTES,
        metadata={"filename": shown_name(os.path.basename(path))},  # tus sends UTF-8 only
        retries=0,  # retried by _send_piece, which knows which failures a retry can mend
    )
    # transient: gone once the upload exists (its own bar follows) or the error says why
    with display.progress_bar(Console(stderr=True), transient=True) as bar:
        task = bar.add_task("Upload", total=1, phase="Uploading", figures="")
        _create(uploader, base, _waiting(bar, task, 0), answers)
    return uploader


def _create(uploader, base: str, waiting, answers: LastAnswer) -> None:
    """Ask the server for the upload's address, through an outage of PATIENCE_SECONDS that
    the request did not reach the app through, said through `waiting(why, what next)`;
    `answers` has the last answer, for its Retry-After."""

    answered = False  # once anything at `base` answered, a refusal is a restart's

    def ask() -> None:
        nonlocal answered
        try:
            address = uploader.create_url()
        except TusCommunicationError as failure:
            answered = answered or failure.status_code is not None
            if not answered and _nothing_there(failure):
                raise _nothing_answers(failure, base) from failure
            if not _away(failure):
                raise
            if not _not_received(failure):  # each creation makes an upload: never two
                raise _maybe_created(failure, base) from failure
            why, message = _failure_why(failure), _message_in(failure.response_content)
            raise Away(why, message, answers.wait_asked(failure)) from failure
        # tuspy takes a redirect's Location for the upload's address
        if answers.response is not None and answers.response.is_redirect:
            raise _redirected("The upload could not be started", base, answers.response)
        uploader.set_url(address)

    def give_up(waited: str, *, asked_later: bool) -> click.ClickException:
        then = (
            "Run this command again once that time has passed."
            if asked_later
            else "Check --url, and that the server is running there."
        )
        return click.ClickException(f"The upload could not be started: {base} {waited} {then}")

    _patiently(ask, waiting=waiting, give_up=give_up)


def _nothing_there(failure: TusCommunicationError) -> bool:
    """Whether a request found no server at all: no connection made, or no such host."""
    error = failure.args[0] if failure.args else None
    if _not_connected(error):
        return True
    return isinstance(error, requests.ConnectionError) and isinstance(
        _cause(error), NameResolutionError
    )


def _nothing_answers(failure: TusCommunicationError, base: str) -> click.UsageError:
    """The error of a first request that found nothing at `base`: a wrong --url far more
    often than a server restarting just then, so it is said at once, not waited for."""
    return click.UsageError(
        f"Nothing answers at {base} ({_failure_why(failure)}): check --url, and that the "
        "server is running there."
    )


class Away(Exception):
    """A request that met a server out of reach for a while: why, in a few words, the error
    message it answered, if any, and the seconds its Retry-After asked to wait, if any."""

    def __init__(self, why: str, message: str | None = None, wait_asked: float | None = None):
        super().__init__(why)
        self.why, self.message, self.wait_asked = why, message, wait_asked


class OutOfPatience(Exception):
    """Asking again is vain: the server was out of reach for PATIENCE_SECONDS (`asked` None),
    or its Retry-After asks to wait `asked` seconds past them, after `waited` seconds."""

    def __init__(self, waited: float, asked: float | None = None):
        super().__init__(waited, asked)
        self.waited, self.asked = waited, asked

    def said(self, why: str, *, not_done: str, asked_for: str) -> str:
        """A sentence's end after the server's address: what it did not do (`not_done`: "did
        not answer") and for how long, or what it asked (`asked_for`: "to be asked again")."""
        if self.asked is None:
            return f"{not_done} for {PATIENCE_SECONDS} s ({why})."
        if self.asked > PATIENCE_SECONDS:  # no run of this command could wait that long
            return (
                f"asked {asked_for} in {spoken_wait(self.asked)} ({why}, Retry-After), longer "
                f"than this command waits ({PATIENCE_SECONDS} s)."
            )
        return (  # a run started now could: say how long it already waited
            f"{not_done} for {spoken_wait(math.ceil(self.waited))} ({why}), then asked {asked_for} "
            f"in {spoken_wait(self.asked)} (Retry-After): past the {PATIENCE_SECONDS} s this "
            "command waits."
        )


class GaveUpOnPiece(TusCommunicationError):
    """A piece's failure past the command's patience (`out`, an OutOfPatience)."""

    def __init__(self, failure: TusCommunicationError, out: OutOfPatience):
        super().__init__(str(failure), failure.status_code, failure.response_content)
        self.out = out


def _pause(asked: float | None, *, since: float, pause: float) -> float:
    """The seconds to wait before asking again, an outage having started at `since`
    (`time.monotonic()`): `pause`, or the Retry-After's `asked` (never less than `pause`). Raise
    OutOfPatience once PATIENCE_SECONDS have passed, or if `asked` would end past them: asking
    sooner than asked is pointless."""
    waited = time.monotonic() - since
    if waited >= PATIENCE_SECONDS:  # first: a Retry-After of 0 then is no longer than that
        raise OutOfPatience(waited)
    if asked is not None and waited + asked > PATIENCE_SECONDS:
        raise OutOfPatience(waited, asked)
    return pause if asked is None else max(asked, pause)


def _patiently(ask, *, waiting, give_up):
    """Return `ask()`, asked again while it raises Away (said through `waiting(why, what
    next)`) for PATIENCE_SECONDS: every ASK_AGAIN_SECONDS, or after the wait its Retry-After
    asked for. Then, or at once on a Retry-After past that time, raise `give_up(waited,
    asked_later=...)`, `waited` saying for how long (or how long it asked), why, and the
    server's last error message."""
    since, last = time.monotonic(), None
    while True:
        try:
            return ask()
        except Away as away:
            why, last, asked = away.why, away.message or last, away.wait_asked
        try:
            pause = _pause(asked, since=since, pause=ASK_AGAIN_SECONDS)
        except OutOfPatience as out:
            it_said = f" It said: {last}" if last else ""
            waited = out.said(why, not_done="did not answer", asked_for="to be asked again")
            raise give_up(waited + it_said, asked_later=out.asked is not None) from None
        again = "asking again"
        if asked is not None:
            again = f"asking again in {spoken_wait(asked)}, as it asked"
        waiting(why, again)
        time.sleep(pause)


def _away(failure: TusCommunicationError) -> bool:
    """Whether a request of the upload failed as a server out of reach for a while makes it
    fail: refused, dropped, not answered in time, or one of the AWAY answers. Not a host name
    unknown or a certificate refused (a wrong --url), nor a request that could not be made."""
    if failure.status_code is not None:
        return failure.status_code in AWAY
    error = failure.args[0] if failure.args else None
    return _not_connected(error) or _cut_off(error)


def _not_received(failure: TusCommunicationError) -> bool:
    """Whether a request failed before the app had it: no connection, or a NOT_RECEIVED
    answer; not a request sent, then unanswered (dropped, timed out, a 504)."""
    if failure.status_code is not None:
        return failure.status_code in NOT_RECEIVED
    return _not_connected(failure.args[0] if failure.args else None)


def _maybe_created(failure: TusCommunicationError, base: str) -> click.ClickException:
    """The error of an upload's creation sent, then unanswered: asking again could make a
    second upload, the first left unused until the server removes it."""
    return click.ClickException(
        f"The upload could not be started: {base} did not answer it ({_failure_why(failure)}). "
        "It was not asked again: the server may have made the upload. Run this command again "
        "once the server answers."
    )


def _not_connected(error) -> bool:
    """Whether a request of requests found no connection: refused, or none in time."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(error, requests.ConnectionError) or isinstance(
        error, requests.exceptions.SSLError
    ):
        return False
    cause = _cause(error)
    return isinstance(cause, NewConnectionError) and not isinstance(cause, NameResolutionError)


def _cut_off(error) -> bool:
    """Whether a request of requests was sent, then not answered: in time, or at all (the
    connection dropped)."""
    if isinstance(
        error, (requests.exceptions.ReadTimeout, requests.exceptions.ChunkedEncodingError)
    ):
        return True
    return isinstance(error, requests.ConnectionError) and isinstance(_cause(error), ProtocolError)


def _cause(error: requests.RequestException):
    """What urllib3 raised under requests' error (a connection's failure is in its reason)."""
    cause = error.args[0] if error.args else None
    return getattr(cause, "reason", cause)


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
    """Ask for the upload's import. A 503, which says the app did not act on it (a proxy's
    while the app restarts, the app's while its database is away), is asked again for
    PATIENCE_SECONDS, said on a bar meanwhile; any other failure is said at once: a 502 may
    come from an app that died once it had made the job (a second would import the file twice),
    and the quota's 429 would not change soon."""
    base = str(http.base_url).rstrip("/")

    def ask() -> dict:
        try:
            response = http.post("/api/imports", json={"upload": upload_id, **options})
        except httpx.HTTPError as error:  # it answered the upload's creation a moment ago
            raise click.ClickException(
                f"The import could not be asked for: {base} did not answer ({_briefly(error)}). "
                "Run this command again once it does."
            ) from error
        if response.status_code == 202 and _is_job(job := _json_of(response)):
            return job
        if response.status_code < 300:  # a success, but not of this API
            why = _not_the_api(base, response.content)
            raise click.ClickException(f"The import could not be asked for: {why}")
        if response.status_code == 503:
            wait_asked = _wait_asked(response.status_code, response.headers)
            raise Away(_answer_why(response), _message_in(response.content), wait_asked)
        if response.is_redirect:
            raise _redirected("The import could not be asked for", base, response)
        if response.status_code in REFUSED:
            raise Refused(_api_error(response))
        raise click.ClickException(_api_error(response))

    def give_up(waited: str, *, asked_later: bool) -> click.ClickException:
        return click.ClickException(
            f"The import could not be asked for: {base} {waited} Run this command again once "
            "it answers."
        )

    # transient, as the creation's (`_start_upload`): gone once the import is asked for
    with display.progress_bar(Console(stderr=True), transient=True) as bar:
        task = bar.add_task("Import", total=1, phase="Asking", figures="")
        return _patiently(ask, waiting=_waiting(bar, task, 0), give_up=give_up)


def _send(uploader, size: int, failed_for_good, answers: LastAnswer) -> dict | None:
    """Send the pieces, with a bar of the bytes sent; before each piece but the first, ask
    `failed_for_good()`: the job it returns (an import its bytes failed) stops the upload, and
    is returned. `answers` has the last answer, for its Retry-After."""
    with display.progress_bar(Console(stderr=True)) as bar:
        task = bar.add_task("Upload", total=max(size, 1), phase="Uploading", figures="")
        while uploader.offset < size:
            sent = f"{size_label(uploader.offset)} of {size_label(size)} sent"
            display.show(bar, task, "Uploading", [sent], uploader.offset)
            # A look per piece (8 MiB) costs little next to the piece it may spare.
            if uploader.offset and (failed := failed_for_good()):
                return failed
            _send_piece(uploader, _waiting(bar, task, uploader.offset), answers)
        display.show(bar, task, "Uploaded", [f"{size_label(size)} sent"], max(size, 1))
    return None


def _send_piece(uploader, waiting, answers: LastAnswer) -> None:
    """Send the next piece; what a retry can mend (a dropped connection, a server error, a
    piece still arriving) is retried from the server's offset up to RETRIES times, said
    through `waiting(why, what next)`, RETRY_DELAY_SECONDS apart or as long as an answer's
    Retry-After asks (`answers` has the last answer). A refusal (a file the server will not
    take) is raised at once: sending it again changes nothing; so is a Retry-After past
    PATIENCE_SECONDS from the piece's first failure (GaveUpOnPiece)."""
    failed_since = None
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
        failed_since = failed_since or time.monotonic()
        asked = answers.wait_asked(failure)
        pause = _piece_pause(failure, asked, since=failed_since)
        again = "sending again" if asked is None else f"sending again in {spoken_wait(asked)}"
        waiting(_failure_why(failure), f"{again}, retry {attempt + 1} of {RETRIES}")
        time.sleep(pause)


def _piece_pause(failure: TusCommunicationError, asked: float | None, *, since: float) -> float:
    """The seconds before a failed piece is sent again: RETRY_DELAY_SECONDS, or its Retry-After
    (`asked`) within the patience since its first failure at `since` (_pause), else raise
    GaveUpOnPiece. Without a Retry-After, RETRIES bound it, not the time (a try may take
    ANSWER_SECONDS)."""
    if asked is None:
        return RETRY_DELAY_SECONDS
    try:
        return _pause(asked, since=since, pause=RETRY_DELAY_SECONDS)
    except OutOfPatience as out:
        raise GaveUpOnPiece(failure, out) from None


def _failure_why(failure: TusCommunicationError) -> str:
    """Why a piece did not go through, in a few words."""
    if failure.status_code is None:
        return _briefly(failure)
    return f"HTTP {failure.status_code}"


def _worth_retrying(failure: TusCommunicationError) -> bool:
    """Whether sending again may go through: a server out of reach for a while, a TLS
    connection broken off, an offset that moved (409) or a piece still arriving (423); not a
    refusal such as 413, 422 or 507, nor a certificate refused."""
    if failure.status_code is None and _tls_broken(failure.args[0] if failure.args else None):
        return True
    return _away(failure) or failure.status_code in (409, 423)


def _tls_broken(error) -> bool:
    """Whether a request of requests failed on TLS other than on the server's certificate: a
    connection broken off mid-piece (a record that does not decrypt, an EOF), a dropped
    connection's, where a certificate refused will be refused again."""
    if not isinstance(error, requests.exceptions.SSLError):
        return False
    held = getattr(_cause(error), "args", ())  # urllib3's SSLError holds ssl's
    return not any(isinstance(inner, ssl.SSLCertVerificationError) for inner in held)


def _failed_for_good(http: httpx.Client, job_id: int) -> dict | None:
    """The job if it failed on the file's own bytes, whatever the rest holds (the server says
    why in `retry_refusal`: binary data, a line too long...); else None. An import that lacks a
    column is not: the column mapping's retry reads the whole file, so it must arrive."""
    try:
        response = http.get(f"/api/imports/{job_id}")
    except httpx.HTTPError:
        return None  # not answered now: the upload goes on, and the job is looked at again
    job = _json_of(response) if response.status_code == 200 else None
    if not _is_job(job):
        return None  # as above
    return job if job["status"] == Status.FAILED and job.get("retry_refusal") else None


def _stop_upload(http: httpx.Client, url: str) -> bool:
    """Remove the upload (tus termination), as the page's Cancel does: nothing of it is left
    to resume, and the server keeps the bytes the failed import read. Return whether it is
    gone (a 404: gone already, expired)."""
    try:
        answer = http.delete(url, headers={"Tus-Resumable": "1.0.0"}, timeout=LOOK_SECONDS)
    except httpx.HTTPError:
        return False
    return answer.status_code in (204, 404)


def _watch(http: httpx.Client, base: str, job_id: int) -> dict:
    """Show the import's progress, as the local command does, until it finishes; return the
    final job."""
    with display.progress_bar(Console(stderr=True)) as bar:
        task = bar.add_task(f"Import {job_id}", total=100, phase="Queued", figures="")
        percent = 0
        while True:
            job = _look(http, base, job_id, _waiting(bar, task, percent))
            if job["status"] in FINISHED:  # the server rebuilds the search index on its own
                display.show_job(bar, task, job | {"search_index": None})
                return job
            display.show_job(bar, task, job)
            percent = job["percent"]
            time.sleep(POLL_SECONDS)


def _waiting(bar, task, completed: float):
    """What shows on the bar while the server does not answer: why, and what is done next."""

    def show(why: str, then: str) -> None:
        display.show(bar, task, "Waiting", [why, then], completed)

    return show


def _look(http: httpx.Client, base: str, job_id: int, waiting) -> dict:
    """The job as the server has it now. A server out of reach (no answer, an AWAY answer) is
    asked again for PATIENCE_SECONDS (said through `waiting(why, what next)`); then, or at once
    on any other answer (a token refused, a server's bug), the command stops watching, says
    why, and where to watch the import: it goes on there."""

    def give_up(waited: str, *, asked_later: bool) -> click.ClickException:
        return _stopped_watching(base, job_id, f"{base} {waited}")

    return _patiently(lambda: _job_now(http, base, job_id), waiting=waiting, give_up=give_up)


def _job_now(http: httpx.Client, base: str, job_id: int) -> dict:
    """The job as the server has it now; Away if the server is out of reach."""
    try:
        response = http.get(f"/api/imports/{job_id}", timeout=LOOK_SECONDS)
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as error:
        raise Away(_briefly(error)) from error
    except httpx.HTTPError as error:  # a request that cannot be made: asking again is vain
        raise _stopped_watching(base, job_id, f"It could not be asked ({error}).") from error
    if response.status_code == 200 and _is_job(job := _json_of(response)):
        return job
    if response.status_code not in (200, *AWAY):  # asking again changes nothing
        raise _stopped_watching(base, job_id, _api_error(response))
    wait_asked = _wait_asked(response.status_code, response.headers)
    raise Away(_answer_why(response), _message_in(response.content), wait_asked)


def _answer_why(response: httpx.Response) -> str:
    """Why an answer is not the job, in a few words: its status, or what a 200 held (a captive
    portal's page, say: not the server's)."""
    if response.status_code == 200:
        return f"{_kind_of(response.content)}, not the API"
    return f"HTTP {response.status_code}"


def _stopped_watching(base: str, job_id: int, why: str) -> click.ClickException:
    return click.ClickException(
        f"Stopped watching import {job_id}: {why} The import goes on on the server: watch "
        f"it at {base}/imports/{job_id}"
    )


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


# What every ImportJob of the API has (SPEC.md): an answer without them is not the API's.
JOB_KEYS = {"id", "status", "phase", "percent", "rows_processed", "rows_invalid"}


def _json_of(response: httpx.Response):
    """The answer's JSON; None if it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def _is_job(answer) -> bool:
    """Whether `answer` (JSON) is an ImportJob of the API."""
    return isinstance(answer, dict) and answer.keys() >= JOB_KEYS


def _not_the_api(base: str, content: bytes) -> str:
    """What answered a request of the API (a captive portal, another site), and what to do."""
    return (
        f"{base} answered with {_kind_of(content)}, not Product Importer's API: check --url "
        "(it should be the address of the Product Importer server, like http://host:8000)."
    )


def _redirected(what: str, base: str, answer) -> Refused:
    """The error of a request answered with a redirect (a proxy's http -> https, say): where
    to, and the --url to give (the address it names, without the API's path)."""
    location = urljoin(str(answer.url), answer.headers["Location"])
    path = urlsplit(str(answer.url)).path
    server = location.removesuffix(path) if path and location.endswith(path) else None
    if not server:
        parts = urlsplit(location)
        server = f"{parts.scheme}://{parts.netloc}"
    return Refused(f"{what}: the server at {base} redirects to {location}: give --url {server}")


def _kind_of(content: bytes) -> str:
    """What an answer that is not the API's holds, in a few words."""
    try:
        json.loads(content)
    except ValueError:
        start = content.lstrip()[:512].lower()
        if start.startswith((b"<!doctype html", b"<html")) or b"<body" in start:
            return "an HTML page"
        return "an answer that is not JSON" if start else "an empty answer"
    return "JSON of another shape"


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
    if failure.status_code and 200 <= failure.status_code < 300:  # and no upload's address
        return f"The upload failed: {_not_the_api(base, content)}"
    if message := _message_in(content):
        return message
    if failure.status_code is None:
        return f"The upload failed: {_unreachable(str(failure), base)}"
    body = _json_error(content)
    code = body.get("code") if isinstance(body, dict) else None
    named = f" ({code})" if isinstance(code, str) else ""
    return f"The upload failed: the server answered {failure.status_code}{named}."


def _json_error(content: bytes | None):
    """The API's error object in an answer's body; None if it holds none."""
    try:
        return json.loads(content or b"").get("error")
    except (ValueError, AttributeError):
        return None


def _message_in(content: bytes | None) -> str | None:
    """The API's error message in an answer's body, with its details; None if it has none."""
    body = _json_error(content)
    try:
        return said(body["message"], body.get("details"))
    except (KeyError, TypeError, AttributeError):
        return None


# What a connection error's text says (httpx's, or urllib3's through requests): as a person
# would say it in a sentence, and in the few words of a bar's figure.
NO_HOST = "host name not found"
NO_TLS = "TLS certificate not accepted"
NO_ANSWER = (
    (
        ("NameResolutionError", "Name or service not known"),
        "its host name was not found",
        NO_HOST,
    ),
    (("Connection refused",), "nothing answered there (connection refused)", "connection refused"),
    (("timed out", "Timeout"), "it did not answer in time", "no answer in time"),
    (
        ("CERTIFICATE_VERIFY_FAILED", "SSLCertVerificationError"),
        "its TLS certificate was not accepted",
        NO_TLS,
    ),
    # after the certificate's: any other TLS error is a connection broken off on the way
    (("SSLError", "SSLEOFError"), "its TLS connection broke off", "TLS connection broken off"),
    (
        ("disconnected", "reset", "aborted", "RemoteDisconnected"),
        "it dropped the connection",
        "connection dropped",
    ),
)


def _unreachable(error: str, base: str) -> str:
    """Why the server at `base` could not be reached, and what to check."""
    why = _said_of(error, long=True) or error
    if _said_of(error, long=False) == NO_TLS:  # asking again changes nothing
        cas = tls.trusted_cas()
        own = (
            f"{cas[0]} is {cas[1]}: does it hold the CA that signed it?"
            if cas
            else "signed by a CA of your own: set SSL_CERT_FILE to its PEM file"
        )
        return (
            f"could not reach {base}: {why}. Check the host name in --url, and the server's "
            f"certificate (expired? for another name? {own}): a new run meets the same "
            "certificate."
        )
    return f"could not reach {base}: {why}. Check --url, and that the server is running there."


def _briefly(error: Exception) -> str:
    """Why a request had no answer, in a few words (a timeout's text may be empty)."""
    return _said_of(f"{type(error).__name__}: {error}", long=False) or "no answer"


def _said_of(error: str, *, long: bool) -> str | None:
    """The NO_ANSWER phrase for a connection error's text, long or short; None if none fits."""
    for marks, sentence, words in NO_ANSWER:
        if any(mark in error for mark in marks):
            return sentence if long else words
    return None
