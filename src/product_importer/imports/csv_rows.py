"""Stream a product CSV: decompress, decode, find the header, validate rows. Pure, no database.

The reader works on any binary file object, in constant memory: it never holds more than a
batch of rows, and a physical line longer than MAX_LINE_BYTES fails the file instead of
filling memory.
"""

import codecs
import csv
import gzip
import io
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import BinaryIO, TextIO

from ..products.rules import (
    ACTIVE_WORDS,
    DESCRIPTION_CONTROL,
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_SKU,
    SPACE,
    as_imported,
    check_values,
    to_nfc,
)
from ..spreadsheet import unescape_formula
from .failures import ExpandsTooFar, HeaderRejected, LineTooLong, NotCsv

MAX_LINE_BYTES = 4 * 1024 * 1024
# Longer than any valid value, short enough that an unclosed quote cannot fill memory.
MAX_FIELD_CHARS = 1024 * 1024
DELIMITERS = (",", ";", "\t", "|")
KNOWN_COLUMNS = ("sku", "name", "description", "active")
REQUIRED_COLUMNS = ("sku", "name")
GZIP_MAGIC = b"\x1f\x8b"
FALLBACK_ENCODING = "x-cp1252-latin1"
# Text is normalised a block of whole lines at a time (`nfc_lines`): about this many characters.
NFC_BLOCK_CHARS = 1 << 18
SNIFF_BYTES = 8192  # a NUL byte this early (decompressed) makes the file binary, not a CSV
BINARY_FILE = (
    "The file is binary, not a CSV (it holds NUL bytes). Export the products as CSV (for "
    "example 'CSV UTF-8' in Excel) and upload that file."
)

csv.field_size_limit(MAX_FIELD_CHARS)


def _cp1252_latin1_table() -> str:
    """Windows-1252, with its five undefined bytes read as the Latin-1 characters."""
    chars = []
    for byte in range(256):
        try:
            chars.append(bytes([byte]).decode("cp1252"))
        except UnicodeDecodeError:
            chars.append(chr(byte))
    return "".join(chars)


_DECODING_TABLE = _cp1252_latin1_table()


def _search_codec(name: str) -> codecs.CodecInfo | None:
    if name.replace("-", "_") != FALLBACK_ENCODING.replace("-", "_"):
        return None

    class IncrementalDecoder(codecs.IncrementalDecoder):
        def decode(self, data: bytes, final: bool = False) -> str:
            return codecs.charmap_decode(data, self.errors, _DECODING_TABLE)[0]

    return codecs.CodecInfo(
        name=FALLBACK_ENCODING,
        encode=codecs.getencoder("cp1252"),
        decode=lambda data, errors="strict": codecs.charmap_decode(data, errors, _DECODING_TABLE),
        incrementaldecoder=IncrementalDecoder,
    )


codecs.register(_search_codec)


class NotUtf8(Exception):
    """The file is not valid UTF-8; read it again as Windows-1252."""


@dataclass(frozen=True)
class Header:
    """Where each known column sits, and what else the header held."""

    positions: dict[str, int]
    field_count: int
    delimiter: str
    unknown: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # the header's cells as the file has them

    def has(self, column: str) -> bool:
        return column in self.positions


@dataclass
class Batch:
    """Rows read since the previous batch: valid ones for staging, rejected ones for the report.

    A valid row is `(line, sku, name, description or None, active or None)`; None means the
    file has no such column (or, for active, left the cell empty): keep what the catalog has.
    A rejected row is `(line, sku or None, reason, cells)`: `cells` are the row as the file
    had it (None when the row could not be split into cells), for the rejected-rows file.
    """

    valid: list[tuple] = field(default_factory=list)
    rejected: list[tuple] = field(default_factory=list)
    rows_read: int = 0


class GuardedReader(io.RawIOBase):
    """A binary source that counts bytes and refuses oversized or line-less data."""

    def __init__(self, source: BinaryIO, *, max_bytes: int | None, too_big_message: str):
        self.source = source
        self.max_bytes = max_bytes
        self.too_big_message = too_big_message
        self.bytes_read = 0
        self.since_newline = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.source.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.bytes_read += size
        if self.max_bytes is not None and self.bytes_read > self.max_bytes:
            raise ExpandsTooFar(self.too_big_message)
        self._check_line_length(data)
        return size

    def _check_line_length(self, data: bytes) -> None:
        last_break = max(data.rfind(b"\n"), data.rfind(b"\r"))
        self.since_newline = (
            len(data) - last_break - 1 if last_break >= 0 else (self.since_newline + len(data))
        )
        if self.since_newline > MAX_LINE_BYTES:
            raise LineTooLong(
                f"A line is longer than {MAX_LINE_BYTES:,} bytes: this does not look like a "
                "CSV file. Export the products as CSV and upload that file."
            )


class CsvFile:
    """An open product CSV: `header`, `warnings`, `batches()`, and bytes consumed so far."""

    def __init__(
        self,
        raw: BinaryIO,
        *,
        encoding: str = "utf-8-sig",
        max_decompressed_bytes: int | None = None,
        columns: dict[str, str | None] | None = None,
    ):
        self.raw = raw
        self.columns = columns
        self.encoding = encoding
        self.max_decompressed_bytes = max_decompressed_bytes
        self.warnings: list[str] = []
        self.reject_reasons: Counter[str] = Counter()
        self._guard = GuardedReader(
            _decompressed(raw),
            max_bytes=max_decompressed_bytes if _is_gzip(raw) else None,
            too_big_message=_too_big_message(max_decompressed_bytes),
        )
        buffered = io.BufferedReader(self._guard, buffer_size=1 << 20)
        self._text = io.TextIOWrapper(buffered, encoding=encoding, errors="strict", newline="")
        self._lines_before_data = 0
        self.header = self._read_header()

    def bytes_consumed(self) -> int:
        """Bytes of the stored file read so far (compressed bytes for a gzip file)."""
        return self.raw.tell()

    def _read_header(self) -> Header | None:
        """Read the first non-blank line as the header; None for a file without one."""
        try:
            for line in self._text:
                self._lines_before_data += 1
                if without_bom(line).strip():  # a line of only a BOM is blank too
                    return parse_header(to_nfc(line), self.columns)
        except UnicodeDecodeError as error:
            raise NotUtf8(str(error)) from error
        return None

    def batches(self, size: int = 5000) -> Iterator[Batch]:
        """Yield the data rows, validated, in batches of about `size` rows read."""
        try:
            yield from self._batches(size)
        except UnicodeDecodeError as error:
            raise NotUtf8(str(error)) from error

    def _batches(self, size: int) -> Iterator[Batch]:
        # The hot loop of every import: keep per-row work here to the bare minimum.
        reader = csv.reader(nfc_lines(self._text), delimiter=self.header.delimiter, strict=True)
        accept, check = fast_acceptor(self.header), row_validator(self.header)
        field_count, base = self.header.field_count, self._lines_before_data
        previous_end = base
        batch, count = Batch(), 0
        while True:
            try:
                for row in reader:
                    line = previous_end + 1
                    previous_end = base + reader.line_num
                    if len(row) == field_count and (valid := accept(row, line)):
                        batch.valid.append(valid)
                    elif len(row) <= 1 and not "".join(row).strip():
                        continue  # a blank line
                    else:
                        check(row, line, batch)
                    count += 1
                    if count >= size:
                        yield self._close(batch, count)
                        batch, count = Batch(), 0
                break
            except csv.Error as error:
                line = previous_end + 1
                previous_end = base + reader.line_num
                count += 1
                batch.rejected.append((line, None, _csv_error_reason(error), None))
        yield self._close(batch, count)

    def _close(self, batch: Batch, count: int) -> Batch:
        batch.rows_read = count
        self._count_reasons(batch)
        return batch

    def _count_reasons(self, batch: Batch) -> None:
        """Remember why rows were rejected, to name the most common reason."""
        self.reject_reasons.update(_reason_key(rejected[2]) for rejected in batch.rejected)


def nfc_lines(text: TextIO, block_chars: int = NFC_BLOCK_CHARS) -> Iterator[str]:
    """Yield the lines of `text` in Unicode NFC, checked a block of whole lines at a time.

    `Café` typed in a browser is NFC; from a file exported on macOS it is often NFD (e, then a
    combining accent): two strings that look the same, two SKUs. A line break composes with
    nothing, so lines normalise apart and a mark is never cut from its base at a block's end.
    """
    return chain.from_iterable(map(_nfc_block, iter(lambda: text.readlines(block_chars), [])))


def _nfc_block(lines: list[str]) -> Iterable[str]:
    # An ASCII block (most files, most blocks) is NFC as it is: one join and a flag, in C.
    # Any other is normalised line by line: `normalize` returns a line already NFC at once,
    # where `is_normalized` of the whole block would normalise all of it to compare whenever it
    # holds a combining mark (NFC_Quick_Check "maybe"): twice the cost of an NFD file.
    return lines if "".join(lines).isascii() else map(to_nfc, lines)


def refuse_binary(raw: BinaryIO) -> None:
    """Refuse a file whose first SNIFF_BYTES (decompressed) hold a NUL byte, as an upload is.

    A resumable upload is read before its last byte arrives, so before its upload's check:
    without this, a PNG's first line would be taken for a header that lacks its columns.
    """
    position = raw.tell()
    try:
        head = _decompressed(raw).read(SNIFF_BYTES)
    except (OSError, EOFError, zlib.error):
        head = b""  # a damaged gzip fails as it is read, saying so
    finally:
        raw.seek(position)
    if b"\x00" in head:
        raise NotCsv(f"{BINARY_FILE} The catalog was not changed.")


def open_csv(
    raw: BinaryIO,
    *,
    max_decompressed_bytes: int | None = None,
    columns: dict[str, str | None] | None = None,
) -> CsvFile:
    """Open `raw` as UTF-8 if it is, else as Windows-1252, with a warning.

    `columns` maps product fields to the file's header names, for a header that names them
    otherwise.
    """
    try:
        csv_file = CsvFile(raw, max_decompressed_bytes=max_decompressed_bytes, columns=columns)
    except NotUtf8:
        raw.seek(0)
        csv_file = reopen_as_fallback(
            raw, max_decompressed_bytes=max_decompressed_bytes, columns=columns
        )
    return csv_file


def reopen_as_fallback(
    raw: BinaryIO,
    *,
    max_decompressed_bytes: int | None = None,
    columns: dict[str, str | None] | None = None,
) -> CsvFile:
    """Open `raw` again from the start as Windows-1252, noting it in the warnings."""
    raw.seek(0)
    csv_file = CsvFile(
        raw,
        encoding=FALLBACK_ENCODING,
        max_decompressed_bytes=max_decompressed_bytes,
        columns=columns,
    )
    csv_file.warnings.append(
        "The file is not valid UTF-8, so it was read as Windows-1252. If accented letters look "
        "wrong, save the file as CSV UTF-8 and import it again."
    )
    return csv_file


def _is_gzip(raw: BinaryIO) -> bool:
    position = raw.tell()
    magic = raw.read(2)
    raw.seek(position)
    return magic == GZIP_MAGIC


def _decompressed(raw: BinaryIO) -> BinaryIO:
    return gzip.GzipFile(fileobj=raw, mode="rb") if _is_gzip(raw) else raw


def _too_big_message(limit: int | None) -> str:
    size = f"{limit:,} bytes" if limit else "the limit"
    return (
        f"The compressed file expands to more than {size}. Split it into smaller files "
        "and import them one after the other."
    )


def detect_delimiter(header_line: str) -> str:
    """Return the delimiter that occurs most in the header line (`,` on a tie)."""
    counts = {delimiter: header_line.count(delimiter) for delimiter in DELIMITERS}
    best = max(counts.values())
    return "," if counts[","] == best else max(counts, key=counts.get)


def without_bom(line: str) -> str:
    """The line without a byte order mark at its start: as UTF-8 reads it, or as the
    Windows-1252 fallback reads its three bytes (a file not in UTF-8 that starts with one)."""
    return line.removeprefix("\ufeff").removeprefix("\u00ef\u00bb\u00bf")


def parse_header(line: str, columns: dict[str, str | None] | None = None) -> Header:
    """Match the header's columns (any case, spaces ignored) to the known columns.

    With `columns` (product field -> header name), the mapped fields are found by those names
    and the others by their own; a field mapped to None is not looked for.
    """
    line = without_bom(line)
    delimiter = detect_delimiter(line)
    # a download's `'` before a name that starts a formula goes, as it goes from a cell: the
    # rejected rows of a file whose sku column is `@id` import again with the same mapping
    names = [unescape_formula(name) for name in next(csv.reader([line], delimiter=delimiter))]
    cleaned = [name.strip().lower() for name in names]
    wanted = _wanted_names(columns or {})
    left_out = {known for known, name in (columns or {}).items() if name is None}
    positions: dict[str, int] = {}
    unknown = []
    for position, name in enumerate(cleaned):
        if name in wanted:
            if wanted[name] in positions:
                raise HeaderRejected(
                    f'The header names the column "{name}" twice. Keep one of them.',
                    header=[name.strip() for name in names],
                )
            positions[wanted[name]] = position
        elif name not in left_out:  # a field the mapping leaves out is no surprise
            unknown.append(names[position].strip() or f"(unnamed column {position + 1})")
    missing = [column for column in REQUIRED_COLUMNS if column not in positions]
    missing += [
        known
        for known, name in (columns or {}).items()
        if name is not None and known not in positions and known not in REQUIRED_COLUMNS
    ]
    if missing:
        raise _missing(missing, [name.strip() for name in names], columns)
    return Header(positions, len(names), delimiter, tuple(unknown), tuple(names))


def named_in_short(names: list[str] | tuple[str, ...], shown: int = 20) -> str:
    """Join the names, the first `shown` of them and how many more ("a, b and 4,980 more"):
    a message names a header of thousands of columns without filling the page."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown:,} more"


def _wanted_names(columns: dict[str, str | None]) -> dict[str, str]:
    """Lowercase header name -> product field: the mapping's, then the fields' own names (not
    for a field the mapping says is absent)."""
    # in NFC, as the header is read
    wanted = {to_nfc(name).lower(): known for known, name in columns.items() if name is not None}
    for known in KNOWN_COLUMNS:
        if known not in columns:
            wanted.setdefault(known, known)
    return wanted


# How the error of a file without a required column begins (the command line offers a mapping).
MISSING_COLUMNS = "Missing required column"


def _missing(missing: list[str], header: list[str], columns: dict | None) -> HeaderRejected:
    found = named_in_short(header) or "(empty)"
    mapped = [f"{field} -> {columns[field]}" for field in missing if columns and field in columns]
    plural = "s" if len(missing) > 1 else ""
    where = f" (mapped: {'; '.join(mapped)})" if mapped else ""
    return HeaderRejected(
        f"{MISSING_COLUMNS}{plural}: {', '.join(missing)}{where}. "
        f"The header found was: {found}. The first line must name the columns sku and name "
        "(description and active are optional), or map the file's columns to them and retry.",
        header=header,
    )


def fast_acceptor(header: Header) -> Callable[[list[str], int], tuple | None]:
    """Return a quick check that accepts the common valid row, or returns None to look closer.

    `str.isprintable()` runs in C and is true for almost every real value; whatever it
    does not clear (line breaks, tabs, non-breaking spaces...) goes to the exact checks.
    """
    sku_at, name_at = header.positions["sku"], header.positions["name"]
    description_at = header.positions.get("description")
    active_at = header.positions.get("active")

    def accept(row: list[str], line: int) -> tuple | None:
        sku, name = row[sku_at].strip(SPACE), row[name_at].strip(SPACE)
        if not (0 < len(sku) <= MAX_SKU and 0 < len(name) <= MAX_NAME):
            return None
        if not (sku.isprintable() and name.isprintable()) or "'" in (sku[0], name[0]):
            return None  # the exact checks (and a spreadsheet's escaping quote) are below
        description = active = None
        if description_at is not None:
            description = row[description_at].strip(SPACE)
            if (
                description[:1] == "'"
                or len(description) > MAX_DESCRIPTION
                or not (description.isprintable() or not DESCRIPTION_CONTROL.search(description))
            ):
                return None
        if active_at is not None and (word := row[active_at].strip(SPACE)):
            active = ACTIVE_WORDS.get(word.lower())
            if active is None:
                return None
        return (line, sku, name, description, active)

    return accept


def row_validator(header: Header) -> Callable[[list[str], int, Batch], None]:
    """Return a function that validates one parsed row and adds it to the batch."""
    sku_at, name_at = header.positions["sku"], header.positions["name"]
    description_at = header.positions.get("description")
    active_at = header.positions.get("active")
    field_count = header.field_count

    def validate(row: list[str], line: int, batch: Batch) -> None:
        if len(row) != field_count:
            sku = as_imported(row[sku_at]) if len(row) > sku_at else ""
            reason = f"wrong number of fields (expected {field_count}, found {len(row)})"
            batch.rejected.append((line, _reported_sku(sku), reason, row))
            return
        sku, name = as_imported(row[sku_at]), as_imported(row[name_at])
        description = as_imported(row[description_at]) if description_at is not None else None
        active = as_imported(row[active_at]) if active_at is not None else ""
        reason = check_values(sku, name, description, active)
        if reason:
            batch.rejected.append((line, _reported_sku(sku), reason, row))
        else:
            batch.valid.append((line, sku, name, description, ACTIVE_WORDS.get(active.lower())))

    return validate


def _reported_sku(sku: str) -> str | None:
    """The SKU as the rejected-rows report shows it: trimmed, cut short, without NUL."""
    return sku.strip()[:MAX_SKU].replace("\x00", "\ufffd") or None


# Most often a space after a closing quote (`"b" ,c`, as some tools pad their columns) or a
# quote inside a quoted value written once; the row is rejected, not guessed at.
MALFORMED_QUOTES = (
    "malformed quotes (a closing quote is followed by something other than the delimiter or "
    "the line end): remove the spaces after it, or write a quote inside a quoted value twice, "
    'as in "5"" wide"'
)


def _csv_error_reason(error: csv.Error) -> str:
    text = str(error)
    if "unexpected end of data" in text:
        return "a quoted field is still open at the end of the file"
    if "field larger than field limit" in text:
        return f"a field is longer than {MAX_FIELD_CHARS:,} characters (is a quote left open?)"
    if "expected after" in text:
        return MALFORMED_QUOTES
    return f"unreadable row ({text})"


def _reason_key(reason: str) -> str:
    """Group reasons that differ only in their details, to find the most common one."""
    return reason.split(" (")[0]
