"""The OpenAPI document at /api/openapi.json describes every route of the JSON API."""

import json
import re

import pytest

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
SPEC_SCHEMAS = {"ImportJob", "Product", "Webhook", "Delivery", "Error"}


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return json.loads(response.get_data(as_text=True))


def routes(app) -> set[tuple[str, str]]:
    """`(path, method)` of every rule the app serves under /api, plus the health probes."""
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or rule.rule in ("/healthz", "/readyz"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            found |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return found


def documented(document: dict) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)  # parameter names may differ from the view's


def test_every_api_route_is_documented_and_nothing_else(app, document):
    served = {(shape(path), method) for path, method in routes(app)}
    described = {(shape(path), method) for path, method in documented(document)}
    assert served - described == set(), "routes missing from the OpenAPI document"
    assert described - served == set(), "documented operations the app does not serve"


def test_the_spec_routes_and_schemas_are_there(document):
    paths = document["paths"]
    for path in (
        "/api/imports",
        "/api/imports/{id}/events",
        "/api/products",
        "/api/products/{id}",
        "/api/products/export.csv",
        "/api/webhooks/{id}/deliveries",
        "/healthz",
        "/readyz",
    ):
        assert path in paths
    assert set(document["components"]["schemas"]) >= SPEC_SCHEMAS
    assert set(paths["/api/products"]) == {"get", "post", "delete"}
    list_statuses = set(paths["/api/products"]["get"]["responses"])
    assert list_statuses == {"200", "401", "403", "422"}
    assert {"201", "409", "422"} <= set(paths["/api/products"]["post"]["responses"])
    assert {"200", "400", "409"} <= set(paths["/api/products"]["delete"]["responses"])
    assert "413" in paths["/api/imports"]["post"]["responses"]


def test_the_document_is_well_formed_openapi_3(document):
    assert re.fullmatch(r"3\.\d+\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    schemas = document["components"]["schemas"]
    for path, item in document["paths"].items():
        assert path.startswith("/")
        operations = {m: op for m, op in item.items() if m in METHODS}
        assert operations, path
        assert set(item) <= METHODS | {"parameters", "summary", "description"}, path
        for method, operation in operations.items():
            check_operation(path, method, item.get("parameters", []), operation)
    for ref in re.findall(r'"\$ref": "([^"]+)"', json.dumps(document)):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas


def check_operation(path: str, method: str, shared: list, operation: dict) -> None:
    where = f"{method.upper()} {path}"
    assert operation["responses"], where
    for status, response in operation["responses"].items():
        assert re.fullmatch(r"[1-5]\d\d", status), where
        assert response["description"], where
    parameters = shared + operation.get("parameters", [])
    for parameter in parameters:
        assert parameter["in"] in {"path", "query", "header", "cookie"}, where
        assert "schema" in parameter, where
    declared = {p["name"] for p in parameters if p["in"] == "path"}
    assert declared == set(re.findall(r"\{([^}]+)\}", path)), where
    assert all(p["required"] for p in parameters if p["in"] == "path"), where
    if "requestBody" in operation:
        assert operation["requestBody"]["content"], where
