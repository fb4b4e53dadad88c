"""What every JSON API blueprint needs from a request: a JSON body, whole numbers, CSV out."""

import csv
import io
import json
from collections.abc import Iterable, Sequence

from flask import Response, request, stream_with_context
from werkzeug.routing import IntegerConverter

from .apidoc import MAX_ID
from .errors import BadRequest, Invalid
from .products.rules import SPACE
from .spreadsheet import escape_formula

CSV_FLUSH_ROWS = 2000
MAX_DIGITS = 9


class IdConverter(IntegerConverter):
    """`<int:...>` in routes: at most a 64-bit id, so a larger one is a 404, not a 500."""

    def __init__(self, url_map, fixed_digits=0, min=None, max=MAX_ID, signed=False):  # noqa: A002
        super().__init__(url_map, fixed_digits, min, max, signed)


def json_object(what: str) -> dict:
    """The request's JSON body, which must be an object; raise BadRequest naming `what`."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # arrays nested a thousand deep, which Python's parser gives up on
        body = None
    if not isinstance(body, dict):
        raise BadRequest(f"Send the {what} as a JSON object{_content_type_advice()}.")
    if not _is_unicode(body):
        raise BadRequest(
            "The JSON body holds text that is not Unicode: a lone surrogate escape such as "
            "\\ud800. Send the text as UTF-8, or escape each character outside the Basic "
            "Multilingual Plane as its pair of surrogates."
        )
    return body


def _content_type_advice() -> str:
    """What to add when the body was not sent as JSON (curl -d sends a form's type): the
    object itself may be right."""
    if request.is_json or not request.get_data(cache=True):
        return ""
    return ", with Content-Type: application/json (it came as " + (
        f"{request.mimetype})" if request.mimetype else "no Content-Type)"
    )


def _is_unicode(body: dict) -> bool:
    """Whether every string of a parsed JSON body is Unicode text.

    JSON's parser takes a lone surrogate escape (`"\\ud800"`) and gives a string that no
    database, hash or encoder takes: refused here, not as a 500 wherever it goes next.
    """
    try:
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def json_object_or_none_sent(what: str) -> dict:
    """The request's JSON object body, or {} when it sent no body (every field optional)."""
    return json_object(what) if request.get_data(cache=True) else {}


def refuse_unknown(fields: dict, known: set[str]) -> None:
    """Raise Invalid naming every field of a JSON body that is not one of `known`."""
    unknown = {name: "Unknown field." for name in fields if name not in known}
    if unknown:
        raise Invalid(f"Unknown fields; send only {', '.join(sorted(known))}.", details=unknown)


def page_count(total: int, per_page: int) -> int:
    """How many pages `total` items fill, `per_page` a page (one, empty, for none)."""
    return max(1, -(-total // per_page))


def blank_is_none(value: str | None) -> str | None:
    """`value`, or None when it is blank: a query argument sent empty (`?sort=`, as a form's
    "any" choice sends it) is left out, as the text filters take an empty one."""
    return value if value is not None and value.strip(SPACE) else None


def query_arg(name: str) -> str | None:
    """The query argument `name`, or None when it is left out or blank."""
    return blank_is_none(request.args.get(name))


def whole_number(name: str, default: int, *, most: int | None = None) -> int:
    """A query argument of ASCII digits (or `default` when left out or blank); raise Invalid
    otherwise.

    `most`: a larger one, however many digits it has, is refused naming the range (from 1).
    """
    value = query_arg(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()):  # "²" is a digit to isdigit(), not to int()
        raise Invalid(f"{name} must be a whole number.", details={name: "A whole number."})
    if most is not None and (len(value) > MAX_DIGITS or int(value) > most):
        raise Invalid(f"{name} must be from 1 to {most:,}.", details={name: f"From 1 to {most:,}."})
    if len(value) > MAX_DIGITS:
        raise Invalid(f"{name} is out of range.", details={name: "Too large."})
    return int(value)


def paging(default: int, most: int, size: str = "per_page") -> tuple[int, int]:
    """`page` and the page size (query argument `size`) of a list; raise Invalid naming each
    one below 1 or out of range."""
    per_page = whole_number(size, default, most=most)
    page = whole_number("page", 1)
    below_one = {name: "1 or more." for name, n in (("page", page), (size, per_page)) if n < 1}
    if below_one:
        raise Invalid(f"{' and '.join(below_one)} must be 1 or more.", details=below_one)
    return page, per_page


def csv_download(
    rows: Iterable[Sequence], header: Sequence[str], filename: str, *, bom: bool = False
) -> Response:
    """Stream rows as a CSV attachment (CRLF, as spreadsheets write it), in constant memory.

    A text cell that a spreadsheet would run as a formula gets a `'` in front (the import
    drops it again). `bom`: the file starts with a byte order mark, without which Excel
    reads UTF-8 as the computer's ANSI code page ("Ã¼" for "ü").
    """
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(
        stream_with_context(csv_text(rows, header, bom)), mimetype="text/csv", headers=headers
    )


def true_or_false(name: str, *, default: bool = False) -> bool:
    """A query argument `true` or `false` (left out or blank: `default`); raise Invalid
    otherwise."""
    value = query_arg(name) or ("true" if default else "false")
    if value not in ("true", "false"):
        raise Invalid(f"{name} must be true or false.", details={name: "true or false."})
    return value == "true"


def csv_text(rows: Iterable[Sequence], header: Sequence[str], bom: bool = False):
    """The CSV of `header` and `rows` as `csv_download` sends it, a piece at a time."""
    buffer = io.StringIO("\ufeff" if bom else "")
    buffer.seek(0, io.SEEK_END)
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([escape_formula(name) for name in header])  # a file's own header, too
    for count, row in enumerate(rows, start=1):
        writer.writerow([escape_formula(cell) if isinstance(cell, str) else cell for cell in row])
        if count % CSV_FLUSH_ROWS == 0:
            yield _take(buffer)
    yield _take(buffer)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
