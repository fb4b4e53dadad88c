"""What makes a product's fields valid: one set of rules for the CSV import and the API.

Both paths use these rules, so every product the API accepts exports and imports back
unchanged, and every row the import accepts could have been typed in by hand. Pure: no database.
"""

import re
import unicodedata
from functools import partial

from ..spreadsheet import unescape_formula

MAX_SKU = 255
MAX_NAME = 255
MAX_DESCRIPTION = 10_000
ACTIVE_WORDS = {
    "true": True,
    "1": True,
    "yes": True,
    "y": True,
    "false": False,
    "0": False,
    "no": False,
    "n": False,
}
# C0, DEL and C1 control characters; the description may also hold tabs and line breaks.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
DESCRIPTION_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Half of a UTF-16 pair alone: JSON's "\ud800", or a byte not in UTF-8 in a file name given on
# the command line. Not text: no encoder nor database takes it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# What trimming removes: spaces, tabs, line breaks and Unicode spaces. Not str.strip()'s
# default, which also removes control characters (\x1c-\x1f, \x85) that make a value invalid.
SPACE = "\t\r\n" + "".join(
    char for char in map(chr, range(0x3001)) if char.isspace() and not CONTROL.match(char)
)
EDITABLE = ("sku", "name", "description", "active")
# Text is kept in Unicode NFC: `Café` with its `é` as one character (as a browser sends it), not
# as `e` and a combining accent (as files exported on macOS often have it), which would make a
# second product with the same SKU and miss a filter typed by hand.
to_nfc = partial(unicodedata.normalize, "NFC")


def check_values(sku: str, name: str, description: str | None, active: str) -> str | None:
    """Return why these trimmed CSV values cannot be imported, or None when they can."""
    if not sku:
        return "sku is empty"
    if not name:
        return "name is empty"
    if len(sku) > MAX_SKU:
        return f"sku is longer than {MAX_SKU} characters"
    if len(name) > MAX_NAME:
        return f"name is longer than {MAX_NAME} characters"
    if description is not None and len(description) > MAX_DESCRIPTION:
        return f"description is longer than {MAX_DESCRIPTION:,} characters"
    if active and active.lower() not in ACTIVE_WORDS:
        # quoted without its control characters: a NUL in the reason fails its COPY
        found = CONTROL.sub("\ufffd", active[:20])
        return f'active is not one of true/false, 1/0, yes/no, y/n (found "{found}")'
    if CONTROL.search(sku) or CONTROL.search(name):
        return "sku or name holds a control character"
    if description and DESCRIPTION_CONTROL.search(description):
        return "description holds a control character"
    return None


def clean_fields(fields: dict, *, partial: bool, read_only: set[str]) -> tuple[dict, dict]:
    """Return (trimmed values, problems by field) of API fields; read-only ones are ignored."""
    problems = {
        name: "Unknown field." for name in fields if name not in EDITABLE and name not in read_only
    }
    if not partial:
        problems |= {name: "Required." for name in ("sku", "name") if name not in fields}
    values = {}
    for name in EDITABLE:
        if name in fields:
            try:
                values[name] = CLEANERS[name](fields[name])
            except ValueError as error:
                problems[name] = str(error)
    return values, problems


def _clean_line(value, limit: int) -> str:
    if not isinstance(value, str):
        raise ValueError("Must be text.")
    value = as_imported(value)
    if not value:
        raise ValueError("Required.")
    if len(value) > limit:
        raise ValueError(f"At most {limit} characters.")
    if CONTROL.search(value):
        raise ValueError(f"Must not hold control characters. {where_control(value, CONTROL)}")
    return value


def _clean_description(value) -> str:
    if not isinstance(value, str):
        raise ValueError("Must be text (an empty string clears it).")
    value = as_imported(value)
    if len(value) > MAX_DESCRIPTION:
        raise ValueError(f"At most {MAX_DESCRIPTION:,} characters.")
    if DESCRIPTION_CONTROL.search(value):
        raise ValueError(
            "Must not hold control characters (tabs and line breaks are fine). "
            + where_control(value, DESCRIPTION_CONTROL)
        )
    return value


def where_control(value: str, control: re.Pattern) -> str:
    """Which control character of `value` to remove, and where: none of them can be seen."""
    found = control.search(value)
    return f"Remove the invisible U+{ord(found.group()):04X}, character {found.start() + 1}."


def as_imported(value: str) -> str:
    """`value` as an import reads it from a cell: in NFC, trimmed, without a formula's `'`.

    An export escapes only what starts a formula, so a product named `'=x` would be exported
    as it is and imported back as `=x`: the API stores it as `=x` from the start. A download
    also escapes a cell that starts with a tab or a line break (`'\tx`, `'\t`, in the rejected
    rows file): the `'` goes before the trimming, so the cell reads as it would without it,
    its own escaping `'` included (`'\r\n'\tx` reads as `\r\n'\tx` does: `x`).
    """
    trimmed = to_nfc(value).lstrip(SPACE)
    read = unescape_formula(trimmed)
    if read != trimmed and read != read.lstrip(SPACE):  # a download's `'` before white space
        read = unescape_formula(read.lstrip(SPACE))
    return read.strip(SPACE)


def _clean_active(value) -> bool:
    if not isinstance(value, bool):
        raise ValueError("Must be true or false.")
    return value


CLEANERS = {
    "sku": lambda value: _clean_line(value, MAX_SKU),
    "name": lambda value: _clean_line(value, MAX_NAME),
    "description": _clean_description,
    "active": _clean_active,
}
