"""CSV downloads open safely in a spreadsheet (no formula runs), and an export imports back as
the same products."""

import csv
import io

import pytest

from product_importer.spreadsheet import escape_formula, unescape_formula
from tests.helpers import import_csv

pytestmark = pytest.mark.usefixtures("live_worker")

FORMULAS = [
    {"sku": '=HYPERLINK("http://evil.example","x")', "name": "+1 555 0100", "description": ""},
    {"sku": "-5", "name": "@SUM(A1:A9)", "description": "=1+1"},
    {"sku": "plain", "name": "a = b", "description": "+ starts with a plus"},
    {"sku": "@home", "name": "-minus", "description": "@mention\r\nand a second line"},
]


def parse(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def catalog(http) -> list[tuple]:
    items = http.get("/api/products?per_page=200&sort=sku").json()["items"]
    return [(p["sku"], p["name"], p["description"]) for p in items]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("'quoted", "'quoted"),
        ("", ""),
    ],
)
def test_a_cell_that_would_start_a_formula_gets_a_quote_and_loses_it_again(value, shown):
    assert escape_formula(value) == shown
    assert unescape_formula(shown) == value


def test_the_export_escapes_formulas_and_imports_back_as_the_same_products(http):
    for fields in FORMULAS:
        assert http.post("/api/products", json=fields).status_code == 201, fields
    before = catalog(http)

    exported = http.get("/api/products/export.csv?sort=sku").text

    for row in parse(exported):
        for value in (row["sku"], row["name"], row["description"]):
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    assert http.delete("/api/products?confirm=true").status_code == 200
    job = import_csv(http, exported.encode())
    assert (job["status"], job["created"], job["rows_invalid"]) == ("completed", 4, 0)
    assert catalog(http) == before


def test_rejected_rows_are_escaped_in_errors_csv(http):
    job = import_csv(http, "sku,name\n\"=cmd|' /C calc'!A0\",\n@SUM(1),\nOK-1,Fine\n")
    assert job["rows_invalid"] == 2

    rows = parse(http.get(f"/api/imports/{job['id']}/errors.csv").text)

    assert [(row["line"], row["sku"]) for row in rows] == [
        ("2", "'=cmd|' /C calc'!A0"),
        ("3", "'@SUM(1)"),
    ]
