"""The OpenAPI 3 description of the JSON API, served at /api/openapi.json.

Each domain describes its own paths and schemas (`<domain>/openapi.py`); this module puts them
together and adds what every operation shares: who may call it (401/403), the 404 of an id
that does not exist, the 400/413 of a JSON body that is not an object (or not Unicode) or too
large, and the 414 of an address too long.
"""

from flask import Blueprint, jsonify

from .accounts import openapi as accounts_openapi
from .accounts.auth import public
from .apidoc import error, json_response
from .imports import openapi as imports_openapi
from .products import openapi as products_openapi
from .webhooks import openapi as webhooks_openapi

bp = Blueprint("openapi", __name__)

DOMAINS = (imports_openapi, products_openapi, webhooks_openapi, accounts_openapi)
PUBLIC_PATHS = {"/api/openapi.json", "/healthz", "/readyz"}
METHODS = {"get", "head", "options", "post", "put", "patch", "delete"}
# Any request the database fails for now (restarting, out of connections; SQLite's writer held
# past its timeout) when it has changed nothing: `database_unavailable`, with a Retry-After.
DATABASE_UNAVAILABLE = (
    "The database is not answering, or busy (code database_unavailable): nothing was changed. "
    "Send it again after Retry-After seconds"
)


@bp.get("/api/openapi.json")
@public
def openapi_json():
    """Serve the OpenAPI document."""
    return jsonify(document())


def document() -> dict:
    """Return the OpenAPI document."""
    paths = {path: item for domain in DOMAINS for path, item in domain.paths().items()}
    schemas = {name: schema for domain in DOMAINS for name, schema in domain.schemas().items()}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Product Importer API",
            "version": "1.0.0",
            "description": "Import product CSVs in the background, manage the catalog, and "
            "send webhooks. Errors answer {error: {code, message, details}}. Every operation "
            "but the public ones needs a personal access token (Authorization: Bearer "
            "pit_...) or the pages' session.",
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": _complete({**paths, **_service_paths()}),
        "components": {
            "schemas": {"Error": _error_schema(), **schemas},
            "securitySchemes": accounts_openapi.SECURITY_SCHEMES,
        },
    }


def _complete(paths: dict) -> dict:
    """Add the answers every operation shares to each one that can give them."""
    for path, item in paths.items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            responses = operation["responses"]
            if path.startswith("/api/"):
                responses.setdefault("414", error("The address is longer than MAX_URL_BYTES"))
            if path in PUBLIC_PATHS:
                operation["security"] = []
                continue
            responses.setdefault("401", error("No valid session or token"))
            _add_unavailable(responses)  # who asks is read in the database
            responses.setdefault(
                "403", error("The role is too low (details name the role needed), or cross-site")
            )
            if "{" in path:
                responses.setdefault("404", error("No such id"))
                # An id that is not a number can spell another route: /api/webhooks/1/test
                responses.setdefault("405", error("The id names another resource"))
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                responses.setdefault("400", error("The body is not a JSON object, or not Unicode"))
                responses.setdefault("413", error("The body is larger than 1 MiB"))
    return paths


def _add_unavailable(responses: dict) -> None:
    """Document the database's 503 beside any 503 of the operation's own."""
    if "503" in responses:
        own = responses["503"]
        responses["503"] = {
            **own,
            "description": f"{own['description']}; or: {DATABASE_UNAVAILABLE}",
        }
    else:
        responses["503"] = error(DATABASE_UNAVAILABLE)


def _error_schema() -> dict:
    body = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "example": "not_found"},
            "message": {"type": "string", "description": "What went wrong and what to do"},
            "details": {
                "nullable": True,
                "description": "For 422: an object naming each invalid field and why",
            },
        },
    }
    return {"type": "object", "required": ["error"], "properties": {"error": body}}


def _service_paths() -> dict:
    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    checks = {"database": {"type": "string"}, "broker": {"type": "string"}}
    ready = {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "checks": {"type": "object", "properties": checks},
        },
    }
    return {
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi_json",
                "summary": "This document",
                "responses": {"200": json_response({"type": "object"}, "The OpenAPI document")},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process is up",
                "responses": {"200": json_response(status, "Up")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the database and the broker are reachable",
                "responses": {
                    "200": json_response(ready, "Ready"),
                    "503": json_response(ready, "Not ready; `checks` names what is unreachable"),
                },
            }
        },
    }
