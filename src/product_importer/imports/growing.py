"""Read a resumable upload while its bytes still arrive, so parsing follows the upload.

`GrowingFile` is a binary file whose reads wait for the bytes they ask for, up to the upload's
declared length; it answers end-of-file only once the upload is complete and passed its checks,
so the import applies nothing before the last byte. An upload that stops moving gives the job
back to the queue (`UploadStalled`); one that is removed or refused fails it (`FileRejected`).
"""

import io
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, exists, select

from .failures import Cancelled, FileRejected, ImportStopped
from .models import ImportJob, Upload

POLL_SECONDS = 0.02  # how often a waiting read looks at the file's size
CHECK_SECONDS = 1.0  # how often it asks the database whether the upload still exists
# A read returns what has arrived once this much (or all it asked for) is there: parsing
# follows the upload closely without being woken for every small piece.
SOME_BYTES = 64 * 1024
uploads = Upload.__table__
GONE = (
    "The upload was cancelled or expired before its last byte arrived; the catalog was not "
    "changed. Upload the file again."
)


# How the message of a job whose upload stands still begins (the pages look for it).
UPLOAD_STALLED = "Waiting for the upload to go on"


class UploadStalled(ImportStopped):
    """The upload stopped moving: the job waits in the queue until more bytes arrive."""

    def __init__(self, received: int, length: int):
        super().__init__(f"{UPLOAD_STALLED} ({received:,} of {length:,} bytes received)")


@contextmanager
def open_stored(
    path: str, upload_id: str | None, length: int, **following
) -> Iterator[io.RawIOBase]:
    """The stored file of a job: as it is, or following its upload while that arrives."""
    if upload_id is None:
        with open(path, "rb") as raw:
            yield raw
        return
    with GrowingFile(path, upload_id, length, **following) as raw:
        yield raw


class GrowingFile(io.RawIOBase):
    """A tus upload's file, read as it grows; a read waits for bytes, as a socket's does."""

    def __init__(
        self,
        path: str,
        upload_id: str,
        length: int,
        *,
        job_id: int,
        engine: Engine,
        stall_seconds: float,
        stopping: Callable[[], bool],
    ):
        self.file = open(path, "rb")  # noqa: SIM115  (closed with this object)
        self.upload_id, self.length, self.engine = upload_id, length, engine
        self.job_id = job_id
        self.stall_seconds, self.stopping = stall_seconds, stopping
        self.grown_at = self.checked_at = time.monotonic()
        self.known_size = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()
        super().close()

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), self.length - self.file.tell())
        if wanted <= 0:
            self._confirm_complete()
            return 0
        position = self.file.tell()
        self._wait_for(position + min(wanted, SOME_BYTES))
        return self.file.readinto(memoryview(buffer)[: min(wanted, self.known_size - position)])

    def _wait_for(self, end: int) -> None:
        """Wait until the file holds `end` bytes."""
        while self.known_size < end:
            size = os.fstat(self.file.fileno()).st_size
            now = time.monotonic()
            if size > self.known_size:
                self.known_size, self.grown_at = size, now
                continue
            if self.stopping():
                raise Cancelled()
            if now - self.checked_at >= CHECK_SECONDS:
                self._state()
            if now - self.grown_at >= self.stall_seconds:
                self._state()
                raise UploadStalled(size, self.length)
            time.sleep(POLL_SECONDS)

    def _confirm_complete(self) -> None:
        """Every byte is read: wait for the upload to pass its checks before end-of-file."""
        since = time.monotonic()
        while self._state() is None:
            if self.stopping():
                raise Cancelled()
            if time.monotonic() - since >= self.stall_seconds:
                raise UploadStalled(self.length, self.length)
            time.sleep(POLL_SECONDS)

    def _state(self):
        """When the upload was completed (None while it is not); FileRejected when it never
        will be. A finished upload's row may be gone (expired) while a job keeps its file."""
        self.checked_at = time.monotonic()
        with self.engine.connect() as conn:
            row = conn.execute(
                select(uploads.c.completed_at, uploads.c.error).where(
                    uploads.c.id == self.upload_id
                )
            ).first()
        if row is None:
            if self._was_completed():
                return True
            self._refuse(GONE)
        if row.error:
            self._refuse(f"{row.error} The catalog was not changed.")
        return row.completed_at

    def _refuse(self, reason: str) -> None:
        """Fail the job for its upload; but a cancel asked first wins: the import page's
        Discard cancels the import, then removes its upload, before a heartbeat may tell."""
        with self.engine.connect() as conn:
            query = select(ImportJob.cancel_requested).where(ImportJob.id == self.job_id)
            if conn.execute(query).scalar():
                raise Cancelled()
        raise FileRejected(reason)

    def _was_completed(self) -> bool:
        """Whether the removed upload had been completed: its imports were given its SHA-256
        then (`service.note_same_file`). All its bytes are not enough: a piece may have gone
        on arriving after a DELETE, or the last one been refused."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(
                    exists().where(
                        ImportJob.upload_id == self.upload_id, ImportJob.sha256.is_not(None)
                    )
                )
            ).scalar()
