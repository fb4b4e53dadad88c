"""Import jobs and the rows they rejected."""

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    PrimaryKeyConstraint,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import BigId, db
from ..timeutil import iso, utcnow
from .states import FINISHED, SUCCEEDED, Kind, Status


class ImportJob(db.Model):
    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    file_path: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(32), default=Status.QUEUED)
    phase: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(String(255), default="Waiting for a worker")
    percent: Mapped[float] = mapped_column(Float, default=0.0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_processed: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_processed: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_invalid: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[int] = mapped_column(BigInteger, default=0)
    unchanged: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_superseded: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # "refreshing" while a search index the import deferred is built, then "ready"
    search_index: Mapped[str | None] = mapped_column(String(16))
    # The file's header cells as it had them (a JSON list), for the rejected-rows file.
    source_header: Mapped[str | None] = mapped_column(Text)
    rows_per_second: Mapped[float | None] = mapped_column(Float)
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    # A cause a client acts on, beside `error` for people (failures.py lists them).
    error_code: Mapped[str | None] = mapped_column(String(32))
    warnings: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Bookkeeping for workers: not part of the JSON contract.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False, server_default=false())
    worker: Mapped[str | None] = mapped_column(String(255))
    db_pid: Mapped[int | None] = mapped_column()
    retry_of_id: Mapped[int | None] = mapped_column(ForeignKey("import_jobs.id"))
    file_removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who uploaded it (the email as it was then); None for the command line.
    created_by_id: Mapped[int | None] = mapped_column(BigId)
    created_by: Mapped[str | None] = mapped_column(String(254))
    # Who applied it, when it was a plan (None otherwise, or from the command line): the actor
    # of its end, as uploading and applying may be two people.
    applied_by_id: Mapped[int | None] = mapped_column(BigId)
    applied_by: Mapped[str | None] = mapped_column(String(254))
    # When it was applied, if it was a plan: set with no `applied_by`, the command line did.
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The app's address as the request that asked for it reached it (`service.asked_at`):
    # where its webhook says its change record is, when PUBLIC_URL is not set. None from the
    # command line, or when the request named a port `serve` does not listen on.
    origin: Mapped[str | None] = mapped_column(String(2048))
    # The resumable upload it reads (None for a multipart upload or the command line).
    upload_id: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8), default=Kind.IMPORT, server_default="import")
    plan: Mapped[bool] = mapped_column(default=False, server_default=false())
    undo_of: Mapped[int | None] = mapped_column(BigInteger, index=True)
    undone_by: Mapped[int | None] = mapped_column(BigInteger)
    duplicate_of: Mapped[int | None] = mapped_column(BigInteger)
    conflicts: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The header a job failed on ([] for none): the same file fails the same way, unless mapped.
    header: Mapped[list | None] = mapped_column(JSON)
    # The options it was asked with, kept for retry and apply.
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    max_invalid: Mapped[str | None] = mapped_column(String(24))
    columns: Mapped[dict | None] = mapped_column(JSON)
    # The change record of created products (migration 0013): the block of ids the import took
    # and the time it stamped every product it wrote with; an undo's count of deleted products.
    created_from: Mapped[int | None] = mapped_column(BigInteger)
    created_to: Mapped[int | None] = mapped_column(BigInteger)
    written_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    __table_args__ = (Index("ix_import_jobs_status_id", "status", "id"),)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_dict(self) -> dict:
        """Return the ImportJob JSON of SPEC."""
        return job_json(self)


def job_json(job) -> dict:
    """The ImportJob JSON of SPEC, from a job or from a row of the jobs table."""
    return {
        "id": job.id,
        "filename": job.filename,
        "status": job.status,
        "phase": job.phase,
        "message": job.message,
        "percent": round(job.percent or 0.0, 1),
        "bytes_total": job.bytes_total,
        "bytes_processed": job.bytes_processed,
        "rows_processed": job.rows_processed,
        "rows_invalid": job.rows_invalid,
        "created": job.created,
        "updated": job.updated,
        "unchanged": job.unchanged,
        "rows_superseded": job.rows_superseded or 0,
        "summary": summary(job),
        "search_index": job.search_index,
        "rows_per_second": job.rows_per_second,
        "eta_seconds": job.eta_seconds,
        "error": job.error,
        "error_code": job.error_code,
        "warnings": list(job.warnings or []),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "created_by": job.created_by,
        "applied_by": job.applied_by,
        "applied_at": iso(job.applied_at),
        "kind": job.kind,
        "plan": bool(job.plan),
        "undo_of": job.undo_of,
        "undone_by": job.undone_by,
        "duplicate_of": job.duplicate_of,
        "conflicts": job.conflicts or 0,
        "deleted": job.deleted or 0,
        "header": job.header,
        "max_invalid": job.max_invalid,
        "columns": job.columns,
    }


def summary(job) -> str | None:
    """Say what a completed import did, for people: the page, history, CLI and webhooks."""
    if job.status not in SUCCEEDED:
        return None
    if job.kind == Kind.UNDO:  # it read no file: what it deleted, restored and left
        return (
            f"{job.deleted:,} deleted, {job.updated:,} restored, {job.conflicts:,} changed since "
            "left as they are."
        )
    said = (
        f"{job.created:,} created, {job.updated:,} updated, {job.unchanged:,} unchanged, "
        f"{job.rows_invalid:,} rejected."
    )
    if job.rows_superseded:
        said += " " + superseded_note(job.rows_superseded)
    return said


def products(count: int) -> str:
    """ "1 product", "1,204 products"."""
    return f"{count:,} product{'' if count == 1 else 's'}"


def superseded_note(rows: int) -> str:
    """Say that rows repeating a SKU gave way to its last row."""
    repeated = "1 row repeated" if rows == 1 else f"{rows:,} rows repeated"
    return f"{repeated} an earlier SKU; the last one was kept."


class RejectedRow(db.Model):
    __tablename__ = "import_rejected_rows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("import_jobs.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(BigInteger)
    sku: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    # The row's cells as the file had them, a JSON list (JSON escapes NUL, which text cannot
    # hold); null when the row could not be split into cells.
    cells: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_import_rejected_rows_job_id_line", "job_id", "line"),)


class Upload(db.Model):
    """A resumable (tus) upload: its bytes are in `file_path`, as many as have arrived."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[int] = mapped_column(BigId)
    filename: Mapped[str] = mapped_column(String(255))
    length: Mapped[int] = mapped_column(BigInteger)  # Upload-Length, as declared
    file_path: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When a piece last started or ended: a job waiting for the upload runs while it moves.
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why the finished file was refused (binary, empty, damaged gzip): its jobs fail with it.
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_uploads_expires_at", "expires_at"),)


class ImportChange(db.Model):
    """One product an import updates (or a plan creates or updates): after, and before.

    An import's created products are not rows here: they are the block of ids on its job.
    """

    __tablename__ = "import_changes"

    # no foreign key: its check of every row was half the cost of writing the record (0014)
    job_id: Mapped[int] = mapped_column(BigId)
    rn: Mapped[int] = mapped_column(BigInteger)  # the file's line: unique within one import
    kind: Mapped[str] = mapped_column(String(8))  # created | updated
    product_id: Mapped[int | None] = mapped_column(BigInteger)  # None for a plan's creations
    sku: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)  # null: an update left it as it was
    active: Mapped[bool] = mapped_column(Boolean)
    before_sku: Mapped[str | None] = mapped_column(Text)
    before_name: Mapped[str | None] = mapped_column(Text)
    before_description: Mapped[str | None] = mapped_column(Text)
    before_active: Mapped[bool | None] = mapped_column(Boolean)
    before_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (PrimaryKeyConstraint("job_id", "kind", "rn"),)
