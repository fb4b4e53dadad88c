"""The OpenAPI 3 description of the JSON API, served at /api/openapi.json."""

from flask import Blueprint, jsonify

from .webhooks import openapi as webhooks_openapi

bp = Blueprint("openapi", __name__)

STAMP = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC"}
NULLABLE_STAMP = {**STAMP, "nullable": True}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
LOCATION = {"Location": {"description": "The job's URL", "schema": {"type": "string"}}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    return {**response, "headers": headers} if headers else response


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


def _text(media_type: str, description: str) -> dict:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _list_of(name: str) -> dict:
    items = {"type": "array", "items": _ref(name)}
    return {"type": "object", "required": ["items"], "properties": {"items": items}}


NOT_FOUND = {"404": _error("Not found")}
CROSS_SITE = {"403": _error("Refused: sent by a page of another site")}


def document() -> dict:
    """Return the OpenAPI document."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Product Importer API",
            "version": "1.0.0",
            "description": "Import product CSVs in the background, manage the catalog, and "
            "send webhooks. Errors answer {error: {code, message, details}}.",
        },
        "paths": {
            **_import_paths(),
            **_product_paths(),
            **webhooks_openapi.paths(),
            **_service_paths(),
        },
        "components": {"schemas": {**_schemas(), **webhooks_openapi.schemas()}},
    }


@bp.get("/api/openapi.json")
def openapi_json():
    """Serve the OpenAPI document."""
    return jsonify(document())


# --- schemas --------------------------------------------------------------------------------


def _schemas() -> dict:
    return {
        "Error": _error_schema(),
        "ImportJob": _import_job_schema(),
        "Product": _product_schema(),
        "ProductInput": _product_input_schema(),
        "ProductPage": _product_page_schema(),
    }


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


def _import_job_schema() -> dict:
    counts = ("bytes_total", "bytes_processed", "rows_processed", "rows_invalid")
    results = ("created", "updated", "unchanged")
    statuses = ["queued", "running", "completed", "completed_with_errors", "failed", "cancelled"]
    return {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "filename": {"type": "string"},
            "status": {"type": "string", "enum": statuses},
            "phase": {"type": "string", "enum": ["reading", "applying"], "nullable": True},
            "message": {"type": "string", "description": "For people: 'Parsing CSV', ..."},
            "percent": {"type": "number", "minimum": 0, "maximum": 100},
            **{name: {"type": "integer"} for name in counts},
            **{
                name: {"type": "integer", "description": "Products, after in-file duplicates"}
                for name in results
            },
            "rows_superseded": {
                "type": "integer",
                "description": "Valid rows whose SKU repeats later in the file (the last one won)",
            },
            "search_index": {
                "type": "string",
                "enum": ["refreshing", "ready"],
                "nullable": True,
                "description": "A search index this import rebuilds after its commit: until it "
                "is ready, description and q filters answer correctly but slower",
            },
            "rows_per_second": {"type": "number", "nullable": True},
            "eta_seconds": {"type": "number", "nullable": True},
            "error": {"type": "string", "nullable": True},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "created_at": STAMP,
            "started_at": NULLABLE_STAMP,
            "finished_at": NULLABLE_STAMP,
        },
    }


def _product_schema() -> dict:
    return {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "sku": {"type": "string", "description": "Unique, ignoring case"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "active": {"type": "boolean"},
            "created_at": STAMP,
            "updated_at": STAMP,
        },
    }


def _product_input_schema() -> dict:
    line = {"type": "string", "minLength": 1, "maxLength": 255}
    return {
        "type": "object",
        "description": "Values are trimmed; control characters are refused (the description "
        "may hold tabs and line breaks). sku and name are required to create.",
        "properties": {
            "sku": {**line, "description": "Unique, ignoring case"},
            "name": line,
            "description": {"type": "string", "maxLength": 10000, "default": ""},
            "active": {"type": "boolean", "default": True},
        },
    }


def _product_page_schema() -> dict:
    page = _list_of("Product")
    page["required"] = ["items", "page", "per_page", "total", "pages"]
    page["properties"] |= {
        "page": {"type": "integer"},
        "per_page": {"type": "integer"},
        "total": {"type": "integer", "description": "How many products match, exactly"},
        "pages": {"type": "integer"},
    }
    return page


# --- paths ----------------------------------------------------------------------------------


def _import_paths() -> dict:
    job = _ref("ImportJob")
    upload = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
    return {
        "/api/imports": {
            "post": {
                "summary": "Upload a CSV (or .csv.gz) and queue its import",
                "requestBody": upload,
                "responses": {
                    "202": _json(job, "Queued", LOCATION),
                    "400": _error("No file field"),
                    "413": _error("Over MAX_UPLOAD_BYTES"),
                    "422": _error("Empty, only whitespace, or binary"),
                    **CROSS_SITE,
                },
            },
            "get": {
                "summary": "Import jobs, newest first",
                "responses": {"200": _json(_list_of("ImportJob"), "OK")},
            },
        },
        "/api/imports/{id}": {
            "parameters": [ID],
            "get": {
                "summary": "One import job",
                "responses": {"200": _json(job, "OK"), **NOT_FOUND},
            },
        },
        "/api/imports/{id}/events": {
            "parameters": [ID],
            "get": {
                "summary": "Progress as server-sent events: `progress` about once a second "
                "while the job changes, then `done`; each carries the ImportJob as data. A "
                "stream still open after EVENT_STREAM_SECONDS ends without `done`: reconnect",
                "responses": {
                    "200": _text("text/event-stream", "The event stream"),
                    "503": _error("Too many streams open: poll GET /api/imports/{id} instead"),
                    **NOT_FOUND,
                },
            },
        },
        "/api/imports/{id}/cancel": {
            "parameters": [ID],
            "post": {
                "summary": "Cancel a queued or running import",
                "responses": {
                    "202": _json(job, "Cancelled, or asked to stop"),
                    "409": _error("Already finished"),
                    **NOT_FOUND,
                    **CROSS_SITE,
                },
            },
        },
        "/api/imports/{id}/retry": {
            "parameters": [ID],
            "post": {
                "summary": "Import the same file again, as a new job",
                "responses": {
                    "202": _json(job, "The new job", LOCATION),
                    "409": _error("Still running, or the file is no longer kept"),
                    **NOT_FOUND,
                    **CROSS_SITE,
                },
            },
        },
        "/api/imports/{id}/errors.csv": {
            "parameters": [ID],
            "get": {
                "summary": "Every rejected row as CSV: line,sku,reason",
                "responses": {"200": _text("text/csv", "The rejected rows"), **NOT_FOUND},
            },
        },
    }


def _filters() -> list[dict]:
    text = {"type": "string"}
    return [
        _query("sku", text, "Case-insensitive substring of the SKU"),
        _query("name", text, "Case-insensitive substring of the name"),
        _query("description", text, "Case-insensitive substring of the description"),
        _query("q", text, "Case-insensitive substring of the SKU, name or description"),
        _query("active", {"type": "string", "enum": ["true", "false"]}, "Status"),
        _query(
            "sort",
            {
                "type": "string",
                "enum": ["sku", "-sku", "name", "-name", "updated_at", "-updated_at"],
                "default": "-updated_at",
            },
            "Order, `-` for descending; ties are broken by id",
        ),
    ]


def _product_paths() -> dict:
    product = _ref("Product")
    body = {"required": True, "content": {"application/json": {"schema": _ref("ProductInput")}}}
    paging = [
        _query("page", {"type": "integer", "minimum": 1, "default": 1}, "Page number"),
        _query(
            "per_page",
            {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
            "Products per page",
        ),
    ]
    invalid = {"422": _error("Invalid fields, each named in error.details")}
    clash = {"409": _error("Another product has this SKU (ignoring case)")}
    return {
        "/api/products": {
            "get": {
                "summary": "One page of the products that match the filters",
                "parameters": _filters() + paging,
                "responses": {
                    "200": _json(_ref("ProductPage"), "OK"),
                    "422": _error("A filter, sort, page or per_page out of range"),
                },
            },
            "post": {
                "summary": "Create a product",
                "requestBody": body,
                "responses": {
                    "201": _json(product, "Created"),
                    "400": _error("The body is not a JSON object"),
                    **clash,
                    **invalid,
                    **CROSS_SITE,
                },
            },
            "delete": {
                "summary": "Delete every product",
                "parameters": [
                    {
                        "name": "confirm",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "enum": ["true"]},
                    }
                ],
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"deleted": {"type": "integer"}}},
                        "Deleted; `deleted` counts them",
                    ),
                    "400": _error("confirm=true is missing"),
                    "409": _error("An import is being applied, or the catalog is busy"),
                    **CROSS_SITE,
                },
            },
        },
        "/api/products/{id}": {
            "parameters": [ID],
            "get": {
                "summary": "One product",
                "responses": {"200": _json(product, "OK"), **NOT_FOUND},
            },
            "patch": {
                "summary": "Change the fields given",
                "requestBody": body,
                "responses": {
                    "200": _json(product, "Changed"),
                    "400": _error("The body is not a JSON object"),
                    **NOT_FOUND,
                    **clash,
                    **invalid,
                    **CROSS_SITE,
                },
            },
            "delete": {
                "summary": "Delete a product",
                "responses": {"204": {"description": "Deleted"}, **NOT_FOUND, **CROSS_SITE},
            },
        },
        "/api/products/export.csv": {
            "get": {
                "summary": "The products that match the filters as CSV "
                "(sku,name,description,active), streamed; it imports back unchanged",
                "parameters": _filters(),
                "responses": {
                    "200": _text("text/csv", "The CSV"),
                    "422": _error("A filter or the sort is not valid"),
                },
            },
        },
    }


def _service_paths() -> dict:
    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    ready = {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "checks": {
                "type": "object",
                "properties": {"database": {"type": "string"}, "broker": {"type": "string"}},
            },
        },
    }
    return {
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document")},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the process is up",
                "responses": {"200": _json(status, "Up")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the database and the broker are reachable",
                "responses": {
                    "200": _json(ready, "Ready"),
                    "503": _json(ready, "Not ready; `checks` names what is unreachable"),
                },
            }
        },
    }
