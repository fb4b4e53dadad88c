"""The OpenAPI document at /api/openapi.json describes every route of the JSON API."""

import json
import re

import pytest
from openapi_spec_validator import validate

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
SPEC_SCHEMAS = {"ImportJob", "Product", "Webhook", "Delivery", "Error"}


@pytest.fixture
def make_webhook(client):
    """Return a function that makes webhook 1 (a receiver on this machine, never called)."""
    body = {"url": "http://127.0.0.1:9/hook", "events": ["product.created"]}
    return lambda: client.post("/api/webhooks", json=body)


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return json.loads(response.get_data(as_text=True))


def routes(app) -> set[tuple[str, str]]:
    """`(path, method)` of every rule the app serves under /api, plus the health probes.

    HEAD and OPTIONS count where a view answers them itself (the tus uploads), not where
    Flask adds them to a GET or to any route.
    """
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or rule.rule in ("/healthz", "/readyz"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            automatic = {"OPTIONS"} if rule.provide_automatic_options else set()
            if "GET" in rule.methods:
                automatic.add("HEAD")
            found |= {(path, method.lower()) for method in rule.methods - automatic}
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
    assert list_statuses == {"200", "401", "403", "414", "422", "503"}
    assert "414" in paths["/api/products/export.csv"]["get"]["responses"]  # a filter too long
    assert {"201", "409", "422"} <= set(paths["/api/products"]["post"]["responses"])
    assert {"200", "400", "409"} <= set(paths["/api/products"]["delete"]["responses"])
    assert "413" in paths["/api/imports"]["post"]["responses"]


def test_the_document_is_valid_openapi_3_for_the_fields_own_validator(document):
    validate(document)  # openapi-spec-validator: raises naming the first problem


def test_operation_ids_name_the_views_and_every_link_leads_to_one(app, document):
    endpoints = {rule.endpoint.rsplit(".", 1)[-1] for rule in app.url_map.iter_rules()}
    operation_ids = {
        operation["operationId"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in METHODS
    }
    assert operation_ids <= endpoints
    links = [
        link["operationId"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in METHODS
        for response in operation["responses"].values()
        for link in response.get("links", {}).values()
    ]
    assert {"get_product", "update_webhook", "import_events", "revoke_token"} <= set(links)
    assert set(links) <= operation_ids


@pytest.mark.parametrize(
    "path",
    [
        "/api/webhooks/4347159803321300025344",
        "/api/imports/70031788573157048320/errors.csv",
        "/api/products/9223372036854775808",
    ],
)
def test_an_id_past_64_bits_is_not_found(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_a_method_not_allowed_names_the_allowed_ones(client):
    response = client.put("/api/products")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST", "DELETE"}


@pytest.mark.parametrize(
    "url",
    [
        "/api/products?active=TRUE",
        "/api/products/export.csv?sort=%1C",
        "/api/products?q=%1C",
        "/api/products?page=%20x",
        "/api/webhooks/1/deliveries?limit=201",
    ],
)
def test_arguments_the_document_refuses_are_refused(client, make_webhook, url):
    make_webhook()
    assert client.get(url).status_code == 422


def test_every_optional_query_argument_may_be_sent_empty_as_the_document_says(client):
    """`allowEmptyValue`: a form's blank choice (`?active=`) is taken as left out."""
    operation = client.get("/api/openapi.json").get_json()["paths"]["/api/products"]["get"]
    names = [parameter["name"] for parameter in operation["parameters"]]
    assert all(parameter["allowEmptyValue"] for parameter in operation["parameters"])

    response = client.get("/api/products", query_string=dict.fromkeys(names, ""))

    assert response.status_code == 200, response.get_json()


def test_a_description_must_be_text_not_null(client):
    body = {"sku": "N-1", "name": "Null description", "description": None}
    response = client.post("/api/products", json=body)
    assert response.status_code == 422
    assert "description" in response.get_json()["error"]["details"]
