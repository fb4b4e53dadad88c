"""`/api/uploads`: resumable uploads in the tus 1.0 protocol (core, creation, termination,
expiration), so a dropped connection or a reloaded page goes on where it stopped.

Views only translate the protocol's headers; `resumable` does the work. Every answer carries
`Tus-Resumable`; a request without `Tus-Resumable: 1.0.0` is 412 (OPTIONS excepted).
"""

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, current_app, request, url_for
from werkzeug.http import http_date

from ..accounts import audit
from ..accounts.auth import current_actor, requires
from ..accounts.roles import Role
from ..errors import AppError, BadRequest, error_response
from ..extensions import db, removed_unless_committed
from ..security import large_body, refuse_cross_site_requests
from ..timeutil import aware
from . import resumable

VERSION = "1.0.0"
EXTENSIONS = "creation,termination,expiration"
PIECE_TYPE = "application/offset+octet-stream"
PIECE_SILENCE_SECONDS = 5  # see `_silence_ends_the_piece`
MAX_DIGITS = 19  # of Upload-Length and Upload-Offset read as they are (`_number_header`)

bp = Blueprint("uploads_api", __name__, url_prefix="/api/uploads")
bp.before_request(refuse_cross_site_requests)


class WrongVersion(AppError):
    status, code = 412, "precondition_failed"


class WrongPieceType(AppError):
    status, code = 415, "unsupported_media_type"


@bp.before_request
def _require_version():
    if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != VERSION:
        body, status = error_response(
            412,
            WrongVersion.code,
            f"This server speaks tus {VERSION}: send the header Tus-Resumable: {VERSION}.",
        )
        return body, status, {"Tus-Version": VERSION}
    return None


@bp.after_request
def _protocol_headers(response):
    response.headers["Tus-Resumable"] = VERSION
    response.headers["Cache-Control"] = "no-store"  # an offset is never to be cached
    return response


@bp.route("", methods=["OPTIONS"], provide_automatic_options=False)
@requires(Role.VIEWER)
def uploads_options():
    """Tell the protocol version, extensions and largest upload: 204."""
    return (
        "",
        204,
        {
            "Tus-Version": VERSION,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(current_app.config["MAX_UPLOAD_BYTES"]),
        },
    )


@bp.route("", methods=["POST"], provide_automatic_options=False)
@requires(Role.EDITOR)
def create_upload():
    """Start an upload of `Upload-Length` bytes: 201 with its URL in `Location`."""
    length = _number_header("Upload-Length")
    metadata = resumable.parse_metadata(request.headers.get("Upload-Metadata"))
    filename = metadata.get("filename") or metadata.get("name") or "upload.csv"
    actor = current_actor()
    upload = resumable.create(db.session, owner_id=actor["id"], length=length, filename=filename)
    with removed_unless_committed(upload.file_path):  # the database away, say
        audit.record(
            db.session, "upload.created", f"upload {upload.id}", file=upload.filename, bytes=length
        )
        db.session.commit()
    location = url_for("uploads_api.upload_offset", upload_id=upload.id)
    return "", 201, {"Location": location, "Upload-Expires": _http_date(upload.expires_at)}


@bp.route("/<upload_id>", methods=["HEAD"], provide_automatic_options=False)
@requires(Role.EDITOR)
def upload_offset(upload_id: str):
    """Tell how many bytes have arrived: 200 with `Upload-Offset` and `Upload-Length`."""
    upload = resumable.get_owned(db.session, upload_id, current_actor()["id"])
    resumable.finish_if_whole(db.session, upload)
    headers = {
        "Upload-Offset": str(resumable.offset(upload)),
        "Upload-Length": str(upload.length),
    }
    if upload.completed_at is None:
        headers["Upload-Expires"] = _http_date(upload.expires_at)
    return "", 200, headers


@bp.route("/<upload_id>", methods=["PATCH"], provide_automatic_options=False)
@requires(Role.EDITOR)
@large_body
def upload_piece(upload_id: str):
    """Append the body at `Upload-Offset`: 204 with the new offset."""
    if request.mimetype != PIECE_TYPE:
        raise WrongPieceType(f"Send the bytes of a piece as Content-Type: {PIECE_TYPE}.")
    at = _number_header("Upload-Offset")
    upload = resumable.get_owned(db.session, upload_id, current_actor()["id"])
    with _silence_ends_the_piece() as body:
        size = resumable.append(
            db.session, upload, at=at, stream=body, declared=request.content_length
        )
    expires = _http_date(upload.expires_at)
    db.session.commit()
    return "", 204, {"Upload-Offset": str(size), "Upload-Expires": expires}


class _PieceBody:
    """The body of a piece, noting whether it was read to its end."""

    def __init__(self, stream):
        self.stream, self.ended = stream, False

    def read(self, size: int) -> bytes:
        chunk = self.stream.read(size)
        self.ended = self.ended or not chunk
        return chunk


@contextmanager
def _silence_ends_the_piece() -> Iterator[_PieceBody]:
    """Let no read of the piece's body wait more than PIECE_SILENCE_SECONDS.

    A phone that loses its network sends neither FIN nor RST: its piece would wait for bytes,
    holding the upload's lock, for ever, and every resume would be 423. Silent that long, the
    piece ends with the bytes that arrived (`resumable._copy`) and the client resumes on a new
    connection (tus-js-client retries after 0, 1, 3 and 5 s). A piece read to its end gives
    the connection its usual waits back; one cut short keeps the limit, so that gunicorn's
    read of the rest of its body gives up too and closes the connection.
    """
    sock = request.environ.get("gunicorn.socket")  # None under the Flask test client
    body = _PieceBody(request.stream)
    if sock is None:
        yield body
        return
    usual = sock.gettimeout()
    sock.settimeout(PIECE_SILENCE_SECONDS)
    try:
        yield body
    finally:
        if body.ended:
            sock.settimeout(usual)


@bp.route("/<upload_id>", methods=["DELETE"], provide_automatic_options=False)
@requires(Role.EDITOR)
def terminate_upload(upload_id: str):
    """Remove the upload and the bytes received: 204."""
    # locked: an import ending its cancel reads the upload under a lock too (queue's
    # `_upload_given_up`), so one of the two sees the other's end and says "Upload the file
    # again", not "Retry it" (which would be refused)
    upload = resumable.get_owned(db.session, upload_id, current_actor()["id"], lock=True)
    resumable.terminate(db.session, upload)
    audit.record(db.session, "upload.terminated", f"upload {upload_id}")
    db.session.commit()
    return "", 204


def _number_header(name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isdigit() or not value.isascii():
        raise BadRequest(f"Send the header {name} as a whole number of bytes.")
    digits = value.lstrip("0") or "0"
    # Past 19 digits, more bytes than any file has: refused as too large (a length) or not
    # where the upload is (an offset). int() refuses over 4,300 digits.
    return int(digits) if len(digits) <= MAX_DIGITS else 10**MAX_DIGITS


def _http_date(moment) -> str:
    return http_date(aware(moment))
