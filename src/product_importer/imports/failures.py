"""Why an import stopped before it applied: each exception carries the message people read.

Raised where the problem is found; the queue records `status` and `str(error)` as the job's
end, in one place. None of them leaves a trace in the catalog: the import's transaction
rolls back.
"""

from .states import Status

MAX_ATTEMPTS = 3  # the first run and two retries after a worker or the database was lost

# The job's `error_code` when its invalid-row limit stopped it: the pages offer to go on
# without the limit (the counts cannot tell: a worker lost or a damaged file has them too).
TOO_MANY_INVALID = "too_many_invalid"
# ... and when the file's bytes alone stopped it: retrying the same file fails the same way,
# whatever the options, so a retry is refused (RETRY_CANNOT_FIX says what to do instead).
BINARY_FILE = "binary_file"  # binary data (a workbook, an image), not a CSV
LINE_TOO_LONG = "line_too_long"  # a line past csv_rows.MAX_LINE_BYTES
DECOMPRESSED_TOO_LARGE = "decompressed_too_large"  # a gzip expanding past the server's limit
DAMAGED_GZIP = "damaged_gzip"  # a gzip that cannot be decompressed to its end
NO_HEADER = "no_header"  # no line but blank ones: nothing a column mapping could name

_SAME_FILE = "A retry reads the same file and would fail the same way:"
RETRY_CANNOT_FIX = {
    BINARY_FILE: f"{_SAME_FILE} it is binary, not a CSV. Export the products as CSV (for "
    "example 'CSV UTF-8' in Excel) and upload that file.",
    LINE_TOO_LONG: f"{_SAME_FILE} a line is longer than a CSV line can be. Export the products "
    "as CSV and upload that file.",
    DECOMPRESSED_TOO_LARGE: f"{_SAME_FILE} it expands past the server's limit. Split it into "
    "smaller files and upload them one after the other.",
    DAMAGED_GZIP: f"{_SAME_FILE} it cannot be decompressed. Compress the CSV again, or upload "
    "it uncompressed.",
    NO_HEADER: f"{_SAME_FILE} it holds no header row. Add the line 'sku,name,description' at "
    "the top and upload the file again.",
}

CANCELLED_MESSAGE = (
    "The import was cancelled; the catalog was not changed. Retry it to run it again."
)


# ... and when its upload was given up before the file's last byte: no retry can read it.
UPLOAD_CANCELLED_MESSAGE = (
    "The import was cancelled with its upload, before the file's last byte arrived; the "
    "catalog was not changed. Upload the file again to import it."
)


class HelperNotConnected(Exception):
    """A helper session of a bulk build could not connect (the server out of connections,
    restarting, refusing them): nothing of the import was applied, and an attempt more, once
    the server takes connections again, may well apply it."""


class ImportStopped(Exception):
    """The import ended without applying; `str(error)` says why and what to do."""

    status = Status.FAILED
    columns: dict = {}  # what the job row shows besides the error (counts, the header)
    code: str | None = None  # the job's `error_code`, for a cause a client acts on


class Cancelled(ImportStopped):
    """Someone asked to cancel the running job."""

    status = Status.CANCELLED

    def __init__(self, message: str = CANCELLED_MESSAGE):
        super().__init__(message)


def cancelled(undo_of: int | None = None) -> Cancelled:
    """A cancel of an import, or of the undo of import `undo_of` (which no retry runs again)."""
    if undo_of is None:
        return Cancelled()
    return Cancelled(
        f"The undo was cancelled; the catalog was not changed. {_undo_again(undo_of)} to run "
        "it again."
    )


def _undo_again(undo_of: int) -> str:
    """What runs a stopped undo again: a retry is for imports only."""
    return f"Undo import #{undo_of} again from its page"


class FileRejected(ImportStopped):
    """The file as a whole cannot be imported."""


class NotCsv(FileRejected):
    """The file holds binary data: a workbook or an image, not a CSV file."""

    code = BINARY_FILE


class LineTooLong(FileRejected):
    """A line is longer than any CSV line of products: this is no CSV file."""

    code = LINE_TOO_LONG


class ExpandsTooFar(FileRejected):
    """The gzip file expands past the server's limit."""

    code = DECOMPRESSED_TOO_LARGE


class HeaderRejected(FileRejected):
    """The header lacks a required column (or one the mapping names), or names one twice, or
    is missing (`NoHeader`); `header` lists it. Retrying the same file fails the same way,
    unless with a column mapping.
    """

    def __init__(self, message: str, *, header: list[str]):
        super().__init__(message)
        self.header = header
        self.columns = {"header": header}


class NoHeader(HeaderRejected):
    """The file holds blank lines only: no column mapping can help (`header` is [])."""

    code = NO_HEADER

    def __init__(self):
        super().__init__(
            "The file holds no header row. Add the line 'sku,name,description' at the top and "
            "upload again.",
            header=[],
        )


class TooManyInvalid(FileRejected):
    """More rows were invalid than the job's `max_invalid` allows."""

    code = TOO_MANY_INVALID

    def __init__(self, invalid: int, rows: int, max_invalid: str):
        super().__init__(
            f"{invalid:,} of {rows:,} rows read were invalid, more than the limit of "
            f"{max_invalid}; the import stopped before changing the catalog. Download the "
            "rejected rows, fix them and upload again, or retry with a higher max_invalid."
        )
        self.columns = {"rows_invalid": invalid, "rows_processed": rows}


class DamagedFile(ImportStopped):
    """The gzip file cannot be decompressed to its end."""

    code = DAMAGED_GZIP

    def __init__(self, error: Exception):
        super().__init__(
            f"The compressed file is damaged or incomplete ({error}); the catalog was not "
            "changed. Compress the CSV again, or upload it uncompressed."
        )


class FileGone(ImportStopped):
    """The stored upload has been removed."""

    def __init__(self):
        super().__init__("The uploaded file is no longer on the server. Upload it again.")


class WorkerLost(ImportStopped):
    """The job's worker stopped responding too many times."""

    def __init__(self, timeout: float, attempts: int, undo_of: int | None = None):
        then = "retry the import" if undo_of is None else _undo_again(undo_of).lower()
        super().__init__(
            f"The worker running this {'import' if undo_of is None else 'undo'} stopped "
            f"responding for {timeout:.0f} seconds, {attempts} times. The catalog was not "
            f"changed. Check that workers are running and have enough memory, then {then}."
        )


class HandedBack(ImportStopped):
    """The worker is stopping (SIGTERM, as a deploy does): the job goes back to the queue."""

    def __init__(self):
        super().__init__(
            "The worker running this import was stopped; the import waits for another worker "
            "and starts again from the beginning. The catalog was not changed."
        )


class Unexpected(ImportStopped):
    """Anything else: a bug, or the database gone away."""

    def __init__(self, description: str, undo_of: int | None = None):
        what, again = ("import", "Retry the import") if undo_of is None else ("undo", "")
        again = again or _undo_again(undo_of)
        super().__init__(
            f"The {what} failed unexpectedly ({description}); the catalog was not changed. "
            f"{again}; if it fails again, ask the operator to check the worker log."
        )
