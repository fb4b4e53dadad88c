"""Messy product CSVs through the real app, against an oracle written from docs/csv-format.md.

Hypothesis writes files as spreadsheets and other systems do (four delimiters, quoting,
embedded line breaks and quotes, CRLF, LF or CR, a BOM, Windows-1252, gzip, blank lines,
fields too many or too few, unknown, repeated and mapped columns, headers in any case, padding
of every kind, formula escapes, control characters, over-long values, active words) and a
state machine imports them, one after another, into one catalog through HTTP and the
session's Celery worker. The oracle below knows each cell it wrote and reads it as the docs
say, without the app's code: it predicts the catalog (and which products keep their
timestamps), the job's status and counts, `errors.csv` and `rejected.csv`. The rejected rows
file, imported as it came, must reject each row for the same reason (only a person's fixes
change it), an export of the catalog must import back with nothing to write, and a file of
white space alone (BOM, no-break spaces, gzip) is refused at once.

Reasons are worded as tests/imports/test_csv_rows.py words them. Each file is made from a seed
Hypothesis draws: its own draws of every cell varied too little to find anything in the few
imports a run can afford. Shrinking is off for the same reason: a failure names its seeds.
"""

import csv
import gzip
import io
import json
import random
import re
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.helpers import upload_csv, wait_for_job

pytestmark = pytest.mark.usefixtures("live_worker")

JOB_TIMEOUT = 120  # seconds: a busy 2-core machine
# docs/csv-format.md, as the oracle reads it
ACTIVE_WORDS = {"true": True, "1": True, "yes": True, "y": True}
ACTIVE_WORDS |= {"false": False, "0": False, "no": False, "n": False}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# White space (Unicode's White_Space) that is no control character: what trimming removes
TRIMMED = " \t\r\n\u00a0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    map(chr, range(0x2000, 0x200B))
)
KNOWN = ("sku", "name", "description", "active")
MISSING_COLUMN = "Missing required column"
OPEN_QUOTE = "a quoted field is still open at the end of the file"
MALFORMED = (
    "malformed quotes (a closing quote is followed by something other than the delimiter or "
    "the line end): remove the spaces after it, or write a quote inside a quoted value twice, "
    'as in "5"" wide"'
)
BINARY_BYTES = 8 * 1024
# SKUs of a few products, so that files repeat them and meet them again in the catalog; every
# letter lowers alike in Python and PostgreSQL
SKUS = ("ab-1", "Ab-2", "éclair-3", "ØRE-4", "x5", "=Q-6", "-7", "@8", "+9", "sku 10", "z|11")
WORDS = ("anvil", "Rocket", "café", "Ünïcödé", '5" wide', "a,b", "c;d", "e|f", "g\th", "€ 5")
PADDING = ("", "", "", " ", "  ", "\t", "\u00a0", "\u3000", "\u2009", "\u202f", "\r\n", "\n")
CONTROLS = ("\x00", "\x01", "\x1b", "\x7f", "\x85", "\x9f", "\x0b", "\x0c", "\x1c", "\x81", "\x9d")
BAD_ACTIVE = ("maybe", "2", "t", "on", "yes!", "ja")
# What Windows-1252 cannot write, as the nearest it can
TO_CP1252 = str.maketrans(
    {"\u3000": "\u00a0", "\u2009": " ", "\u202f": "\u00a0", "\x85": "\x81", "\x9f": "\x9d"}
)
UNKNOWN = ("Price", "colour", "line", "reason", "", "Notes ")
MAPPED = {"sku": "Item Code", "name": "Title", "description": "Details", "active": "Enabled"}
LINE_BREAK = re.compile(r"\r\n|\r|\n")
UNDEFINED_IN_CP1252 = "\x81\x8d\x8f\x90\x9d"  # read back as the Latin-1 characters


def escape(value: str) -> str:
    """A download's cell: a `'` before what a spreadsheet would run as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def unescape(value: str) -> str:
    """An import drops the `'` before what would start a formula."""
    return value[1:] if value[:1] == "'" and value[1:].startswith(FORMULA_STARTS) else value


def is_control(char: str) -> bool:
    return ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F


def cell_value(cell: str) -> str:
    """A cell as an import reads it: without a formula's escaping quote, trimmed (the quote
    comes first: a download escapes the cell as it is, white space and all)."""
    return unescape(cell.lstrip(TRIMMED)).strip(TRIMMED)


# --- the file -------------------------------------------------------------------------------


@dataclass
class Row:
    """A record as cells (the text each holds once unquoted), and how it is written."""

    cells: list[str]
    quoted: list[bool]
    trouble: str = ""  # "" | "open" (a quote left open at the end) | "malformed"


@dataclass
class Blank:
    """A line of nothing but white space, and no delimiter."""

    text: str


@dataclass
class MessyFile:
    """A file as the generator made it: what each cell holds, and how it is written."""

    header: list[str]  # the header's cells as written (before quoting)
    header_quoted: list[bool]
    rows: list  # Row | Blank
    delimiter: str
    newline: str
    encoding: str  # utf-8 | utf-8-sig | cp1252
    compressed: bool
    final_newline: bool
    blank_before: int
    columns: dict | None = None  # the column mapping sent with the upload
    lines: list[int] = field(default_factory=list)  # the line each row starts on (render)

    def text(self) -> str:
        """The file as text, noting the line each row starts on."""
        out = [self.newline * self.blank_before]
        out.append(self.record(self.header, self.header_quoted, "") + self.newline)
        self.lines = []
        for position, row in enumerate(self.rows):
            self.lines.append(line_breaks("".join(out)) + 1)
            last = position == len(self.rows) - 1
            if isinstance(row, Blank):
                out.append(row.text)
            else:
                out.append(self.record(row.cells, row.quoted, row.trouble))
            if row_ends(row) and (not last or self.final_newline):
                out.append(self.newline)
        return "".join(out)

    def record(self, cells: list[str], quoted: list[bool], trouble: str) -> str:
        written = [quote(cell, q, self.delimiter) for cell, q in zip(cells, quoted, strict=True)]
        if trouble == "open":  # its last cell opens a quote that never closes
            written[-1] = '"' + cells[-1]
        elif trouble == "malformed":  # a closing quote followed by something else
            written[-1] = f'"{cells[-1]}"x'
        return self.delimiter.join(written)

    def data(self) -> bytes:
        text = self.text()
        cp1252 = self.encoding == "cp1252"
        data = encode_cp1252(text) if cp1252 else text.encode(self.encoding)
        return gzip.compress(data, mtime=0) if self.compressed else data


def row_ends(row) -> bool:
    return not (isinstance(row, Row) and row.trouble == "open")


def quote(cell: str, quoted: bool, delimiter: str) -> str:
    needed = any(char in cell for char in (delimiter, "\r", "\n")) or cell.startswith('"')
    if quoted or needed:
        return '"' + cell.replace('"', '""') + '"'
    return cell


def line_breaks(text: str) -> int:
    return len(LINE_BREAK.findall(text))


def encode_cp1252(text: str) -> bytes:
    """Windows-1252, with the five bytes it leaves undefined written as their Latin-1 chars."""
    return b"".join(
        bytes([ord(char)]) if char in UNDEFINED_IN_CP1252 else char.encode("cp1252")
        for char in text
    )


# --- generated files ------------------------------------------------------------------------


def value_of(rng: random.Random, column: str) -> str:
    """A cell of a column: mostly fine, now and then wrong in a way the docs name."""
    roll = rng.randrange(100)
    if column == "active":
        if roll < 50:
            word = rng.choice(list(ACTIVE_WORDS))
            return rng.choice([word, word.upper(), word.title()])
        return rng.choice(["", " ", *BAD_ACTIVE]) if roll < 90 else "y"
    if column == "sku":
        base = "".join(c.swapcase() if rng.random() < 0.5 else c for c in rng.choice(SKUS))
    else:
        base = " ".join(rng.choices(WORDS, k=rng.randint(1, 3)))
    return messed(rng, base, roll, 10_000 if column == "description" else 255)


def messed(rng: random.Random, base: str, roll: int, limit: int) -> str:
    """`base`, or now and then something made of it that a file may hold."""
    if roll < 5:
        return ""
    if roll < 12:
        return (base * limit)[: limit + rng.randint(0, 1)]  # the longest, or one more
    if roll < 15:
        at = rng.randint(0, len(base))
        return base[:at] + rng.choice(CONTROLS) + base[at:]
    if roll < 20:  # a formula, escaped as a download writes it, or not
        formula = rng.choice(FORMULA_STARTS[:4] + ("\t", "\r\n")) + base
        return escape(formula) if rng.random() < 0.5 else formula
    if roll < 23:
        return "'" + base
    if roll < 28:  # a line break or a tab: allowed in a description only
        return base + rng.choice(["\n", "\r\n", "\r", "\t"]) + base
    return base


def padded(rng: random.Random, value: str) -> str:
    return rng.choice(PADDING) + value + rng.choice(PADDING)


def header_cell(rng: random.Random, name: str) -> str:
    spelled = rng.choice([name, name.upper(), name.title(), name.swapcase()])
    return rng.choice(["", "", " ", "  "]) + spelled + rng.choice(["", " "])


def header_of(rng: random.Random) -> tuple[list[str], list[str | None], dict | None]:
    """Header cells, what each holds (a known column or None), and a column mapping."""
    known = ["sku", "name"] + [c for c in ("description", "active") if rng.random() < 0.6]
    roll = rng.randrange(100)
    if roll < 4:
        known.remove(rng.choice(["sku", "name"]))  # the job fails at once
    elif roll < 7:
        known.append(rng.choice(known))  # named twice: the job fails too
    unknown = rng.choices(UNKNOWN, k=rng.choice([0, 0, 1, 2]))
    holds = rng.sample(known + [None] * len(unknown), len(known) + len(unknown))
    present = sorted(set(known))
    mapped = rng.sample(present, rng.randint(1, len(present))) if rng.random() < 0.25 else []
    if mapped and rng.random() < 0.1:
        mapped.append(rng.choice(["description", "active"]))  # maybe not in the header
    columns = {name: rng.choice([MAPPED[name], MAPPED[name].upper()]) for name in mapped}
    cells, names = [], iter(unknown)
    for column in holds:
        name = MAPPED[column] if column in columns else (column or next(names))
        cells.append(header_cell(rng, name) if name else "")
    return cells, holds, columns or None


def rows_of(rng: random.Random, holds: list, delimiter: str) -> list:
    rows = []
    for _ in range(rng.choice([0, rng.randint(1, 8), rng.randint(1, 40)])):
        if rng.random() < 0.1:
            blank = rng.choice(["", " ", "  ", "\t"])
            rows.append(Blank(" " if blank == "\t" and delimiter == "\t" else blank))
            continue
        cells = [padded(rng, value_of(rng, column or "description")) for column in holds]
        if rng.random() < 0.04:  # as spreadsheets end a sheet: delimiters, no values
            cells = [rng.choice(["", " "]) for _ in holds]
        roll = rng.randrange(100)
        if roll < 4:
            cells.append(rng.choice(["", "surplus"]))
        elif roll < 8:
            cells.pop()
        rows.append(Row(cells, [rng.random() < 0.2 for _ in cells]))
    if rows and isinstance(rows[-1], Row) and rng.random() < 0.15:
        row = rows[-1]
        row.trouble = rng.choice(["open", "malformed"])
        row.cells[-1] = row.cells[-1].replace('"', "")
        if row.trouble == "malformed":
            row.cells[-1] = row.cells[-1].replace("\r", "").replace("\n", "")
    return rows


def messy_file(rng: random.Random) -> MessyFile:
    """A file made from a seed (Hypothesis varies little when it draws every cell itself)."""
    header, holds, columns = header_of(rng)
    delimiter = rng.choice([",", ";", "\t", "|"])
    encoding = rng.choice(["utf-8", "utf-8-sig", "cp1252"])
    file = MessyFile(
        header=header,
        header_quoted=[rng.random() < 0.2 for _ in header],
        rows=rows_of(rng, holds, delimiter),
        delimiter=delimiter,
        newline=rng.choice(["\r\n", "\n", "\r"]),
        encoding=encoding,
        compressed=rng.random() < 0.2,
        final_newline=rng.random() < 0.8,
        blank_before=rng.choice([0, 0, 0, 1, 2]),
        columns=columns,
    )
    if encoding == "cp1252":
        for row in [Row(file.header, []), *file.rows]:
            if isinstance(row, Row):
                row.cells[:] = [cell.translate(TO_CP1252) for cell in row.cells]
        text = file.text()
        if text.isascii() or not writes_in_cp1252(text):
            file.encoding = "utf-8"  # ASCII is UTF-8 too; the others cannot be written so
        else:
            assume(not decodes_as_utf8(file.data()))  # Windows-1252 bytes that happen to be
    return file


def writes_in_cp1252(text: str) -> bool:
    try:
        encode_cp1252(text)
    except UnicodeEncodeError:
        return False
    return True


def decodes_as_utf8(data: bytes) -> bool:
    try:
        (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- the oracle -----------------------------------------------------------------------------


@dataclass
class Expected:
    status: str
    error: str = ""  # a part of the job's error
    header: list | None = None
    catalog: dict = field(default_factory=dict)  # lower(sku) -> (sku, name, description, active)
    written: set = field(default_factory=set)  # keys of the products it creates or updates
    counts: dict = field(default_factory=dict)
    rejected: list = field(default_factory=list)  # (line, sku, reason, cells or None)
    warnings: list = field(default_factory=list)  # a part of each warning
    most_common: set = field(default_factory=set)  # reasons a failed job may name


def read_header(file: MessyFile) -> tuple[dict | None, str]:
    """Column positions by field, as the docs match them; None and the reason if it fails."""
    wanted = {name.lower(): field for field, name in (file.columns or {}).items()}
    for known in KNOWN:
        if known not in (file.columns or {}):
            wanted.setdefault(known, known)
    positions = {}
    for position, cell in enumerate(file.header):
        field_ = wanted.get(cell.strip().lower())
        if field_ in positions:
            return None, "twice"
        if field_:
            positions[field_] = position
    needed = {"sku", "name"} | set(file.columns or {})
    if needed - positions.keys():
        return None, MISSING_COLUMN
    return positions, ""


def check_row(cells: list[str], positions: dict, width: int) -> tuple[tuple | None, str, str]:
    """(values, reported sku, reason): values None when the row is rejected."""
    sku_at = positions["sku"]
    sku = cell_value(cells[sku_at]) if len(cells) > sku_at else ""
    if len(cells) != width:
        return None, sku, f"wrong number of fields (expected {width}, found {len(cells)})"
    name = cell_value(cells[positions["name"]])
    has_description = "description" in positions
    description = cell_value(cells[positions["description"]]) if has_description else None
    word = cell_value(cells[positions["active"]]) if "active" in positions else ""
    reason = ""
    if not sku or not name:
        reason = f"{'sku' if not sku else 'name'} is empty"
    elif len(sku) > 255 or len(name) > 255:
        reason = f"{'sku' if len(sku) > 255 else 'name'} is longer than 255 characters"
    elif len(description or "") > 10_000:
        reason = "description is longer than 10,000 characters"
    elif word and word.lower() not in ACTIVE_WORDS:
        reason = f'active is not one of true/false, 1/0, yes/no, y/n (found "{word}")'
    elif any(map(is_control, sku + name)):
        reason = "sku or name holds a control character"
    elif any(is_control(char) and char not in "\t\r\n" for char in description or ""):
        reason = "description holds a control character"
    values = None if reason else (sku, name, description, ACTIVE_WORDS.get(word.lower()))
    return values, sku, reason


def expect(file: MessyFile, catalog: dict) -> Expected:
    """What importing `file` into `catalog` (lower(sku) -> values) gives, as the docs say."""
    positions, problem = read_header(file)
    if positions is None:
        return Expected("failed", problem, [cell.strip() for cell in file.header], dict(catalog))
    expected = Expected("completed", catalog=dict(catalog))
    taken = set(positions.values())
    unknown = [cell.strip() for at, cell in enumerate(file.header) if at not in taken]
    if unknown:
        expected.warnings.append("Unknown columns were ignored")
        expected.warnings += [name for name in unknown if name]
    last, rows = read_rows(file, positions, expected.rejected)
    created, updated = merge(last, expected)
    invalid = len(expected.rejected)
    expected.counts = {
        "rows_processed": rows,
        "rows_invalid": invalid,
        "created": created,
        "updated": updated,
        "unchanged": len(last) - created - updated,
        "rows_superseded": rows - invalid - len(last),
    }
    if invalid:
        expected.status = "completed_with_errors"
    if rows and not last:
        expected.status, expected.catalog, expected.written = "failed", dict(catalog), set()
        expected.error = "No valid rows"
        expected.most_common = most_common([reason for _, _, reason, _ in expected.rejected])
    return expected


def read_rows(file: MessyFile, positions: dict, rejected: list) -> tuple[dict, int]:
    """The last valid row of each SKU by lower(sku), and how many rows there are; the rejected
    ones go to `rejected`."""
    last, rows = {}, 0
    for row, line in zip(file.rows, file.lines, strict=True):
        if isinstance(row, Blank) or is_blank(row):
            continue
        rows += 1
        if row.trouble:
            rejected.append((line, None, OPEN_QUOTE if row.trouble == "open" else MALFORMED, None))
            continue
        values, sku, reason = check_row(row.cells, positions, len(file.header))
        if values is None:
            # the report shows the SKU trimmed of any white space left, cut short, NUL replaced
            reported = sku.strip()[:255].replace("\x00", "\ufffd") or None
            rejected.append((line, reported, reason, row.cells))
        else:
            last[values[0].lower()] = values
    return last, rows


def is_blank(row: Row) -> bool:
    """Whether a row of one cell, white space only, reads as a blank line (as it looks)."""
    return len(row.cells) == 1 and not row.trouble and not row.cells[0].strip(TRIMMED)


def merge(last: dict, expected: Expected) -> tuple[int, int]:
    """Write the rows into the expected catalog; return how many are created and updated."""
    created = updated = 0
    for key, (sku, name, description, active) in last.items():
        old = expected.catalog.get(key)
        if old is None:
            new = (sku, name, description or "", True if active is None else active)
            created += 1
        else:
            description = old[2] if description is None else description
            new = (sku, name, description, old[3] if active is None else active)
            if new == old:
                continue
            updated += 1
        expected.catalog[key], expected.written = new, expected.written | {key}
    return created, updated


def most_common(reasons: list[str]) -> set[str]:
    """The reasons, without their details, that a file of no valid row may name."""
    keys = [reason.split(" (")[0] for reason in reasons]
    top = max(map(keys.count, keys))
    return {key for key in keys if keys.count(key) == top}


# --- the app --------------------------------------------------------------------------------


def downloaded(http, path: str) -> list[list[str]]:
    response = http.get(path)
    assert response.status_code == 200, response.text
    return list(csv.reader(io.StringIO(response.text, newline="")))


def check_job(job: dict, expected: Expected) -> None:
    assert job["status"] == expected.status, job
    if expected.status == "failed":
        assert expected.error in job["error"], job
        if expected.header is not None:
            assert job["header"] == expected.header, job
        if expected.most_common:  # a file of one row says its reason in the singular
            named = ("reason: {} (", "only row was rejected: {}.")
            said = [form.format(key) for key in expected.most_common for form in named]
            assert any(words in job["error"] for words in said), job
        return
    assert {name: job[name] for name in expected.counts} == expected.counts, job
    for part in expected.warnings:
        assert any(part in warning for warning in job["warnings"]), (part, job["warnings"])


def check_rejected(http, job_id: int, file: MessyFile, expected: Expected) -> None:
    errors = downloaded(http, f"/api/imports/{job_id}/errors.csv")
    assert errors[0] == ["line", "sku", "reason"]
    wanted = [
        [str(line), escape(sku or ""), escape(reason)] for line, sku, reason, _ in expected.rejected
    ]
    assert errors[1:] == wanted
    rejected = downloaded(http, f"/api/imports/{job_id}/rejected.csv")
    assert rejected[0] == ["line", "reason", *map(escape, file.header)]
    wanted = [
        [str(line), escape(reason), *map(escape, cells or [])]
        for line, _, reason, cells in expected.rejected
    ]
    assert rejected[1:] == wanted


def again(rejected: tuple, width: int) -> list[str]:
    """The sku and reason of a rejected row once more, in the rejected rows file (which puts
    `line` and `reason` before the file's columns)."""
    _line, sku, reason, cells = rejected
    if cells is None or len(cells) != width:
        found = 2 + len(cells or [])
        reported = sku if cells else None
        return [
            escape(reported or ""),
            f"wrong number of fields (expected {width + 2}, found {found})",
        ]
    return [escape(sku or ""), escape(reason)]


class CsvHunt(RuleBasedStateMachine):
    """One catalog, the files imported into it one after another, and the oracle's view of it."""

    http = catalog_of = None  # set by the test

    def __init__(self):
        super().__init__()
        self.catalog: dict = {}
        self.stamps: dict = {}  # lower(sku) -> updated_at
        self.imports = 0  # with the seed drawn, what each file is made from
        self.last_rejected = None  # (job id, file, expected) of the last import that rejected rows

    @initialize(seeds=st.lists(st.tuples(st.sampled_from(SKUS), st.booleans()), max_size=5))
    def start(self, seeds):
        deleted = self.http.delete("/api/products", params={"confirm": "true"})
        assert deleted.status_code == 200, deleted.text
        for sku, active in seeds:
            fields = {"sku": sku, "name": f"Seed {sku}", "description": "kept", "active": active}
            response = self.http.post("/api/products", json=fields)
            assert response.status_code in (201, 409), response.text
            if response.status_code == 201:
                self.catalog[sku.lower()] = (sku, f"Seed {sku}", "kept", active)
        self.stamps = self.read_catalog()[1]

    def read_catalog(self) -> tuple[dict, dict]:
        rows = self.catalog_of()
        products = {row[1].lower(): (row[1], row[2], row[3], row[4]) for row in rows}
        return products, {row[1].lower(): row[6] for row in rows}

    def upload(self, data: bytes, filename: str, form: dict):
        return upload_csv(self.http, data, filename, form)

    @rule(seed=st.integers(0, 2**32))
    def import_file(self, seed):
        self.imports += 1
        file = messy_file(random.Random(f"{seed}/{self.imports}"))
        data = file.data()
        form = {"columns": json.dumps(file.columns)} if file.columns else {}
        response = self.upload(data, "messy.csv.gz" if file.compressed else "messy.csv", form)
        plain = gzip.decompress(data) if file.compressed else data
        if b"\x00" in plain[:BINARY_BYTES]:
            assert response.status_code == 422, response.text
            return
        assert response.status_code == 202, response.text
        expected = expect(file, self.catalog)
        if file.encoding == "cp1252":
            expected.warnings.append("Windows-1252")
        job = wait_for_job(self.http, response.json()["id"], JOB_TIMEOUT)
        check_job(job, expected)
        if expected.header is None:
            check_rejected(self.http, job["id"], file, expected)
            if expected.rejected:
                self.last_rejected = (job["id"], file, expected)
        self.check_catalog(expected)

    @precondition(lambda self: self.last_rejected)
    @rule()
    def rejected_rows_import_back_rejected_alike(self):
        """The rejected rows file, imported as it came, rejects each row for the same reason:
        it holds the cells as the file had them, so only the fixes a person makes change it."""
        job_id, file, expected = self.last_rejected
        self.last_rejected = None
        data = self.http.get(f"/api/imports/{job_id}/rejected.csv").content
        form = {"columns": json.dumps(file.columns)} if file.columns else {}
        job = wait_for_job(self.http, self.upload(data, "rejected.csv", form).json()["id"])
        assert job["status"] == "failed", job
        width = len(file.header)
        wanted = [again(rejected, width) for rejected in expected.rejected]
        errors = downloaded(self.http, f"/api/imports/{job['id']}/errors.csv")
        assert [row[1:] for row in errors[1:]] == wanted
        self.check_catalog(Expected("failed", catalog=self.catalog))

    def check_catalog(self, expected: Expected) -> None:
        products, stamps = self.read_catalog()
        assert products == expected.catalog
        kept = {key: stamp for key, stamp in self.stamps.items() if key not in expected.written}
        assert {key: stamps[key] for key in kept} == kept, "a product not written was stamped"
        self.catalog, self.stamps = products, stamps

    @rule(
        blank=st.lists(st.sampled_from(["", " ", "\t", "\r\n", "\n", "\r", "\u00a0"])),
        bom=st.booleans(),
        compressed=st.booleans(),
    )
    def a_file_of_white_space_is_refused(self, blank, bom, compressed):
        """422, as the docs say, however its white space is spelled."""
        data = ("\ufeff" if bom else "").encode() + "".join(blank).encode()
        data = gzip.compress(data, mtime=0) if compressed else data
        response = self.upload(data, "blank.csv", {})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid", response.text

    @rule()
    def export_imports_back_unchanged(self):
        response = self.http.get("/api/products/export.csv")
        assert response.status_code == 200, response.text
        rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
        exported = {
            unescape(row["sku"]).lower(): (
                *(unescape(row[name]) for name in ("sku", "name", "description")),
                {"true": True, "false": False}[row["active"]],
            )
            for row in rows
        }
        assert exported == self.catalog
        job = wait_for_job(self.http, self.upload(response.content, "export.csv", {}).json()["id"])
        assert job["status"] == "completed", job
        counts = (job["created"], job["updated"], job["unchanged"], job["rows_invalid"])
        assert counts == (0, 0, len(self.catalog), 0), job
        self.check_catalog(Expected("completed", catalog=self.catalog))


def test_messy_csv_files_import_as_the_docs_say(http, catalog):
    CsvHunt.http, CsvHunt.catalog_of = http, staticmethod(catalog)
    hunt = settings(
        max_examples=10,
        stateful_step_count=8,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # shrinking would import files for minutes
    )
    run_state_machine_as_test(CsvHunt, settings=hunt)
