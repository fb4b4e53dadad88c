"""The audit log: every action SPEC lists, with account, time, client address and target."""

import io
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import PASSWORD, client_with_token, paused
from tests.helpers import wait_for_job

from .conftest import form_token, post_sign_in

ADDRESS = "203.0.113.7"
CLOSED_PORT_URL = "http://127.0.0.1:9/hook"  # nothing listens: a test ping fails at once


@pytest.fixture
def acting(app, accounts):
    """Return a test client with the token of a role, calling from ADDRESS."""

    def make(role: str | None):
        caller = client_with_token(app, accounts[role].token if role else None)
        caller.environ_base["REMOTE_ADDR"] = ADDRESS
        return caller

    return make


def entries(admin, **filters) -> dict:
    response = admin.get("/api/audit", query_string=filters)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def csv_file(text: str) -> dict:
    return {"file": (io.BytesIO(text.encode()), "fruit.csv")}


def sign_in_and_out(acting, email: str) -> None:
    browser = acting(None)
    assert post_sign_in(browser, email, "wrong password").status_code == 401
    assert post_sign_in(browser, email, PASSWORD).status_code == 302
    token = form_token(browser.get("/account").get_data(as_text=True))
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 302


def import_actions(editor) -> None:
    assert editor.post("/api/imports", data=csv_file("sku,name\nA,B\n")).status_code == 202
    assert editor.post("/api/imports/1/cancel").status_code == 202
    assert editor.post("/api/imports/1/retry").status_code == 202
    assert editor.post("/api/imports/2/cancel").status_code == 202


def product_and_webhook_actions(editor, admin) -> None:
    hook = {"url": CLOSED_PORT_URL, "events": ["product.created"]}
    assert admin.post("/api/webhooks", json=hook).status_code == 201
    assert admin.patch("/api/webhooks/1", json={"description": "ERP"}).status_code == 200
    assert admin.post("/api/webhooks/1/test").get_json()["ok"] is False
    assert editor.post("/api/products", json={"sku": "P-1", "name": "Pen"}).status_code == 201
    assert editor.patch("/api/products/1", json={"name": "Blue pen"}).status_code == 200
    assert admin.post("/api/webhooks/1/deliveries/1/redeliver").status_code == 202
    assert admin.delete("/api/webhooks/1").status_code == 204
    assert editor.delete("/api/products/1").status_code == 204
    assert admin.delete("/api/products?confirm=true").status_code == 200


def account_actions(editor, admin) -> None:
    assert admin.post("/api/users", json={"email": "new@example.test", "role": "viewer"})
    assert admin.patch("/api/users/4", json={"role": "editor"}).status_code == 200
    assert admin.patch("/api/users/4", json={"active": False}).status_code == 200
    assert admin.post("/api/users/4/password").status_code == 200
    made = editor.post("/api/tokens", json={"name": "ERP sync", "role": "viewer"}).get_json()
    assert editor.delete(f"/api/tokens/{made['id']}").status_code == 204
    change = {"current_password": PASSWORD, "new_password": "another long password"}
    assert editor.post("/api/account/password", json=change).status_code == 204


EDITOR, ADMIN = "editor@example.test", "admin@example.test"
EXPECTED = [
    (None, "auth.sign_in_failed", EDITOR),
    (EDITOR, "auth.signed_in", EDITOR),
    (EDITOR, "auth.signed_out", EDITOR),
    (EDITOR, "import.created", "import #1"),
    (EDITOR, "import.cancelled", "import #1"),
    (EDITOR, "import.retried", "import #2"),
    (EDITOR, "import.cancelled", "import #2"),
    (ADMIN, "webhook.created", CLOSED_PORT_URL),
    (ADMIN, "webhook.updated", CLOSED_PORT_URL),
    (ADMIN, "webhook.tested", "webhook 1"),
    (EDITOR, "product.created", "P-1"),
    (EDITOR, "product.updated", "P-1"),
    (ADMIN, "webhook.redelivered", "webhook 1"),
    (ADMIN, "webhook.deleted", CLOSED_PORT_URL),
    (EDITOR, "product.deleted", "P-1"),
    (ADMIN, "products.deleted_all", "every product"),
    (ADMIN, "user.created", "new@example.test"),
    (ADMIN, "user.changed", "new@example.test"),
    (ADMIN, "user.changed", "new@example.test"),
    (ADMIN, "user.password_reset", "new@example.test"),
    (EDITOR, "token.created", "ERP sync"),
    (EDITOR, "token.revoked", "ERP sync"),
    (EDITOR, "account.password_changed", EDITOR),
]


def test_every_action_is_recorded_with_account_time_address_and_target(acting, live_worker):
    editor, admin = acting("editor"), acting("admin")
    started = datetime.now(UTC)

    sign_in_and_out(acting, EDITOR)
    with paused(live_worker):  # the imports stay queued, to be cancelled
        import_actions(editor)
    product_and_webhook_actions(editor, admin)
    account_actions(editor, admin)

    log = entries(admin)["items"][::-1]  # oldest first
    assert [(e["actor"], e["action"], e["target"]) for e in log] == EXPECTED
    assert {e["client_address"] for e in log} == {ADDRESS}
    for entry in log:
        at = datetime.fromisoformat(entry["at"])
        assert started - timedelta(seconds=1) <= at <= datetime.now(UTC)
    changes = [e["details"] for e in log if e["action"] == "user.changed"]
    assert changes == [{"role": "editor"}, {"active": False, "tokens_revoked": 0}]


def test_the_log_is_filtered_by_account_and_action_and_paged(acting):
    editor, admin = acting("editor"), acting("admin")
    for n in range(55):
        assert editor.post("/api/products", json={"sku": f"E-{n}", "name": "E"}).status_code == 201
    assert admin.post("/api/products", json={"sku": "A-1", "name": "A"}).status_code == 201
    assert admin.delete("/api/products/56").status_code == 204

    first = entries(admin, actor="EDITOR@example.test")
    assert (first["total"], first["pages"], first["per_page"], len(first["items"])) == (
        55,
        2,
        50,
        50,
    )
    assert first["items"][0]["target"] == "E-54"  # newest first
    second = entries(admin, actor=EDITOR, page=2)
    assert [e["target"] for e in second["items"]] == ["E-4", "E-3", "E-2", "E-1", "E-0"]
    assert entries(admin, action="product.deleted")["total"] == 1
    assert entries(admin, action="product.")["total"] == 57  # a prefix ending in a dot
    assert entries(admin, actor=ADMIN, action="product.created")["total"] == 1
    assert entries(admin, actor="nobody@example.test")["items"] == []
    blank = entries(admin, actor=" ", action="", page="")  # as a form sends them: no filter
    assert (blank["total"], blank["page"]) == (entries(admin)["total"], 1)
    assert admin.get("/api/audit?page=0").status_code == 422
    assert editor.get("/api/audit").status_code == 403


def test_an_import_says_who_started_it(acting, live_worker, http):
    editor = acting("editor")
    with paused(live_worker):
        job = editor.post("/api/imports", data=csv_file("sku,name\nA,B\n")).get_json()
        assert job["created_by"] == EDITOR
        retried = acting("admin").post(f"/api/imports/{job['id']}/cancel")
        assert retried.get_json()["created_by"] == EDITOR  # cancelling does not change it
    again = acting("admin").post(f"/api/imports/{job['id']}/retry").get_json()
    assert again["created_by"] == ADMIN
    listed = editor.get("/api/imports").get_json()["items"]
    assert [j["created_by"] for j in listed] == [ADMIN, EDITOR]
    assert wait_for_job(http, again["id"])["created_by"] == ADMIN


def audit_page(admin, **filters) -> str:
    response = admin.get("/audit", query_string=filters, headers={"Accept": "text/html"})
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def test_the_audit_page_shows_details_as_a_person_reads_them(acting, sql):
    admin = acting("admin")
    hook = {"url": CLOSED_PORT_URL, "events": ["product.created", "product.deleted"]}
    assert admin.post("/api/webhooks", json=hook).status_code == 201
    assert admin.post("/api/webhooks/1/test").get_json()["ok"] is False
    assert admin.patch("/api/users/3", json={"active": False}).status_code == 200
    sql(
        "INSERT INTO audit_log (at, action, target, details) VALUES (now(), 'import.created', "
        """'import #9', '{"max_invalid": null, "plan": true, "columns": {"sku": "Item Code"}}')"""
    )

    page = audit_page(admin)

    assert "events: product.created, product.deleted" in page
    assert "ok: false" in page and "active: false" in page
    assert "max_invalid: null" in page and "plan: true" in page
    assert "columns: {&#34;sku&#34;: &#34;Item Code&#34;}" in page
    for python in ("False", "True", "None", "['", "{'"):
        assert python not in page, python


def test_a_page_past_the_last_shows_the_last_page_and_says_so(acting, sql):
    admin = acting("admin")
    sql(
        "INSERT INTO audit_log (at, action, target) "
        "SELECT now(), 'product.created', 'P-' || n FROM generate_series(1, 51) AS n"
    )

    page = audit_page(admin, page=99)

    assert "51 entries · page 2 of 2" in page
    assert "There is no page 99: this is the last page, 2." in page
    assert ">P-1<" in page.replace("\n", "").replace(" ", "") and ">P-2<" not in page
    assert "page=1" in page and "page=3" not in page  # Newer leads back, Older is gone
    nothing = audit_page(admin, action="auth.signed_in", page=5)
    assert "0 entries · page 1 of 1" in nothing and "There is no page 5" in nothing
    api = entries(admin, page=99)  # the API answers the page asked for: an empty one
    assert (api["page"], api["pages"], api["items"]) == (99, 2, [])


@pytest.mark.parametrize("asked", ["0", "-1", "-99999999999999999999", "first"])
def test_a_page_before_the_first_shows_the_first_page_and_says_so(acting, sql, asked):
    admin = acting("admin")
    sql(
        "INSERT INTO audit_log (at, action, target) "
        "SELECT now(), 'product.created', 'P-' || n FROM generate_series(1, 51) AS n"
    )

    page = audit_page(admin, page=asked)

    assert "51 entries · page 1 of 2" in page
    assert f"There is no page {asked}: this is the first page, 1." in page
    assert ">P-51<" in page.replace("\n", "").replace(" ", "")
    assert "page=2" in page  # Older leads on
    assert admin.get("/api/audit", query_string={"page": asked}).status_code == 422
    for plain in ("", "1", "01"):
        assert "There is no page" not in audit_page(admin, page=plain)


@pytest.mark.parametrize(
    ("page", "says"),
    [("0", "page must be 1 or more."), ("100001", "page must be from 1 to 100,000.")],
)
def test_a_page_out_of_range_is_said_as_the_products_api_says_it(acting, page, says):
    response = acting("admin").get("/api/audit", query_string={"page": page})

    assert (response.status_code, response.get_json()["error"]["message"]) == (422, says)


def test_a_page_far_past_the_last_shows_the_last_page(acting):
    page = audit_page(acting("admin"), page="9" * 30)

    assert "page 1 of 1" in page and f"There is no page {'9' * 30}: this is the last page" in page


def test_a_prefix_filter_keeps_exactly_the_actions_it_starts(acting, sql):
    actions = ["product.created", "product.updated", "products.deleted_all", "auth.signed_in"]
    actions += ["auth.sign_in_failed", "webhook.created", "import_x.created"]
    for action in actions:
        sql("INSERT INTO audit_log (at, action) VALUES (now(), :action)", action=action)
    admin = acting("admin")

    def matched(action: str) -> list[str]:
        return sorted(e["action"] for e in entries(admin, action=action)["items"])

    assert matched("product.") == ["product.created", "product.updated"]
    assert matched("products.") == ["products.deleted_all"]
    assert matched("auth.") == ["auth.sign_in_failed", "auth.signed_in"]
    assert matched("product") == []  # no dot: the exact action only
    assert matched("%.") == [] and matched("_uth.") == []  # taken as they are, not as patterns
    assert matched("import_x.") == ["import_x.created"]


def test_the_audit_page_shows_in_local_time_only_the_moments_the_server_wrote(acting, sql):
    # A recovery's `since` is the server's moment; a file named like a time is the uploader's
    # own words, and an audit log must show them as they were recorded.
    admin = acting("admin")
    sql(
        "INSERT INTO audit_log (at, action, target, details) VALUES "
        """(now(), 'webhook.recovered', 'webhook 1', '{"since": "2026-12-04T19:24:00Z"}'), """
        """(now(), 'import.created', 'import #9', '{"file": "export 2026-12-04 19:24 UTC.csv"}')"""
    )

    page = audit_page(admin)

    assert 'since: <time class="nowrap" datetime="2026-12-04T19:24:00Z" data-local>' in page
    assert "file: export 2026-12-04 19:24 UTC.csv" in page


def test_the_audit_page_searches_without_the_control_characters_a_filter_was_given(acting):
    # A NUL or an escape (in a link, or pasted) replaced the page, its form and its entries,
    # with an error page.
    editor, admin = acting("editor"), acting("admin")
    assert editor.post("/api/products", json={"sku": "E-1", "name": "E"}).status_code == 201

    page = audit_page(admin, actor=f"\t{EDITOR}\x00", action="product.created\x1b")

    assert "1 entry · page 1 of 1" in page
    assert f'name="actor" value="{EDITOR}"' in page and ">E-1<" in page.replace(" ", "")
    assert admin.get("/api/audit", query_string={"actor": f"{EDITOR}\x00"}).status_code == 422
