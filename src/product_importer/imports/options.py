"""The options an import is asked with (plan, max_invalid, columns): parsed, checked, applied.

Pure: the API checks what people send with these, and the runner applies them.
"""

import json
import math
import re
from dataclasses import dataclass

from ..errors import Invalid
from ..products import rules
from .csv_rows import KNOWN_COLUMNS, REQUIRED_COLUMNS

# A count of rows, or a percentage from 0 to 100 (the OpenAPI document has the same patterns).
# Spaces around it are allowed, no other white space, and digits are 0-9: JSON Schema's \s
# and \d are other sets than Python's, and the document must refuse what the server refuses.
MAX_INVALID_PATTERN = r"^ *([0-9]{1,12}|(100(\.0{1,4})?|[0-9]{1,2}(\.[0-9]{1,4})?) *%) *$"
MAX_INVALID = re.compile(MAX_INVALID_PATTERN)
MAX_INVALID_COUNT = 10**12 - 1  # a count of twelve digits, as the pattern allows
# A form field's plan, as OpenAPI spells a boolean in a form (any case); JSON has booleans.
# Not 1 or 0: a form cannot tell the number 0, which the document refuses, from the text "0".
PLAN_WORDS = {"true": True, "false": False}
MAX_COLUMN_NAME = 255
FIELDS = ("plan", "max_invalid", "columns")
# A column name is blank when it holds only these: JSON Schema's white space (\s).
BLANK = rules.SPACE + "\ufeff"


@dataclass(frozen=True)
class Options:
    """How to run an import: as a plan, with an error threshold, with a column mapping."""

    plan: bool = False
    max_invalid: str | None = None
    columns: dict[str, str | None] | None = None


def parse(values: dict, *, json_body: bool = False) -> dict:
    """The options of form fields (and of the command line), or of a JSON body; raise Invalid
    naming each bad one. A form field left empty, or a JSON null, is an option not given."""
    errors, options = {}, {}
    parsers = JSON_PARSERS if json_body else FORM_PARSERS
    for name, parser in parsers.items():
        value = values.get(name)
        if value is None or (value == "" and not json_body):
            continue
        try:
            options[name] = parser(value)
        except ValueError as error:
            errors[name] = str(error)
    if errors:
        raise Invalid("Some import options are not valid.", details=errors)
    return options


def _form_plan(value) -> bool:
    """A form field's `true` or `false`, or the command line's flag."""
    if isinstance(value, bool):
        return value
    plan = PLAN_WORDS.get(value.lower()) if isinstance(value, str) else None
    if plan is None:
        raise ValueError("true or false.")
    return plan


def _json_plan(value) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false (a JSON boolean).")
    return value


def _max_invalid(value) -> str:
    """A count of rows (`100`, or 100 in JSON) or a percentage of the rows read (`1%`)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INVALID_COUNT:
        return str(value)
    if not isinstance(value, str) or not MAX_INVALID.fullmatch(value):
        raise ValueError("A count of rows (100) or a percentage from 0 to 100 (1%).")
    return "".join(value.split())


def _form_columns(value) -> dict[str, str | None]:
    """The mapping as JSON text (a form field, the command line's --columns)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # RecursionError: nested a thousand deep
            raise ValueError('A JSON object such as {"sku": "Item Code"}.') from None
    return _json_columns(value)


def _json_columns(value) -> dict[str, str | None]:
    """A JSON object from sku, name, description, active to header names of the file; null for
    an optional field says the file has none (not even a column of the field's own name)."""
    if not isinstance(value, dict) or not value:
        raise ValueError('A JSON object such as {"sku": "Item Code"}.')
    mapping = {}
    for field, column in value.items():
        if field not in KNOWN_COLUMNS:
            raise ValueError(f"{field!r} is not a product field; use {', '.join(KNOWN_COLUMNS)}.")
        if column is None and field not in REQUIRED_COLUMNS:
            mapping[field] = None
            continue
        mapping[field] = _column_name(field, column)
    lowered = [column.lower() for column in mapping.values() if column is not None]
    if len(set(lowered)) != len(lowered):
        raise ValueError("Each file column can feed one field only.")
    return mapping


def _column_name(field: str, column) -> str:
    """A header name as the file would have it: one line, not blank, at most 255 characters."""
    if not isinstance(column, str) or not column.strip(BLANK) or len(column) > MAX_COLUMN_NAME:
        raise ValueError(f"The column for {field} must be a header name of the file.")
    if rules.CONTROL.search(column):
        where = rules.where_control(column, rules.CONTROL)
        raise ValueError(f"The column for {field} must not hold control characters. {where}")
    if rules.LONE_SURROGATE.search(column):
        raise ValueError(f"The column for {field} must be Unicode text, without a lone surrogate.")
    return column.strip(rules.SPACE)


FORM_PARSERS = {"plan": _form_plan, "max_invalid": _max_invalid, "columns": _form_columns}
JSON_PARSERS = {"plan": _json_plan, "max_invalid": _max_invalid, "columns": _json_columns}


def invalid_limit(max_invalid: str | None, rows: int | None) -> float:
    """How many invalid rows are allowed: all without a threshold; a percentage needs `rows`."""
    if not max_invalid:
        return math.inf
    if max_invalid.endswith("%"):
        if rows is None:
            return math.inf  # known only once the whole file is read
        return float(max_invalid[:-1]) / 100 * rows
    return int(max_invalid)
