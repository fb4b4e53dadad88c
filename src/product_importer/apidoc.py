"""Pieces of the OpenAPI document that every domain's part uses (see openapi.py)."""

MAX_ID = 2**63 - 1  # ids are 64-bit: a larger one cannot exist (404)
STAMP = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC"}
NULLABLE_STAMP = {**STAMP, "nullable": True}
# Text without control characters (tab and line breaks are allowed), as the server checks.
NO_CONTROL = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
# A single-line value that is not blank: the server trims it and refuses it empty.
LINE = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
ID_SCHEMA = {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID}
LOCATION = {"Location": {"description": "The new resource's URL", "schema": {"type": "string"}}}


def ref(name: str) -> dict:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: dict, description: str, headers: dict | None = None) -> dict:
    """A response with a JSON body."""
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    return {**response, "headers": headers} if headers else response


def error(description: str) -> dict:
    """An error response in the one error shape."""
    return json_response(ref("Error"), description)


def text(media_type: str, description: str) -> dict:
    """A response whose body is text of some media type (CSV)."""
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def query(name: str, schema: dict, description: str, *, required: bool = False) -> dict:
    """A query parameter; an optional one sent empty (`?sort=`) counts as left out."""
    parameter = {"name": name, "in": "query", "schema": schema, "description": description}
    return {**parameter, "required": True} if required else {**parameter, "allowEmptyValue": True}


def path_id(name: str = "id") -> dict:
    """A path parameter holding a 64-bit id."""
    return {"name": name, "in": "path", "required": True, "schema": ID_SCHEMA}


def list_of(name: str) -> dict:
    """`{"items": [...]}` of a component schema."""
    items = {"type": "array", "items": ref(name)}
    return {"type": "object", "required": ["items"], "properties": {"items": items}}


def json_body(name: str) -> dict:
    """A required JSON request body of a component schema."""
    return {"required": True, "content": {"application/json": {"schema": ref(name)}}}


def link(operation_id: str, description: str, **parameters: str) -> dict:
    """An OpenAPI link: call `operation_id` with values taken from this response."""
    return {"operationId": operation_id, "description": description, "parameters": parameters}


def links_to(*operation_ids: str, field: str = "id", parameter: str = "id") -> dict:
    """Links from a response holding an id to the operations that take it."""
    value = f"$response.body#/{field}"
    return {
        op: link(op, f"Use the {field} returned here", **{parameter: value}) for op in operation_ids
    }


def operation(operation_id: str, summary: str, responses: dict, **more) -> dict:
    """An operation; its id names the Flask view, and links refer to it."""
    return {"operationId": operation_id, "summary": summary, "responses": responses, **more}
