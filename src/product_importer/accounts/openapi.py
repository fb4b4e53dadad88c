"""The accounts part of the OpenAPI document, and the security schemes every operation uses."""

from ..apidoc import (
    LINE,
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
from .audit import MAX_PAGE
from .credentials import MAX_PASSWORD, MIN_PASSWORD
from .roles import ROLES
from .service import EMAIL, MAX_TOKEN_DAYS

SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal access token, pit_...: made on /account, through "
        "POST /api/tokens, or with `product-importer tokens create`.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "session",
        "description": "The pages' sign-in session; state-changing requests also need the "
        "page's CSRF token in X-CSRFToken.",
    },
}
ROLE = {"type": "string", "enum": list(ROLES)}


def schemas() -> dict:
    """The component schemas of the accounts paths."""
    email = {"type": "string", "maxLength": 254, "pattern": EMAIL.pattern}
    return {
        "Account": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "email": {"type": "string"},
                "role": ROLE,
                "active": {"type": "boolean"},
                "created_at": STAMP,
                "last_sign_in_at": NULLABLE_STAMP,
                "password": {"type": "string", "description": "One-time; only when made or reset"},
                "tokens_revoked": {
                    "type": "integer",
                    "description": "Only in a reset's answer: the tokens revoked with it",
                },
            },
        },
        "PasswordReset": {
            "type": "object",
            "properties": {
                "revoke_tokens": {
                    "type": "boolean",
                    "default": False,
                    "description": "Revoke the account's tokens too (a password that may "
                    "have been stolen)",
                },
            },
            "additionalProperties": False,
        },
        "AccountCreate": {
            "type": "object",
            "required": ["email", "role"],
            "properties": {"email": email, "role": ROLE},
            "additionalProperties": False,
        },
        "AccountChange": {
            "type": "object",
            "properties": {"role": ROLE, "active": {"type": "boolean"}},
            "additionalProperties": False,
        },
        "PasswordChange": {
            "type": "object",
            "required": ["current_password", "new_password"],
            "properties": {
                "current_password": {"type": "string"},
                "new_password": {
                    "type": "string",
                    "minLength": MIN_PASSWORD,
                    "maxLength": MAX_PASSWORD,
                },
            },
            "additionalProperties": False,
        },
        "Token": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "prefix": {"type": "string", "description": "The first characters, to tell apart"},
                "role": {**ROLE, "description": "The role it acts with: at most its owner's now"},
                "made_as": {**ROLE, "description": "The role it was made with"},
                "owner": {"type": "string"},
                "expires_at": NULLABLE_STAMP,
                "created_at": STAMP,
                "last_used_at": NULLABLE_STAMP,
                "made_by_token": {
                    "type": "integer",
                    "nullable": True,
                    "description": "The id of the token it was made with (POST /api/tokens "
                    "with a bearer token): revoking that one revokes this one. Null when made "
                    "in a browser, by the command line or before migration 0025",
                },
                "token": {"type": "string", "description": "pit_...; only when made"},
            },
        },
        "TokenCreate": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": LINE},
                "role": {
                    **ROLE,
                    "description": "At most the owner's, and at most the role the request acts "
                    "with (a token's may be lower); 422 otherwise. That role by default",
                },
                "expires_days": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_TOKEN_DAYS,
                    "nullable": True,
                    "description": "None: it never expires; made with a token that expires, it "
                    "expires no later (422 otherwise), and with it by default",
                },
            },
            "additionalProperties": False,
        },
        "AuditPage": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"type": "object"}},
                "page": {"type": "integer"},
                "per_page": {"type": "integer"},
                "total": {"type": "integer"},
                "pages": {"type": "integer"},
            },
        },
    }


def paths() -> dict:
    """The accounts paths."""
    invalid = {"422": error("Invalid fields, named in error.details")}
    me = {
        "type": "object",
        "properties": {
            "account": ref("Account"),
            "role": {**ROLE, "description": "The role this request acts with"},
            "via": {"type": "string", "enum": ["session", "token"]},
        },
    }
    token_made = json_response(ref("Token"), "Made", LOCATION)
    token_made["links"] = links_to("revoke_token")
    account_made = json_response(ref("Account"), "Added", LOCATION)
    account_made["links"] = links_to("change_user", "reset_password")
    audit_filters = [
        query("actor", {"type": "string", "pattern": NO_CONTROL}, "An account's email"),
        query(
            "action", {"type": "string", "pattern": NO_CONTROL}, "Exact, or a prefix ending in '.'"
        ),
        query("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "Page number"),
    ]
    return {
        "/api/account": {
            "get": operation(
                "get_account", "The signed-in account", {"200": json_response(me, "It")}
            )
        },
        "/api/account/password": {
            "post": operation(
                "change_password",
                "Change one's own password (the account's other sessions end)",
                {
                    "204": {"description": "Changed"},
                    **invalid,
                    "429": error("More than 10 wrong current passwords a minute for the account"),
                },
                requestBody=json_body("PasswordChange"),
            ),
        },
        "/api/tokens": {
            "get": operation(
                "list_tokens",
                "One's tokens (every token, for an admin)",
                {"200": json_response(list_of("Token"), "Tokens")},
            ),
            "post": operation(
                "create_token",
                "Make a token for oneself; its secret is in this answer only",
                {"201": token_made, **invalid},
                requestBody=json_body("TokenCreate"),
            ),
        },
        "/api/tokens/{id}": {
            "parameters": [path_id()],
            "delete": operation(
                "revoke_token",
                "Revoke a token, and every token made with it (and with those)",
                {"204": {"description": "Revoked"}},
            ),
        },
        "/api/users": {
            "get": operation(
                "list_users",
                "Every account (admin)",
                {"200": json_response(list_of("Account"), "Accounts")},
            ),
            "post": operation(
                "create_user",
                "Add an account (admin); its new password is in the answer, this once",
                {"201": account_made, "409": error("The email is taken"), **invalid},
                requestBody=json_body("AccountCreate"),
            ),
        },
        "/api/users/{id}": {
            "parameters": [path_id()],
            "patch": operation(
                "change_user",
                "Change a role, or deactivate: its sessions end and its tokens are revoked, "
                "for good (admin)",
                {
                    "200": json_response(ref("Account"), "Changed"),
                    "409": error("Not on one's own account"),
                    **invalid,
                },
                requestBody=json_body("AccountChange"),
            ),
        },
        "/api/users/{id}/password": {
            "parameters": [path_id()],
            "post": operation(
                "reset_password",
                "A new random password (admin); the account's sessions end, and its tokens "
                "with revoke_tokens",
                {"200": json_response(ref("Account"), "With `password`"), **invalid},
                requestBody={
                    "required": False,
                    "content": {"application/json": {"schema": ref("PasswordReset")}},
                },
            ),
        },
        "/api/audit": {
            "get": operation(
                "list_audit",
                "The audit log, newest first (admin)",
                {"200": json_response(ref("AuditPage"), "A page of entries"), **invalid},
                parameters=audit_filters,
            ),
        },
    }
