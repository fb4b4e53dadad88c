"""The accounts part of the OpenAPI document, and how every operation is secured."""

from .roles import ROLES

STAMP = {"type": "string", "format": "date-time"}
NULLABLE_STAMP = {**STAMP, "nullable": True}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
PUBLIC_PATHS = {"/api/openapi.json", "/healthz", "/readyz"}
SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal access token, pit_...: made on /account or with "
        "`product-importer tokens create`.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "session",
        "description": "The pages' sign-in session; state-changing requests also need the "
        "page's CSRF token in X-CSRFToken.",
    },
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(name: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _list_of(name: str) -> dict:
    items = {"type": "array", "items": _ref(name)}
    return {"type": "object", "required": ["items"], "properties": {"items": items}}


def _op(summary: str, responses: dict, **more) -> dict:
    return {"summary": summary, "responses": responses, **more}


def secure(document: dict) -> dict:
    """Name who may call each operation: every one but the public ones answers 401 and 403."""
    components = document.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    document["security"] = [{"bearer": []}, {"session": []}]
    error = _json(_ref("Error"), "")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            if path in PUBLIC_PATHS:
                operation["security"] = []
                continue
            responses = operation["responses"]
            responses.setdefault("401", {**error, "description": "No valid session or token"})
            responses.setdefault(
                "403",
                {
                    **error,
                    "description": "The role is too low (or a "
                    "cross-site request): error.details names the role",
                },
            )
    return document


def schemas() -> dict:
    """The component schemas of the accounts paths."""
    role = {"type": "string", "enum": list(ROLES)}
    return {
        "Account": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "email": {"type": "string"},
                "role": role,
                "active": {"type": "boolean"},
                "created_at": STAMP,
                "last_sign_in_at": NULLABLE_STAMP,
                "password": {"type": "string", "description": "One-time; only when made"},
            },
        },
        "AccountInput": {
            "type": "object",
            "required": ["email", "role"],
            "properties": {"email": {"type": "string"}, "role": role},
        },
        "AccountChange": {
            "type": "object",
            "properties": {"role": role, "active": {"type": "boolean"}},
        },
        "Token": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "prefix": {"type": "string", "description": "The first characters, to tell apart"},
                "role": role,
                "owner": {"type": "string"},
                "expires_at": NULLABLE_STAMP,
                "created_at": STAMP,
                "last_used_at": NULLABLE_STAMP,
                "token": {"type": "string", "description": "pit_...; only when made"},
            },
        },
        "TokenInput": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "maxLength": 100},
                "role": {**role, "description": "At most the owner's; the owner's by default"},
                "expires_days": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 3650,
                    "nullable": True,
                },
            },
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
    invalid = {"422": _json(_ref("Error"), "Invalid fields, named in error.details")}
    not_found = {"404": _json(_ref("Error"), "No such account or token")}
    me = {
        "type": "object",
        "properties": {
            "account": _ref("Account"),
            "role": {"type": "string"},
            "via": {"type": "string", "enum": ["session", "token"]},
        },
    }
    passwords = {
        "type": "object",
        "required": ["current_password", "new_password"],
        "properties": {
            "current_password": {"type": "string"},
            "new_password": {"type": "string", "minLength": 10},
        },
    }
    query = [
        {"name": name, "in": "query", "schema": {"type": "string"}, "description": text}
        for name, text in (
            ("actor", "An account's email"),
            ("action", "Exact, or a prefix ending in '.'"),
        )
    ] + [{"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}}]
    return {
        "/api/account": {"get": _op("The signed-in account", {"200": _json(me, "The account")})},
        "/api/account/password": {
            "post": _op(
                "Change one's own password (other sessions end)",
                {"204": {"description": "Changed"}, **invalid},
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": passwords}},
                },
            ),
        },
        "/api/tokens": {
            "get": _op(
                "One's tokens (every token, for an admin)",
                {"200": _json(_list_of("Token"), "Tokens")},
            ),
            "post": _op(
                "Make a token; its secret is in the answer only",
                {"201": _json(_ref("Token"), "Made"), **invalid},
                requestBody=_body("TokenInput"),
            ),
        },
        "/api/tokens/{id}": {
            "parameters": [ID],
            "delete": _op("Revoke a token", {"204": {"description": "Revoked"}, **not_found}),
        },
        "/api/users": {
            "get": _op("Every account (admin)", {"200": _json(_list_of("Account"), "Accounts")}),
            "post": _op(
                "Add an account (admin); a one-time password in the answer",
                {
                    "201": _json(_ref("Account"), "Added"),
                    "409": _json(_ref("Error"), "Email taken"),
                    **invalid,
                },
                requestBody=_body("AccountInput"),
            ),
        },
        "/api/users/{id}": {
            "parameters": [ID],
            "patch": _op(
                "Change a role, or deactivate (admin)",
                {
                    "200": _json(_ref("Account"), "Changed"),
                    **not_found,
                    **invalid,
                    "409": _json(_ref("Error"), "Not on one's own account"),
                },
                requestBody=_body("AccountChange"),
            ),
        },
        "/api/users/{id}/password": {
            "parameters": [ID],
            "post": _op(
                "A new one-time password (admin); the account's sessions end",
                {"200": _json(_ref("Account"), "With `password`"), **not_found},
            ),
        },
        "/api/audit": {
            "get": _op(
                "The audit log, newest first (admin)",
                {"200": _json(_ref("AuditPage"), "A page of entries"), **invalid},
                parameters=query,
            ),
        },
    }
