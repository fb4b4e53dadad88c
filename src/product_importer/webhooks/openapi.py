"""The webhooks part of the OpenAPI document: `schemas()` and `paths()` to merge in."""

from ..apidoc import (
    LOCATION,
    NO_CONTROL,
    NULLABLE_STAMP,
    STAMP,
    error,
    json_body,
    json_response,
    links_to,
    list_of,
    operation,
    path_id,
    query,
    ref,
)
from .delivery import DELIVERY_RETENTION
from .events import EVENT_TYPES
from .service import KEEP_PREVIOUS_HOURS, MAX_DELIVERIES, MAX_KEEP_PREVIOUS_HOURS, READ_ONLY

NULLABLE_INT = {"type": "integer", "nullable": True}
NULLABLE_TEXT = {"type": "string", "nullable": True}
FOLLOW_WEBHOOK = (
    "get_webhook",
    "update_webhook",
    "delete_webhook",
    "test_webhook",
    "list_deliveries",
    "rotate_secret",
    "recover_webhook",
)


def schemas() -> dict:
    """The component schemas the webhook paths refer to."""
    fields = {
        "url": {
            "type": "string",
            "format": "uri",
            "maxLength": 2048,
            "pattern": "^https?://",
            "description": "Refused (422) when it resolves to a link-local, site-local, 6to4 or "
            "Teredo address, or (unless WEBHOOK_ALLOW_PRIVATE) a private or loopback one, or "
            "does not resolve at all",
        },
        "events": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "enum": list(EVENT_TYPES)},
        },
        "enabled": {"type": "boolean", "default": True},
        "description": {
            "type": "string",
            "maxLength": 255,
            "nullable": True,
            "pattern": NO_CONTROL,
        },
    }
    read_only = {name: {"description": "Read-only: ignored when sent"} for name in READ_ONLY}
    change = {
        "type": "object",
        "description": "Read-only fields may be sent back and are ignored; others are refused.",
        "properties": fields | read_only,
        "additionalProperties": False,
    }
    return {
        "WebhookCreate": {
            **change,
            "required": ["url", "events"],
            # A receiver on this machine: saved only with WEBHOOK_ALLOW_PRIVATE=true.
            "example": {"url": "http://127.0.0.1:9/hooks", "events": ["product.updated"]},
        },
        "WebhookChange": change,
        "Webhook": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "created_at": STAMP,
                **fields,
                "url": {
                    **fields["url"],
                    "description": "Whole for admins; viewers and editors read its user and "
                    "password, query values and generated-looking path segments as ***",
                },
                "description": {"type": "string"},
                "disabled_reason": {**NULLABLE_TEXT, "description": "Set when a 410 disabled it"},
                "previous_secret_expires_at": {
                    **NULLABLE_STAMP,
                    "description": "Until then the secret before the last rotation signs too",
                },
                "secret": {
                    "type": "string",
                    "description": "whsec_...; only when created or its secret rotated",
                },
                "last_test": _last_test(),
            },
        },
        "SecretRotation": {
            "type": "object",
            "properties": {
                "keep_previous_hours": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": MAX_KEEP_PREVIOUS_HOURS,
                    "default": KEEP_PREVIOUS_HOURS,
                    "description": "How long the old secret signs beside the new one "
                    "(0: it stops now, for a secret that leaked)",
                },
            },
            "additionalProperties": False,
        },
        "WebhookTest": {
            "type": "object",
            "properties": {
                "ok": {"type": "boolean"},
                "status_code": NULLABLE_INT,
                "response_time_ms": NULLABLE_INT,
                "error": NULLABLE_TEXT,
            },
        },
        "Delivery": _delivery(),
        **_recovery(),
    }


def _last_test() -> dict:
    return {
        "type": "object",
        "nullable": True,
        "description": "Of the tests that have ended (pings, from Test or redelivered), the "
        "one sent last, as Test answered it, and when it ended; null when none was sent in the "
        f"last {DELIVERY_RETENTION.days} days",
        "properties": {
            "ok": {"type": "boolean"},
            "status_code": NULLABLE_INT,
            "response_time_ms": NULLABLE_INT,
            "error": NULLABLE_TEXT,
            "at": STAMP,
        },
    }


def _recovery() -> dict:
    days = DELIVERY_RETENTION.days
    return {
        "WebhookRecovery": {
            "type": "object",
            "required": ["since"],
            "properties": {
                "since": {
                    "type": "string",
                    "format": "date-time",
                    "description": "Resend each event whose latest delivery since then failed. "
                    f"With a time zone; at most {days} days back (older deliveries are not "
                    "kept) and not in the future, else 422",
                },
            },
            "additionalProperties": False,
        },
        "WebhookRecovered": {
            "type": "object",
            "properties": {
                "since": STAMP,
                "queued": {"type": "integer", "minimum": 0, "description": "Events queued again"},
            },
        },
    }


def _delivery() -> dict:
    outcome = {
        "status_code": NULLABLE_INT,
        "response_time_ms": NULLABLE_INT,
        "error": NULLABLE_TEXT,
    }
    attempt = {
        "type": "object",
        "properties": {"number": {"type": "integer"}, "at": STAMP, **outcome},
    }
    return {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "event_id": {"type": "string", "description": "The webhook-id of every attempt"},
            "event": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "succeeded", "failed"]},
            "attempts": {"type": "integer"},
            **outcome,
            "created_at": STAMP,
            "next_attempt_at": NULLABLE_STAMP,
            "attempt_log": {"type": "array", "items": attempt},
        },
    }


def _delivery_page() -> dict:
    """`{"items": [Delivery, ...], "page", "per_page", "total", "pages"}`."""
    numbers = {name: {"type": "integer"} for name in ("page", "per_page")}
    uncounted = "null when asked with total=false and the page is full (not counted)"
    counts = {
        "total": {**NULLABLE_INT, "description": f"Every delivery kept, exactly; {uncounted}"},
        "pages": {**NULLABLE_INT, "description": uncounted},
    }
    return {
        "type": "object",
        "required": ["items", "page", "per_page", "total", "pages"],
        "properties": {"items": {"type": "array", "items": ref("Delivery")}, **numbers, **counts},
    }


def paths() -> dict:
    """The /api/webhooks paths (reading: any role; changing: admin)."""
    invalid = {"422": error("Invalid fields, each named in error.details")}
    created = json_response(ref("Webhook"), "Created", LOCATION)
    created["links"] = links_to(*FOLLOW_WEBHOOK)
    per_page = {"type": "integer", "minimum": 1, "maximum": MAX_DELIVERIES, "default": 50}
    paging = [
        query(
            "page", {"type": "integer", "minimum": 1, "maximum": 999_999_999}, "Page (1: newest)"
        ),
        query("per_page", per_page, "Deliveries a page"),
        query("limit", per_page, "per_page's first name, used when per_page is not given"),
        query(
            "total",
            {"type": "boolean", "default": True},
            "false: leave out the count of every delivery (total and pages null) unless the "
            "page holds some but not a full page's worth; for a page refreshing every few "
            "seconds",
        ),
    ]
    return {
        "/api/webhooks": {
            "get": operation(
                "list_webhooks", "List webhooks", {"200": json_response(list_of("Webhook"), "OK")}
            ),
            "post": operation(
                "create_webhook",
                "Create a webhook; the response holds its secret, shown this once",
                {"201": created, **invalid},
                requestBody=json_body("WebhookCreate"),
            ),
        },
        "/api/webhooks/{id}": {
            "parameters": [path_id()],
            "get": operation(
                "get_webhook", "Get a webhook", {"200": json_response(ref("Webhook"), "OK")}
            ),
            "patch": operation(
                "update_webhook",
                "Change some of a webhook's fields",
                {"200": json_response(ref("Webhook"), "Changed"), **invalid},
                requestBody=json_body("WebhookChange"),
            ),
            "delete": operation(
                "delete_webhook",
                "Delete a webhook and its deliveries",
                {"204": {"description": "Deleted"}},
            ),
        },
        "/api/webhooks/{id}/test": {
            "parameters": [path_id()],
            "post": operation(
                "test_webhook",
                "Send a ping now and wait for the answer (within the timeout)",
                {"200": json_response(ref("WebhookTest"), "The outcome")},
            ),
        },
        "/api/webhooks/{id}/rotate-secret": {
            "parameters": [path_id()],
            "post": operation(
                "rotate_secret",
                "Give the webhook a new secret, shown this once; each request is signed by "
                "both secrets until the old one's time is up",
                {"200": json_response(ref("Webhook"), "Rotated"), **invalid},
                requestBody={
                    "required": False,
                    "content": {"application/json": {"schema": ref("SecretRotation")}},
                },
            ),
        },
        "/api/webhooks/{id}/deliveries": {
            "parameters": [path_id()],
            "get": operation(
                "list_deliveries",
                "A page of the webhook's deliveries, newest first, each with its attempt log "
                f"({DELIVERY_RETENTION.days} days are kept)",
                {
                    "200": json_response(_delivery_page(), "OK"),
                    "422": error(
                        "page, per_page or limit not a whole number from 1, over 200; "
                        "total not true or false"
                    ),
                },
                parameters=paging,
            ),
        },
        "/api/webhooks/{id}/deliveries/{did}/redeliver": {
            "parameters": [path_id(), path_id("did")],
            "post": operation(
                "redeliver",
                "Send again with the same webhook-id (a waiting retry: now)",
                {
                    "202": json_response(ref("Delivery"), "Queued"),
                    "409": error(
                        "The webhook is disabled, or an attempt of the delivery is being sent "
                        "now (code attempt_in_progress: redeliver once its outcome shows)"
                    ),
                },
            ),
        },
        "/api/webhooks/{id}/recover": {
            "parameters": [path_id()],
            "post": operation(
                "recover_webhook",
                "Queue again, as new deliveries with the same webhook-id, every event whose "
                "latest delivery since a time failed (not those delivered or still in line)",
                {
                    "202": json_response(ref("WebhookRecovered"), "Queued"),
                    "409": error("The webhook is disabled"),
                    **invalid,
                },
                requestBody=json_body("WebhookRecovery"),
            ),
        },
    }
