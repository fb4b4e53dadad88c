"""Store uploads straight into UPLOAD_FOLDER as they stream in, and check what arrived."""

import gzip
import hashlib
import os
import re
import shutil
import tempfile
import uuid
import zlib

from flask import Request, current_app

from ..errors import InsufficientStorage, Invalid, TooLarge
from ..products import rules
from .csv_rows import BINARY_FILE, FALLBACK_ENCODING, GZIP_MAGIC, SNIFF_BYTES

BLANK_SCAN_CHUNKS = 64  # of 1 MiB: how far the upload check reads a blank start
FILENAME_LENGTH = 255  # import_jobs.filename, uploads.filename


# The upload folder, when the app makes it, and each file in it: this user's alone.
PRIVATE_FOLDER, PRIVATE_FILE = 0o700, 0o600


def upload_folder() -> str:
    """UPLOAD_FOLDER, made (this user's alone) if it is not there yet."""
    folder = current_app.config["UPLOAD_FOLDER"]
    os.makedirs(folder, mode=PRIVATE_FOLDER, exist_ok=True)
    return folder


class UploadRequest(Request):
    """A request whose uploaded files are written to the upload folder, never held in memory."""

    def _get_file_stream(
        self, total_content_length, content_type, filename=None, content_length=None
    ):
        folder = upload_folder()
        # 0600, as the files of `open_new`; deleted when closed; the view keeps the bytes by
        # hard-linking the file first.
        return tempfile.NamedTemporaryFile(dir=folder, prefix=".incoming-", suffix=".part")


# What X-HTTP-Method-Override may name: a HEAD so named would leave the server (which sees a
# POST) sending a Content-Length without the body it promises.
OVERRIDDEN = frozenset({"PATCH", "DELETE"})
AN_UPLOAD = re.compile(r"/api/uploads/[^/]+")  # a resumable upload's address (tus.py)


class MethodOverride:
    """WSGI middleware: a POST to a resumable upload with `X-HTTP-Method-Override: PATCH` (or
    DELETE) is that method, as tus 1.0 asks of a server. Clients behind a proxy that
    passes only GET and POST send their pieces so (tus-js-client's `overridePatchMethod`). Only
    an upload's address: nowhere else does a POST become another method."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, request_env, start_response):
        method = request_env.get("HTTP_X_HTTP_METHOD_OVERRIDE", "").strip().upper()
        if (
            request_env.get("REQUEST_METHOD") == "POST"
            and method in OVERRIDDEN
            and AN_UPLOAD.fullmatch(request_env.get("PATH_INFO", ""))
        ):
            request_env["REQUEST_METHOD"] = method
        return self.wsgi_app(request_env, start_response)


def refuse_if_disk_would_fill(incoming: int) -> None:
    """Raise InsufficientStorage when storing `incoming` bytes would leave too little free."""
    if short := disk_would_fill(incoming):
        free, keep_free = short
        raise InsufficientStorage(
            f"The server has too little disk space for this upload ({free:,} bytes free, "
            f"{keep_free:,} kept free). Try again later, or ask the operator to free space."
        )


def disk_would_fill(incoming: int) -> tuple[int, int] | None:
    """The bytes free in UPLOAD_FOLDER and MIN_FREE_DISK_BYTES, when storing `incoming` bytes
    would leave less than that free; else None."""
    folder = upload_folder()
    free = shutil.disk_usage(folder).free
    keep_free = current_app.config["MIN_FREE_DISK_BYTES"]
    return (free, keep_free) if free - incoming < keep_free else None


def keep(upload) -> tuple[str, int]:
    """Keep an uploaded file under a unique name; return its path and size."""
    stream = upload.stream
    stream.flush()
    path = new_path(upload.filename)
    if hasattr(stream, "name") and os.path.exists(str(stream.name)):
        os.link(stream.name, path)
    else:  # a small file that werkzeug kept in memory
        stream.seek(0)
        with open_new(path) as out:
            while chunk := stream.read(1 << 20):
                out.write(chunk)
    return path, os.path.getsize(path)


def sha256(path: str) -> str:
    """The SHA-256 of a stored file, in hex (to tell the same file uploaded again)."""
    with open(path, "rb") as stored:
        return hashlib.file_digest(stored, "sha256").hexdigest()


def shown_name(filename: str | None) -> str:
    """A file's name as the pages, the API and the terminal show it: without control
    characters (a NUL, which PostgreSQL's text cannot hold; a terminal's escapes), a lone
    surrogate (a name not in UTF-8 on the command line) as U+FFFD, trimmed, at most 255
    characters; "upload.csv" for none."""
    name = rules.CONTROL.sub("", filename or "")
    name = rules.LONE_SURROGATE.sub("\ufffd", name).strip(rules.SPACE)[:FILENAME_LENGTH]
    return name or "upload.csv"


def new_path(filename: str | None) -> str:
    """A unique path in the upload folder for a file of this name (`.csv` or `.csv.gz`)."""
    folder = upload_folder()
    suffix = ".csv.gz" if (filename or "").lower().endswith(".gz") else ".csv"
    return os.path.join(folder, f"{uuid.uuid4().hex}{suffix}")


def open_new(path: str):
    """Create the file at `path` (a `new_path`) to write uploaded bytes into, readable by this
    user alone, as a multipart upload's temporary file is: a catalog is no one else's to read
    (with the usual umask, open() made it readable by every user of the machine)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE), "wb")


def check(path: str, size: int) -> None:
    """Refuse a file over the limit (413), empty, only whitespace, or binary (422)."""
    check_size(size)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if compressed else raw
        try:
            _check_content(stream)
        except (OSError, EOFError, zlib.error) as error:
            raise Invalid(
                "The file looks gzip-compressed but cannot be decompressed "
                f"({error}). Compress it again, or upload the plain CSV."
            ) from error


def check_size(size: int) -> None:
    """Refuse a file over MAX_UPLOAD_BYTES (413)."""
    limit = current_app.config["MAX_UPLOAD_BYTES"]
    if size > limit:
        raise TooLarge(
            f"The file is {size:,} bytes; the limit is {limit:,} bytes. Split it "
            "into smaller files or compress it with gzip."
        )


def empty_file() -> Invalid:
    """The error of an empty file (422)."""
    return Invalid(
        "The file is empty. Upload a CSV with a header row (sku,name,...) and at least one product."
    )


def _check_content(stream) -> None:
    head = stream.read(SNIFF_BYTES)
    if b"\x00" in head:
        raise Invalid(BINARY_FILE)
    chunk = head.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark alone is empty
    # Looked at only so far: a gzip of spaces can expand a thousandfold, and this runs in the
    # request. A file that is blank past this point fails in the import, saying it holds no rows.
    for _ in range(BLANK_SCAN_CHUNKS):
        if not chunk or not _blank(chunk):
            break
        chunk = stream.read(1 << 20)
    if _blank(chunk):
        raise empty_file()


def _blank(chunk: bytes) -> bool:
    """Whether the bytes are only white space as the import reads them: no-break spaces too,
    in UTF-8 or else Windows-1252 (a chunk that cuts a character in two is not blank)."""
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:
        text = chunk.decode(FALLBACK_ENCODING)
    return not text.strip()
