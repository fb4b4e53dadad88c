"""The embedded default: the products API on SQLite, where filters are plain LIKE."""

import csv
import io

import flask_migrate
import pytest

from product_importer import create_app
from tests.conftest import admin_token_for, client_with_token


@pytest.fixture(scope="module")
def sqlite_app(test_env, tmp_path_factory):
    path = tmp_path_factory.mktemp("sqlite") / "products.db"
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}",
            "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"check_same_thread": False}},
        }
    )
    with app.app_context():
        flask_migrate.upgrade()
    return app


@pytest.fixture
def sqlite_client(sqlite_app):
    client = client_with_token(sqlite_app, admin_token_for(sqlite_app))
    assert client.delete("/api/products?confirm=true").status_code == 200
    return client


def test_create_filter_sort_and_page_on_sqlite(sqlite_client):
    client = sqlite_client
    for n, (name, active) in enumerate(
        [("Blue widget", True), ("red WIDGET", False), ("Saw", True)]
    ):
        response = client.post(
            "/api/products", json={"sku": f"Sku-{n}", "name": name, "active": active}
        )
        assert response.status_code == 201
    assert client.post("/api/products", json={"sku": "SKU-0", "name": "x"}).status_code == 409

    def skus(query):
        return [p["sku"] for p in client.get(f"/api/products?{query}").get_json()["items"]]

    assert skus("name=widget&sort=sku") == ["Sku-0", "Sku-1"]
    assert skus("q=SAW") == ["Sku-2"]
    assert skus("active=false") == ["Sku-1"]
    assert skus("sort=-name") == ["Sku-2", "Sku-1", "Sku-0"]
    assert skus("sku=%25") == []
    last = client.get("/api/products?per_page=2&page=2&sort=sku").get_json()
    assert ([p["sku"] for p in last["items"]], last["total"], last["pages"]) == (["Sku-2"], 3, 2)
    assert client.get("/api/products?page=3&per_page=2").status_code == 422


def test_change_export_and_delete_all_on_sqlite(sqlite_client):
    client = sqlite_client
    product = client.post(
        "/api/products", json={"sku": "A-1", "name": "Apple", "description": "Red\r\nround"}
    ).get_json()
    client.post("/api/products", json={"sku": "B-2", "name": "Banana"})
    assert client.patch(f"/api/products/{product['id']}", json={"sku": "b-2"}).status_code == 409
    changed = client.patch(f"/api/products/{product['id']}", json={"active": False}).get_json()
    assert changed["active"] is False

    body = client.get("/api/products/export.csv?sort=sku").get_data(as_text=True)
    exported = list(csv.DictReader(io.StringIO(body, newline="")))
    assert [(r["sku"], r["description"], r["active"]) for r in exported] == [
        ("A-1", "Red\r\nround", "false"),
        ("B-2", "", "true"),
    ]
    assert client.delete("/api/products?confirm=true").get_json() == {"deleted": 2}
    assert client.get("/api/products").get_json()["total"] == 0
