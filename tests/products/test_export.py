"""GET /api/products/export.csv: the matching products as CSV that imports back unchanged, in
both modes."""

import csv
import io

from tests.helpers import import_csv

TRICKY = [
    {"sku": "Q-1", "name": 'Quote "inside", comma', "description": "Line one\r\nLine two"},
    {"sku": "q-2", "name": "Semicolon; pipe | tab", "description": "a\tb;c|d"},
    {"sku": "Ü-3", "name": "Ünïcödé ✓ 日本", "description": "", "active": False},
    {"sku": "S-4", "name": "Lone LF", "description": "x\ny", "active": True},
    {"sku": "=1+2", "name": "@formula-looking", "description": "-starts with a dash"},
]


def rows(body: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body, newline="")))


LIST = "/api/products?per_page=200&sort=sku"


def fields(items: list[dict]) -> list[tuple]:
    return [(p["sku"], p["name"], p["description"], p["active"]) for p in items]


def test_the_export_is_a_csv_of_every_product(api):
    for product in TRICKY:
        assert api.post("/api/products", json=product).status_code == 201

    response = api.get("/api/products/export.csv?sort=sku")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.is_streamed
    assert 'filename="products.csv"' in response.headers["Content-Disposition"]
    body = response.get_data(as_text=True)
    assert body.startswith("sku,name,description,active\r\n")
    exported = [(r["sku"], r["name"], r["description"], r["active"] == "true") for r in rows(body)]
    assert exported == [
        tuple(map(shown_as_text, p)) for p in fields(api.get(LIST).get_json()["items"])
    ]
    assert {r["active"] for r in rows(body)} == {"true", "false"}


def shown_as_text(value):
    """What a spreadsheet-safe export writes: a ' before a cell that would start a formula."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") else value


def test_cells_that_would_run_as_formulas_are_escaped_in_the_export(api):
    fields = {"sku": '=HYPERLINK("http://evil.example")', "name": "+1", "description": "@SUM(A1)"}
    assert api.post("/api/products", json=fields).status_code == 201

    (row,) = rows(api.get("/api/products/export.csv").get_data(as_text=True))

    assert (row["sku"], row["name"], row["description"]) == (
        '\'=HYPERLINK("http://evil.example")',
        "'+1",
        "'@SUM(A1)",
    )


def test_the_export_keeps_the_filters_and_the_sort(api):
    for n, name in enumerate(["Blue widget", "Red widget", "Blue gadget"]):
        api.post("/api/products", json={"sku": f"E-{n}", "name": name, "active": n != 1})

    body = api.get("/api/products/export.csv?name=WIDGET&sort=-sku").get_data(as_text=True)
    assert [r["sku"] for r in rows(body)] == ["E-1", "E-0"]
    body = api.get("/api/products/export.csv?q=blue&active=true&sort=name")
    assert [r["sku"] for r in rows(body.get_data(as_text=True))] == ["E-2", "E-0"]
    assert rows(api.get("/api/products/export.csv?sku=none").get_data(as_text=True)) == []


def test_an_invalid_filter_is_422_before_any_csv(api):
    response = api.get("/api/products/export.csv?active=perhaps")
    assert response.status_code == 422
    assert api.get("/api/products/export.csv?sort=price").status_code == 422


def test_a_large_export_streams_in_chunks(client, app):
    from sqlalchemy import text

    from product_importer.extensions import db

    with app.app_context(), db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO products (sku, name, description) "
                "SELECT 'BULK-' || n, 'Product ' || n, repeat('x', 100) "
                "FROM generate_series(1, 10000) AS n"
            )
        )
    response = client.get("/api/products/export.csv")
    chunks = list(response.response)
    assert len(chunks) > 3  # written as it is read, not built whole first
    assert len(rows("".join(c.decode() if isinstance(c, bytes) else c for c in chunks))) == 10000


def test_the_export_imports_back_unchanged(any_http):
    for product in TRICKY:
        assert any_http.post("/api/products", json=product).status_code == 201
    before = fields(any_http.get(LIST).json()["items"])
    exported = any_http.get("/api/products/export.csv").content

    again = import_csv(any_http, exported, filename="products.csv")
    assert again["status"] == "completed", again
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, len(TRICKY))

    assert any_http.delete("/api/products?confirm=true").json() == {"deleted": len(TRICKY)}
    fresh = import_csv(any_http, exported, filename="products.csv")
    assert (fresh["status"], fresh["created"], fresh["duplicate_of"]) == (
        "completed",
        5,
        again["id"],
    )
    assert [warning.split(" of ")[0] for warning in fresh["warnings"]] == [
        f"This file is identical to import #{again['id']}"  # the same file again: said, not refused
    ]
    assert fields(any_http.get(LIST).json()["items"]) == before


def test_an_export_for_excel_starts_with_a_byte_order_mark_and_imports_back_unchanged(any_http):
    for product in TRICKY:
        assert any_http.post("/api/products", json=product).status_code == 201

    plain = any_http.get("/api/products/export.csv?sort=sku").content
    for_excel = any_http.get("/api/products/export.csv?sort=sku&bom=true").content

    assert for_excel == b"\xef\xbb\xbf" + plain  # without it Excel shows "Ãœ" for "Ü"
    assert plain.startswith(b"sku,")
    again = import_csv(any_http, for_excel, filename="products.csv")
    assert (again["status"], again["unchanged"], again["warnings"]) == (
        "completed",
        len(TRICKY),
        [],
    )
    refused = any_http.get("/api/products/export.csv?bom=yes")
    assert (refused.status_code, set(refused.json()["error"]["details"])) == (422, {"bom"})


def test_empty_filters_sort_and_bom_export_as_left_out(api):
    """A form's blank choices (`active=`, `sort=`) are no filter and the default order."""
    for product in TRICKY:
        assert api.post("/api/products", json=product).status_code == 201

    with api.get("/api/products/export.csv") as left_out:
        every = left_out.get_data(as_text=True)
    with api.get("/api/products/export.csv?sku=&active=&sort=&bom=") as blank:
        assert (blank.status_code, blank.get_data(as_text=True)) == (200, every)
    assert len(rows(every)) == len(TRICKY)
    refused = api.get("/api/products/export.csv?active=any")
    assert refused.status_code == 422
    assert refused.get_json()["error"]["details"] == {
        "active": "Must be true or false (or left out for any)."
    }
