"""The products part of the OpenAPI document: `schemas()` and `paths()` to merge in."""

from ..apidoc import (
    LINE,
    LOCATION,
    NO_CONTROL,
    STAMP,
    error,
    json_body,
    json_response,
    links_to,
    path_id,
    query,
    ref,
    text,
)
from . import rules, service

ETAG = {
    "ETag": {
        "description": "The product's version: send it in If-Match to change or delete it "
        "only if no one has changed it since",
        "schema": {"type": "string"},
    }
}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of the product as you read it: if it has changed since, nothing "
    "is done (412). Left out, the request applies whatever changed meanwhile.",
    "schema": {"type": "string"},
}
STALE = {
    "412": error(
        "If-Match holds no current version: the product was changed since it was read. "
        "error.details has the product now (`product`) and its ETag (`etag`)."
    )
}

SORTS = [key for name in service.SORT_KEYS for key in (name, f"-{name}")]


def schemas() -> dict:
    """The component schemas of the products paths."""
    line = {"type": "string", "minLength": 1, "maxLength": rules.MAX_SKU, "pattern": LINE}
    fields = {
        "sku": {**line, "description": "Unique, ignoring case and how an accent is encoded"},
        "name": {**line, "maxLength": rules.MAX_NAME},
        "description": {
            "type": "string",
            "maxLength": rules.MAX_DESCRIPTION,
            "pattern": NO_CONTROL,
            "description": "Tabs and line breaks allowed; an empty string clears it",
        },
        "active": {"type": "boolean", "default": True},
    }
    read_only = {
        name: {"description": "Read-only: ignored when sent"} for name in service.READ_ONLY
    }
    change = {
        "type": "object",
        "description": "Values are trimmed and stored in Unicode NFC (`e` followed by a "
        "combining U+0301 is stored as `é`, U+00E9). Read-only fields (id, created_at, "
        "updated_at) may be sent back and are ignored; any other field is refused.",
        "properties": fields | read_only,
        "additionalProperties": False,
    }
    return {
        "Product": {
            "type": "object",
            "required": ["id", "sku", "name", "description", "active", "created_at", "updated_at"],
            "properties": {
                "id": {"type": "integer"},
                **fields,
                "description": {"type": "string"},
                "created_at": STAMP,
                "updated_at": STAMP,
            },
        },
        "ProductCreate": {
            **change,
            "required": ["sku", "name"],
            "example": {"sku": "WID-001", "name": "Blue widget", "description": "Steel, 4 cm"},
        },
        "ProductChange": change,
        "ProductPage": {
            "type": "object",
            "required": ["items", "page", "per_page", "total", "pages"],
            "properties": {
                "items": {"type": "array", "items": ref("Product")},
                "page": {"type": "integer"},
                "per_page": {"type": "integer"},
                "total": {"type": "integer", "description": "How many products match, exactly"},
                "pages": {"type": "integer"},
            },
        },
    }


def filters() -> list[dict]:
    """The list's filters and sort (the export takes the same)."""
    term = {
        "type": "string",
        "pattern": NO_CONTROL,
        "description": "No control characters; read in Unicode NFC, as the text is stored",
    }
    return [
        query("sku", term, "Case-insensitive substring of the SKU"),
        query("name", term, "Case-insensitive substring of the name"),
        query("description", term, "Case-insensitive substring of the description"),
        query("q", term, "Case-insensitive substring of the SKU, name or description"),
        query(
            "active",
            {"type": "string", "enum": ["true", "false", ""]},
            "Status; empty (or left out) for any",
        ),
        query(
            "sort",
            {"type": "string", "enum": [*SORTS, ""], "default": service.DEFAULT_SORT},
            "Order, `-` for descending; ties are broken by id; empty (or left out) for "
            f"{service.DEFAULT_SORT}",
        ),
    ]


def paths() -> dict:
    """The products paths."""
    product = ref("Product")
    paging = [
        query(
            "page",
            {"type": "integer", "minimum": 1, "maximum": service.MAX_PAGE, "default": 1},
            "Page number; past the last page is 422; empty (or left out) for 1",
        ),
        query(
            "per_page",
            {"type": "integer", "minimum": 1, "maximum": service.MAX_PER_PAGE, "default": 50},
            f"Products per page; empty (or left out) for {service.DEFAULT_PER_PAGE}",
        ),
    ]
    invalid = {"422": error("Invalid fields, each named in error.details")}
    too_long = {"414": error("The address is longer than MAX_URL_BYTES: shorten the filters")}
    clash = {"409": error("Another product has this SKU (ignoring case)")}
    created = json_response(product, "Created", LOCATION | ETAG)
    created["links"] = links_to("get_product", "update_product", "delete_product")
    return {
        "/api/products": {
            "get": {
                "operationId": "list_products",
                "summary": "One page of the products that match the filters",
                "parameters": filters() + paging,
                "responses": {
                    "200": json_response(ref("ProductPage"), "OK"),
                    **too_long,
                    "422": error("A filter or sort not valid, or a page past the last one"),
                },
            },
            "post": {
                "operationId": "create_product",
                "summary": "Create a product",
                "requestBody": json_body("ProductCreate"),
                "responses": {"201": created, **clash, **invalid},
            },
            "delete": {
                "operationId": "delete_all_products",
                "summary": "Delete every product (admin)",
                "parameters": [
                    query(
                        "confirm",
                        {"type": "string", "enum": ["true"]},
                        "Yes, every one",
                        required=True,
                    )
                ],
                "responses": {
                    "200": json_response(
                        {"type": "object", "properties": {"deleted": {"type": "integer"}}},
                        "Deleted; `deleted` counts them",
                    ),
                    "400": error(
                        "confirm=true is missing, or another argument (a filter) is given"
                    ),
                    "409": error("An import is being applied, or the catalog is busy"),
                },
            },
        },
        "/api/products/{id}": {
            "parameters": [path_id()],
            "get": {
                "operationId": "get_product",
                "summary": "One product",
                "responses": {"200": json_response(product, "OK", ETAG)},
            },
            "patch": {
                "operationId": "update_product",
                "summary": "Change the fields given",
                "parameters": [IF_MATCH],
                "requestBody": json_body("ProductChange"),
                "responses": {
                    "200": json_response(product, "Changed", ETAG),
                    **clash,
                    **STALE,
                    **invalid,
                },
            },
            "delete": {
                "operationId": "delete_product",
                "summary": "Delete one product",
                "parameters": [IF_MATCH],
                "responses": {"204": {"description": "Deleted"}, **STALE},
            },
        },
        "/api/products/export.csv": {
            "get": {
                "operationId": "export_products",
                "summary": "The matching products as CSV (sku,name,description,active) that "
                "imports back unchanged; cells that would start a formula get a '",
                "parameters": [
                    *filters(),
                    query(
                        "bom",
                        {"type": "string", "enum": ["true", "false", ""], "default": "false"},
                        "Start the file with a UTF-8 byte order mark, so that Excel reads it as "
                        "UTF-8 (the Products page asks for it; an import ignores it)",
                    ),
                ],
                "responses": {
                    "200": text("text/csv", "The CSV, streamed"),
                    **too_long,
                    "422": error("A filter, the sort or bom is not valid"),
                },
            },
        },
    }
