"""Resumable uploads (tus 1.0) as the API sees them: create, find, append, finish, remove.

An upload's bytes go straight to a file in the upload folder; its offset is that file's size,
so every web process agrees on it without asking the database. One piece is written at a time
(an exclusive lock on the file, which another web process sees too); a piece cut off by a
dropped connection keeps the bytes that arrived, and the client asks the offset and goes on.
"""

import base64
import binascii
import errno
import fcntl
import os
import re
import uuid
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session
from werkzeug.exceptions import ClientDisconnected

from .. import background, database
from ..errors import (
    AppError,
    BadRequest,
    Conflict,
    InsufficientStorage,
    NotFound,
    TooLarge,
)
from ..timeutil import aware, utcnow
from ..webhooks import events
from . import service, uploads
from .endings import announce, final_values
from .failures import UPLOAD_CANCELLED_MESSAGE
from .growing import GONE
from .models import ImportJob, Upload
from .queue import DRAIN_TASK
from .states import Status

UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
PIECE_READ_BYTES = 64 * 1024  # small reads: an import that follows the upload sees bytes soon
EXPIRED = (
    "The upload expired before its last byte arrived, so nothing was imported. Upload the "
    "file again."
)


class Locked(AppError):
    status, code = 423, "locked"


def parse_metadata(header: str | None) -> dict[str, str]:
    """Decode `Upload-Metadata` (`key base64value,key2 base64value`); 400 when malformed."""
    metadata = {}
    for pair in (header or "").split(","):
        if not pair.strip():
            continue
        key, _, value = pair.strip().partition(" ")
        try:
            metadata[key] = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(
                f"Upload-Metadata value of '{key}' is not base64 of UTF-8 text."
            ) from None
    return metadata


def create(session: Session, *, owner_id: int, length: int, filename: str) -> Upload:
    """Start an upload of `length` bytes: an empty file, and its row (the caller commits)."""
    uploads.check_size(length)
    if length == 0:
        raise uploads.empty_file()
    uploads.refuse_if_disk_would_fill(length)
    path = uploads.new_path(filename)
    uploads.open_new(path).close()
    hours = current_app.config["UPLOAD_RETENTION_HOURS"]
    upload = Upload(
        id=uuid.uuid4().hex,
        owner_id=owner_id,
        filename=uploads.shown_name(filename),
        length=length,
        file_path=path,
        expires_at=utcnow() + timedelta(hours=hours),
    )
    session.add(upload)
    return upload


def get_owned(session: Session, upload_id: str, owner_id: int, *, lock: bool = False) -> Upload:
    """The account's upload; NotFound for another account's, an expired or a removed one.

    `lock` holds its row until the commit: its last piece then waits, or is seen whole.
    """
    # ids are uuid4().hex: anything else (a NUL, a lone surrogate) is none, not a query
    missing = NotFound(f"Upload {upload_id} does not exist (or has expired). Upload again.")
    if not UPLOAD_ID.fullmatch(upload_id):
        raise missing
    if lock:
        database.of(session).lock_before_reading(session, Upload, upload_id)
    upload = session.get(Upload, upload_id, with_for_update=lock, populate_existing=lock)
    if upload is None or upload.owner_id != owner_id or _expired(upload):
        raise missing
    return upload


def _expired(upload: Upload) -> bool:
    return upload.completed_at is None and aware(upload.expires_at) <= utcnow()


def file_gone(upload_id: str) -> NotFound:
    """The error for an upload whose file is no longer kept (removed with an import's end)."""
    return NotFound(f"Upload {upload_id} no longer has its file. Upload again.")


def offset(upload: Upload) -> int:
    """How many bytes of the upload have arrived."""
    try:
        return os.path.getsize(upload.file_path)
    except FileNotFoundError:
        raise file_gone(upload.id) from None


@dataclass(frozen=True)
class Target:
    """Where a piece goes: plain values, so no transaction stays open while bytes arrive."""

    id: str
    path: str
    length: int


def append(session: Session, upload: Upload, *, at: int, stream, declared: int | None) -> int:
    """Write one piece at offset `at` from `stream`; return the new offset (the caller commits).

    409 when `at` is not the offset, 413 past the declared length, 423 while another piece of
    the same upload is being written, 507 when the rest of it would leave too little disk
    free; the last byte runs the checks of a multipart upload.
    """
    if upload.error:
        raise Conflict(f"This upload was refused: {upload.error}")
    # Looked at again for each piece: the space free when the upload began is reserved for
    # none, and uploads side by side would fill the disk past MIN_FREE_DISK_BYTES. Refused,
    # the piece can be sent again once there is room.
    uploads.refuse_if_disk_would_fill(upload.length - at)
    target = Target(upload.id, upload.file_path, upload.length)
    _mark_received(session, upload)
    with _writer(target) as out:
        size = os.fstat(out.fileno()).st_size
        if at != size:
            raise Conflict(
                f"Upload-Offset is {at:,} but the upload holds {size:,} bytes: ask with HEAD "
                "and send from there."
            )
        if declared is not None and at + declared > target.length:
            raise TooLarge(_past_length(target))
        size = _copy(stream, out, size, target)
    if not _still_there(session, upload, target.id):
        raise NotFound(f"Upload {target.id} was removed while this piece arrived. Upload again.")
    upload.received_at = utcnow()
    if size == target.length and upload.completed_at is None:
        _finish(session, upload)
    background.send_after_commit(session, DRAIN_TASK)  # a job may wait for these bytes
    return size


def _mark_received(session: Session, upload: Upload) -> None:
    """Say a piece is arriving, committed: a job that gave up waiting runs again."""
    upload.received_at = utcnow()
    if session.scalar(select(exists().where(ImportJob.upload_id == upload.id))):
        background.send_after_commit(session, DRAIN_TASK)
    session.commit()


def _still_there(session: Session, upload: Upload, upload_id: str) -> bool:
    """Whether the upload is still there, locked until the commit: it may have been removed
    (DELETE, expiry) while the piece arrived, and a piece must not finish a removed upload."""
    session.expire(upload)  # read again below, if still there
    found = select(Upload.id).where(Upload.id == upload_id).with_for_update()
    return session.scalar(found) is not None


@contextmanager
def _writer(target: Target):
    """The upload's file, open for appending, locked against a second writer."""
    try:
        out = open(target.path, "ab", buffering=0)  # noqa: SIM115  (closed by the with below)
    except FileNotFoundError:
        raise file_gone(target.id) from None
    with out:
        try:
            fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Locked(
                "Another piece of this upload is still being received. Wait a moment, ask "
                "the offset with HEAD and send from there."
            ) from None
        yield out


def _copy(stream, out, size: int, target: Target) -> int:
    """Append the body to `out` until it ends, keeping what arrived if the client drops."""
    start = size
    while True:
        try:
            chunk = stream.read(PIECE_READ_BYTES)
        except (ClientDisconnected, TimeoutError):  # dropped, or silent (`tus.py`)
            return size  # the bytes so far are kept: the client resumes from them
        if not chunk:
            return size
        if size + len(chunk) > target.length:
            # None of the piece is kept: its bytes up to the length would leave the upload
            # full but never finished (nor refused), and a client that asks HEAD would stop.
            out.truncate(start)
            raise TooLarge(_past_length(target))
        size += _write_all(out, chunk)


def _write_all(out, chunk: bytes) -> int:
    """Write all of `chunk` to the unbuffered `out`, which may take fewer bytes a call; return
    its length. A disk that fills part-way keeps what it took: 507, and the client resumes
    from the file's size (counted whole, a short last write finished a short file)."""
    view, written = memoryview(chunk), 0
    while written < len(view):
        try:
            written += out.write(view[written:])
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
            raise InsufficientStorage(
                "The server's disk filled while this piece arrived; the bytes before stay. "
                "Try again later (ask the offset with HEAD), or ask the operator to free space."
            ) from None
    return written


def _past_length(target: Target) -> str:
    return (
        f"The piece goes past the upload's declared length ({target.length:,} bytes). "
        "Send only the bytes of the file."
    )


def finish_if_whole(session: Session, upload: Upload) -> None:
    """Finish an upload whose last byte arrived with a piece that failed before its commit (the
    database restarting, a web process killed): asked the offset, a client finds it whole and
    sends nothing more, so nothing else would. Committed here; a refused file is recorded."""
    if upload.completed_at is not None or upload.error:
        return
    with suppress(OSError):  # its file gone: the offset says so
        if os.path.getsize(upload.file_path) != upload.length:
            return  # looked at unlocked: a piece sent meanwhile is not refused as Locked
    target = Target(upload.id, upload.file_path, upload.length)
    # Locked: a piece being written finishes it; refused: `_finish` recorded why
    with suppress(AppError), _writer(target) as out:
        if os.fstat(out.fileno()).st_size != target.length:
            return
        if not _still_there(session, upload, target.id) or upload.completed_at is not None:
            return
        _finish(session, upload)
        background.send_after_commit(session, DRAIN_TASK)  # a job waits for these bytes
        session.commit()


def _finish(session: Session, upload: Upload) -> None:
    """The last byte arrived: run a multipart upload's checks, and keep the file for imports.

    A refused file is recorded (committed here, as the error answer commits nothing), so its
    imports fail with the same reason.
    """
    try:
        uploads.check(upload.file_path, upload.length)
    except AppError as error:
        upload.error = error.message
        session.commit()
        raise
    now = utcnow()
    upload.completed_at = now
    upload.expires_at = now + timedelta(hours=current_app.config["UPLOAD_RETENTION_HOURS"])
    # the import may have been asked for before the file was whole: compare it now
    service.note_same_file(session, upload.id, uploads.sha256(upload.file_path))


def terminate(session: Session, upload: Upload) -> None:
    """Remove the upload; its file too, unless an import keeps it (the caller commits).

    The queued imports of an upload that never finished fail now (or end cancelled, if a
    cancel was asked); a running one fails when it next asks for the upload
    (`growing.GrowingFile`), unless a cancel was asked there too.
    """
    if upload.completed_at is None:
        _fail_waiting(session, upload.id, GONE)
        _say_cancelled_with_upload(session, upload.id)
    _remove(session, upload.id, upload.file_path)


def _say_cancelled_with_upload(session: Session, upload_id: str) -> None:
    """Its cancelled imports say to upload the file again: "Retry it" would be refused now.

    An import still ending its cancel says so itself (queue._end_stopped)."""
    session.execute(
        update(ImportJob)
        .where(ImportJob.upload_id == upload_id, ImportJob.status == Status.CANCELLED)
        .values(error=UPLOAD_CANCELLED_MESSAGE)
    )


def _remove(session: Session, upload_id: str, path: str) -> None:
    session.execute(delete(Upload).where(Upload.id == upload_id))
    if not session.scalar(select(exists().where(ImportJob.file_path == path))):
        with suppress(FileNotFoundError):
            os.remove(path)


def remove_expired(session: Session) -> int:
    """Remove uploads past their expiry; end the queued imports still waiting for them."""
    expired = session.execute(
        select(Upload.id, Upload.file_path, Upload.completed_at).where(
            Upload.expires_at <= utcnow()
        )
    ).all()
    for upload_id, path, completed_at in expired:
        if completed_at is None:
            _fail_waiting(session, upload_id, EXPIRED)
        _remove(session, upload_id, path)
    return len(expired)


def _fail_waiting(session: Session, upload_id: str, error: str) -> None:
    """Fail the queued imports of an upload that will never finish, each with its
    `import.failed` (sent once the session commits); running ones notice by themselves.
    One whose cancel was asked ends cancelled."""
    waiting = (ImportJob.upload_id == upload_id, ImportJob.status == Status.QUEUED)
    # A cancel asked first wins here too (`growing.GrowingFile._refuse`): a run may give its
    # job back to the queue (its upload stalled, its worker stopping) before a heartbeat
    # brought the cancel, and the job waits there for a worker to end it.
    session.execute(
        update(ImportJob.__table__)
        .where(*waiting, ImportJob.cancel_requested)
        .values(**final_values(Status.CANCELLED, error=UPLOAD_CANCELLED_MESSAGE))
    )
    ended = session.execute(
        update(ImportJob.__table__)
        .where(*waiting)
        .values(**final_values(Status.FAILED, error=error))
        .returning(*ImportJob.__table__.c)
    ).all()
    deliveries = [id_ for row in ended for id_ in announce(session.connection(), row)]
    if deliveries:
        background.send_after_commit(session, events.DELIVER_TASK, deliveries)
