"""The webhooks part of the OpenAPI document: `paths()` and `schemas()` to merge in."""

from .events import EVENT_TYPES

ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
DELIVERY_ID = {"name": "did", "in": "path", "required": True, "schema": {"type": "integer"}}
STAMP = {"type": "string", "format": "date-time"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "404": _json(_ref("Error"), "No such webhook or delivery"),
    "422": _json(_ref("Error"), "Invalid fields, named in error.details"),
}


def schemas() -> dict:
    """Return the component schemas the webhook paths refer to."""
    nullable_int = {"type": "integer", "nullable": True}
    nullable_text = {"type": "string", "nullable": True}
    return {
        "WebhookInput": {
            "type": "object",
            "properties": {
                "url": {"type": "string", "format": "uri", "maxLength": 2048},
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "enum": list(EVENT_TYPES)},
                },
                "enabled": {"type": "boolean", "default": True},
                "description": {"type": "string", "maxLength": 255},
            },
        },
        "Webhook": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "url": {"type": "string"},
                "events": {"type": "array", "items": {"type": "string"}},
                "enabled": {"type": "boolean"},
                "description": {"type": "string"},
                "created_at": STAMP,
                "disabled_reason": {**nullable_text, "description": "Set when a 410 disabled it"},
                "secret": {"type": "string", "description": "whsec_...; only when created"},
            },
        },
        "WebhookTest": {
            "type": "object",
            "properties": {
                "ok": {"type": "boolean"},
                "status_code": nullable_int,
                "response_time_ms": nullable_int,
                "error": nullable_text,
            },
        },
        "Delivery": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "event_id": {"type": "string", "description": "The webhook-id of every attempt"},
                "event": {"type": "string"},
                "status": {"type": "string", "enum": ["pending", "succeeded", "failed"]},
                "attempts": {"type": "integer"},
                "status_code": nullable_int,
                "response_time_ms": nullable_int,
                "error": nullable_text,
                "created_at": STAMP,
                "next_attempt_at": {**STAMP, "nullable": True},
                "attempt_log": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "number": {"type": "integer"},
                            "at": STAMP,
                            "status_code": nullable_int,
                            "response_time_ms": nullable_int,
                            "error": nullable_text,
                        },
                    },
                },
            },
        },
    }


def paths() -> dict:
    """Return the OpenAPI path items of /api/webhooks."""
    body = {"required": True, "content": {"application/json": {"schema": _ref("WebhookInput")}}}
    items = {"type": "object", "properties": {"items": {"type": "array", "items": {}}}}
    webhooks = {**items, "properties": {"items": {"type": "array", "items": _ref("Webhook")}}}
    deliveries = {**items, "properties": {"items": {"type": "array", "items": _ref("Delivery")}}}
    return {
        "/api/webhooks": {
            "get": {"summary": "List webhooks", "responses": {"200": _json(webhooks, "OK")}},
            "post": {
                "summary": "Create a webhook; the response holds its secret, shown this once",
                "requestBody": body,
                "responses": {"201": _json(_ref("Webhook"), "Created"), **ERRORS},
            },
        },
        "/api/webhooks/{id}": {
            "parameters": [ID],
            "get": {"summary": "Get a webhook", "responses": {"200": _json(_ref("Webhook"), "OK")}},
            "patch": {
                "summary": "Change some of a webhook's fields",
                "requestBody": body,
                "responses": {"200": _json(_ref("Webhook"), "OK"), **ERRORS},
            },
            "delete": {
                "summary": "Delete a webhook and its deliveries",
                "responses": {"204": {"description": "Deleted"}, "404": ERRORS["404"]},
            },
        },
        "/api/webhooks/{id}/test": {
            "parameters": [ID],
            "post": {
                "summary": "Send a ping now and wait for the answer (within the timeout)",
                "responses": {"200": _json(_ref("WebhookTest"), "The outcome"), **ERRORS},
            },
        },
        "/api/webhooks/{id}/deliveries": {
            "parameters": [ID],
            "get": {
                "summary": "Recent deliveries, newest first, each with its attempt log",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50}}
                ],
                "responses": {"200": _json(deliveries, "OK"), **ERRORS},
            },
        },
        "/api/webhooks/{id}/deliveries/{did}/redeliver": {
            "parameters": [ID, DELIVERY_ID],
            "post": {
                "summary": "Send again with the same webhook-id (a waiting retry: now)",
                "responses": {
                    "202": _json(_ref("Delivery"), "Queued"),
                    "409": _json(_ref("Error"), "The webhook is disabled"),
                    "404": ERRORS["404"],
                },
            },
        },
    }
