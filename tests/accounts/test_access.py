"""Who may call what: the whole URL map walked without credentials, and every role against every
API route. Both lists are read from the app, so a route added later is checked too."""

import io
import re
from urllib.parse import quote

import pytest

from product_importer.accounts.auth import PUBLIC, access_of

# SPEC, "Accounts and access": all that answers without signing in.
PUBLIC_RULES = {
    "/login",
    "/setup",
    "/healthz",
    "/readyz",
    "/api/openapi.json",
    "/static/<path:filename>",
}
IGNORED_METHODS = {"HEAD", "OPTIONS"}
# The least role of each API route that is not for every viewer, as SPEC's roles give it:
# viewers read; editors also import and edit single products; admins also delete all products,
# manage webhooks, accounts and others' tokens, and read the audit log. Each account manages
# its own password and tokens.
NEEDS = {
    ("POST", "/api/imports"): "editor",
    ("POST", "/api/imports/<int:job_id>/cancel"): "editor",
    ("POST", "/api/imports/<int:job_id>/retry"): "editor",
    ("POST", "/api/uploads"): "editor",
    ("PATCH", "/api/uploads/<upload_id>"): "editor",
    ("DELETE", "/api/uploads/<upload_id>"): "editor",
    ("POST", "/api/imports/<int:job_id>/apply"): "editor",
    ("POST", "/api/imports/<int:job_id>/discard"): "editor",
    ("POST", "/api/imports/<int:job_id>/undo"): "editor",
    ("POST", "/api/products"): "editor",
    ("PATCH", "/api/products/<int:product_id>"): "editor",
    ("DELETE", "/api/products/<int:product_id>"): "editor",
    ("DELETE", "/api/products"): "admin",
    ("POST", "/api/webhooks"): "admin",
    ("PATCH", "/api/webhooks/<int:endpoint_id>"): "admin",
    ("DELETE", "/api/webhooks/<int:endpoint_id>"): "admin",
    ("POST", "/api/webhooks/<int:endpoint_id>/test"): "admin",
    ("POST", "/api/webhooks/<int:endpoint_id>/rotate-secret"): "admin",
    ("POST", "/api/webhooks/<int:endpoint_id>/recover"): "admin",
    ("POST", "/api/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver"): "admin",
    ("GET", "/api/users"): "admin",
    ("POST", "/api/users"): "admin",
    ("PATCH", "/api/users/<int:user_id>"): "admin",
    ("POST", "/api/users/<int:user_id>/password"): "admin",
    ("GET", "/api/audit"): "admin",
    ("POST", "/api/account/password"): "viewer",
    ("POST", "/api/tokens"): "viewer",
    ("DELETE", "/api/tokens/<int:token_id>"): "viewer",
}
RANK = {"viewer": 1, "editor": 2, "admin": 3}
# Read by programs, not people: refused like the API (401 and a Bearer challenge), not redirected.
PROGRAM_PATHS = {"/metrics"}


def routes(app) -> list[tuple[str, str, str]]:
    """`(method, rule, endpoint)` of every route the app serves."""
    return sorted(
        (method, rule.rule, rule.endpoint)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - IGNORED_METHODS
    )


# Ids in sample URLs: 1 (the sample objects below), but no token that the tests act with.
SAMPLE_VALUES = {"filename": "app.css", "token_id": "999"}


def sample_path(rule: str, ids: dict[str, str] | None = None) -> str:
    """A URL of the rule: each id as `ids` or SAMPLE_VALUES say (else 1), a static file that
    exists."""
    values = SAMPLE_VALUES | (ids or {})
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values.get(m.group(1), "1"), rule)


def undeclared(app) -> list[str]:
    """Endpoints whose view says neither @public nor @requires(role)."""
    with app.app_context():
        return sorted(e for e in app.view_functions if access_of(e) is None)


def test_every_view_declares_who_may_call_it(app):
    assert undeclared(app) == []


def test_the_public_routes_are_exactly_those_spec_names(app):
    with app.app_context():
        public = {rule for _, rule, endpoint in routes(app) if access_of(endpoint) == PUBLIC}
    assert public == PUBLIC_RULES


def test_every_other_route_refuses_a_request_without_credentials(app):
    anonymous = app.test_client()
    wrong = []
    for method, rule, _ in routes(app):
        if rule in PUBLIC_RULES:
            continue
        path = sample_path(rule)
        response = anonymous.open(path, method=method)
        if path.startswith("/api/") or path in PROGRAM_PATHS:
            body = response.get_json(silent=True) or {}
            refused = (
                response.status_code == 401
                and body.get("error", {}).get("code") == "unauthorized"
                and response.headers.get("WWW-Authenticate", "").startswith("Bearer")
            )
        else:
            # A page sends the person to sign in, and back to the page afterwards (a form
            # posted while signed out cannot be sent again, so it goes to the home page then).
            expected = "/login?next=" + quote(path, safe="") if method == "GET" else "/login"
            refused = response.status_code == 302 and response.headers.get("Location") == expected
        if not refused:
            wrong.append((method, path, response.status_code, response.headers.get("Location")))
    assert wrong == []


def test_the_public_routes_answer_without_credentials(app):
    anonymous = app.test_client()
    for path, status in [
        ("/login", 200),
        ("/setup", 404),  # public, but without a valid one-time link there is nothing there
        ("/healthz", 200),
        ("/readyz", 200),
        ("/api/openapi.json", 200),
        ("/static/app.css", 200),
        ("/static/app.js", 200),
    ]:
        assert anonymous.get(path).status_code == status, path


def test_a_route_added_without_a_declaration_is_caught_and_only_admins_pass(make_app, accounts):
    from tests.conftest import client_with_token

    app = make_app()

    @app.get("/api/something-new")
    def something_new():
        return {"done": True}

    assert undeclared(app) == ["something_new"]
    for role, status in [("viewer", 403), ("editor", 403), ("admin", 200)]:
        response = client_with_token(app, accounts[role].token).get("/api/something-new")
        assert response.status_code == status, role
    assert app.test_client().get("/api/something-new").status_code == 401


def api_routes(app) -> list[tuple[str, str]]:
    """Every API route that needs credentials."""
    return [
        (method, rule)
        for method, rule, _ in routes(app)
        if rule.startswith("/api/") and rule not in PUBLIC_RULES
    ]


def needed_role(method: str, rule: str) -> str:
    if (method, rule) in NEEDS:
        return NEEDS[(method, rule)]
    # Reading is every viewer's; a new route that changes something must be given its role.
    assert method == "GET", f"{method} {rule} is not in NEEDS: add the role SPEC gives it"
    return "viewer"


@pytest.fixture
def sample_objects(client, receiver_url) -> dict[str, str]:
    """A product, an import, a webhook with a delivery; their ids, for the routes' URLs.

    Ids as the app gave them, not 1: an id an earlier test's worker took is not given again.
    """
    product = client.post("/api/products", json={"sku": "S-1", "name": "Sample"})
    assert product.status_code == 201
    hook = client.post("/api/webhooks", json={"url": receiver_url, "events": ["product.updated"]})
    assert hook.status_code == 201
    ids = {"product_id": product.get_json()["id"], "endpoint_id": hook.get_json()["id"]}
    assert client.patch(f"/api/products/{ids['product_id']}", json={"name": "C"}).status_code == 200
    upload = client.post("/api/imports", data={"file": (io.BytesIO(b"sku,name\nA,B\n"), "a.csv")})
    assert upload.status_code == 202
    ids["job_id"] = upload.get_json()["id"]
    assert client.post(f"/api/imports/{ids['job_id']}/cancel").status_code == 202
    deliveries = client.get(f"/api/webhooks/{ids['endpoint_id']}/deliveries").get_json()["items"]
    ids["delivery_id"] = deliveries[0]["id"]
    return {name: str(value) for name, value in ids.items()}


@pytest.fixture
def receiver_url():
    return "http://127.0.0.1:9/hook"  # nothing listens: a test ping fails at once


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
def test_each_role_may_call_exactly_the_api_routes_spec_gives_it(
    app, role, client_as, sample_objects
):
    caller = client_as(role)
    wrong = []
    for method, rule in api_routes(app):
        needed = needed_role(method, rule)
        body = None if method == "GET" else {}
        response = caller.open(sample_path(rule, sample_objects), method=method, json=body)
        response.close()  # a stream (progress events, CSV) is not read here
        if RANK[role] >= RANK[needed]:
            if response.status_code in (401, 403):
                wrong.append((method, rule, response.status_code, "should be allowed"))
            continue
        error = (response.get_json(silent=True) or {}).get("error", {})
        says_role = f"needs the {needed} role" in error.get("message", "")
        if response.status_code != 403 or error.get("code") != "forbidden" or not says_role:
            wrong.append((method, rule, response.status_code, error.get("message")))
    assert wrong == []


def test_a_role_too_low_for_a_page_gets_a_page_naming_the_role_needed(client_as):
    response = client_as("editor").get("/users", headers={"Accept": "text/html"})

    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "This needs the admin role" in page and "editor@example.test" in page


def test_the_openapi_document_says_who_may_call_each_operation(app, client):
    document = client.get("/api/openapi.json").get_json()
    assert set(document["components"]["securitySchemes"]) == {"bearer", "session"}
    wrong = []
    for method, rule, endpoint in routes(app):
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)
        operation = document["paths"].get(path, {}).get(method.lower())
        if operation is None:
            continue  # pages and static files are not in the API's document
        with app.app_context():
            public = access_of(endpoint) == PUBLIC
        if public != (operation.get("security") == []):
            wrong.append((method, path, "security"))
        if not public and not {"401", "403"} <= set(operation["responses"]):
            wrong.append((method, path, "401/403"))
    assert wrong == []


def test_a_viewer_reads_webhooks_but_never_a_secret(client, client_as):
    made = client.post(
        "/api/webhooks", json={"url": "http://127.0.0.1:9/h", "events": ["product.created"]}
    )
    secret = made.get_json()["secret"]
    viewer = client_as("viewer")

    for path in ("/api/webhooks", "/api/webhooks/1", "/api/webhooks/1/deliveries"):
        response = viewer.get(path)
        assert response.status_code == 200
        assert secret not in response.get_data(as_text=True) and '"secret"' not in response.text
