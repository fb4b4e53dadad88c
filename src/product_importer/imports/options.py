"""The options an import is asked with (plan, max_invalid, columns): parsed, checked, applied.

Pure: the API checks what people send with these, and the runner applies them.
"""

import json
import math
import re
from dataclasses import dataclass

from ..errors import Invalid
from .csv_rows import KNOWN_COLUMNS, REQUIRED_COLUMNS

# A count of rows, or a percentage from 0 to 100 (the OpenAPI document has the same pattern).
MAX_INVALID_PATTERN = r"^\s*(\d{1,12}|(100(\.0{1,4})?|\d{1,2}(\.\d{1,4})?)\s*%)\s*$"
MAX_INVALID = re.compile(MAX_INVALID_PATTERN)
MAX_COLUMN_NAME = 255
FIELDS = ("plan", "max_invalid", "columns")
TRUE_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class Options:
    """How to run an import: as a plan, with an error threshold, with a column mapping."""

    plan: bool = False
    max_invalid: str | None = None
    columns: dict[str, str | None] | None = None


def parse(values: dict) -> dict:
    """The options given in form fields or a JSON body; raise Invalid naming each bad one."""
    errors, options = {}, {}
    parsers = {"plan": _plan, "max_invalid": _max_invalid, "columns": _columns}
    for name, parser in parsers.items():
        value = values.get(name)
        if value is None or value == "":
            continue
        try:
            options[name] = parser(value)
        except ValueError as error:
            errors[name] = str(error)
    if errors:
        raise Invalid("Some import options are not valid.", details=errors)
    return options


def _plan(value) -> bool:
    if isinstance(value, bool):
        return value
    word = TRUE_WORDS.get(str(value).strip().lower())
    if word is None:
        raise ValueError("true or false.")
    return word


def _max_invalid(value) -> str:
    """A count of rows (`100`) or a percentage of the rows read (`1%`, `0.5%`)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("A count of rows (100) or a percentage (1%).")
    text = str(value)
    if not MAX_INVALID.fullmatch(text):
        raise ValueError("A count of rows (100) or a percentage from 0 to 100 (1%).")
    return "".join(text.split())


def _columns(value) -> dict[str, str | None]:
    """A JSON object from sku, name, description, active to header names of the file; null for
    an optional field says the file has none (not even a column of the field's own name)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError('A JSON object such as {"sku": "Item Code"}.') from None
    if not isinstance(value, dict) or not value:
        raise ValueError('A JSON object such as {"sku": "Item Code"}.')
    mapping = {}
    for field, column in value.items():
        if field not in KNOWN_COLUMNS:
            raise ValueError(f"{field!r} is not a product field; use {', '.join(KNOWN_COLUMNS)}.")
        if column is None and field not in REQUIRED_COLUMNS:
            mapping[field] = None
            continue
        if not isinstance(column, str) or not column.strip() or len(column) > MAX_COLUMN_NAME:
            raise ValueError(f"The column for {field} must be a header name of the file.")
        mapping[field] = column.strip()
    lowered = [column.lower() for column in mapping.values() if column is not None]
    if len(set(lowered)) != len(lowered):
        raise ValueError("Each file column can feed one field only.")
    return mapping


def invalid_limit(max_invalid: str | None, rows: int | None) -> float:
    """How many invalid rows are allowed: all without a threshold; a percentage needs `rows`."""
    if not max_invalid:
        return math.inf
    if max_invalid.endswith("%"):
        if rows is None:
            return math.inf  # known only once the whole file is read
        return float(max_invalid[:-1]) / 100 * rows
    return int(max_invalid)
