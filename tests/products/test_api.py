"""The products JSON API, through the whole app in this process, in both modes (`api`): on
the real PostgreSQL, and on SQLite as the embedded default has it."""

import threading
import unicodedata
from contextlib import contextmanager
from functools import partial

import psycopg
import pytest
from sqlalchemy import event, select, text

from product_importer import database
from product_importer.webhooks.models import Delivery
from tests.conftest import client_with_token
from tests.helpers import deleted_as_it_commits


def create(client, **fields):
    response = client.post("/api/products", json=fields)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --- create ---------------------------------------------------------------------------------


def test_create_answers_201_with_the_product_and_its_location(api):
    response = api.post(
        "/api/products", json={"sku": " ABC-1 ", "name": "  Apple ", "description": " Red \n"}
    )

    assert response.status_code == 201
    product = response.get_json()
    assert response.headers["Location"] == f"/api/products/{product['id']}"
    assert set(product) == {
        "id",
        "sku",
        "name",
        "description",
        "active",
        "created_at",
        "updated_at",
    }
    assert (product["sku"], product["name"], product["description"]) == ("ABC-1", "Apple", "Red")
    assert product["active"] is True
    assert product["created_at"].endswith("Z")
    assert api.get(response.headers["Location"]).get_json() == product


def test_create_takes_active_and_defaults_the_description(api):
    product = create(api, sku="X-1", name="Pear", active=False)
    assert (product["description"], product["active"]) == ("", False)


@pytest.mark.parametrize(
    ("fields", "problems"),
    [
        ({"name": "No SKU"}, {"sku"}),
        ({"sku": "A-1"}, {"name"}),
        ({}, {"sku", "name"}),
        ({"sku": "   ", "name": "Blank SKU"}, {"sku"}),
        ({"sku": 12, "name": "Number"}, {"sku"}),
        ({"sku": None, "name": "Null"}, {"sku"}),
        ({"sku": "A" * 256, "name": "Long"}, {"sku"}),
        ({"sku": "A-1", "name": "N" * 256}, {"name"}),
        ({"sku": "A-1", "name": "Ok", "description": "d" * 10_001}, {"description"}),
        ({"sku": "A-1", "name": "Bell\x07"}, {"name"}),
        ({"sku": "A\tB", "name": "Tab in SKU"}, {"sku"}),
        ({"sku": "A-1", "name": "Ok", "description": "NUL \x00"}, {"description"}),
        ({"sku": "A-1", "name": "Ok", "active": "yes"}, {"active"}),
        ({"sku": "A-1", "name": "Ok", "colour": "red"}, {"colour"}),
        ({"sku": "", "name": "", "active": 1}, {"sku", "name", "active"}),
    ],
)
def test_create_names_every_invalid_field(api, fields, problems):
    response = api.post("/api/products", json=fields)

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid"
    assert set(error["details"]) == problems
    assert api.get("/api/products").get_json()["total"] == 0


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("name", "Widget\x1f 5 cm", "Remove the invisible U+001F, character 7."),
        ("sku", "\x7fA-1", "Remove the invisible U+007F, character 1."),
        ("description", "Line\r\nBell\x07", "Remove the invisible U+0007, character 11."),
    ],
)
def test_a_control_character_is_named_with_where_it_is(api, field, value, said):
    """It cannot be seen: the answer says which one, and where, for a person to find it."""
    fields = {"sku": "A-1", "name": "Ok", field: value}

    response = api.post("/api/products", json=fields)

    assert response.status_code == 422
    assert said in response.get_json()["error"]["details"][field]


def test_create_keeps_tabs_and_line_breaks_inside_a_description(api):
    product = create(api, sku="T-1", name="Tabs", description="a\tb\r\nc")
    assert product["description"] == "a\tb\r\nc"


def test_create_ignores_read_only_fields(api):
    product = create(api, sku="R-1", name="Echo", id=999, created_at="2020-01-01T00:00:00Z")
    assert product["id"] != 999


def test_create_refuses_a_sku_that_exists_in_any_case(api):
    create(api, sku="Abc-1", name="First")

    response = api.post("/api/products", json={"sku": "ABC-1", "name": "Second"})

    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "conflict"
    assert "Abc-1" in error["message"]
    assert set(error["details"]) == {"sku"}
    assert api.get("/api/products").get_json()["total"] == 1


# SKUs one beyond ASCII, as PostgreSQL lowers them letter by letter (Python lowers a Σ ending
# a word to ς, and İ to i with U+0307): (the product's, another spelling of it)
SKU_SPELLINGS = [("ÄPFEL-1", "äpfel-1"), ("ΟΔΟΣ-1", "οδοσ-1"), ("οδοσ-1", "ΟΔΟΣ-1"), ("İ-1", "i-1")]


@pytest.mark.parametrize(("sku", "spelled"), SKU_SPELLINGS)
def test_create_refuses_a_sku_that_exists_in_another_case_beyond_ascii(api, sku, spelled):
    create(api, sku=sku, name="First")

    response = api.post("/api/products", json={"sku": spelled, "name": "Second"})

    assert response.status_code == 409, response.get_json()
    assert sku in response.get_json()["error"]["message"]
    assert [p["sku"] for p in api.get(f"/api/products?sku={spelled}").get_json()["items"]] == [sku]


NFD = partial(unicodedata.normalize, "NFD")


def test_an_accent_written_decomposed_is_the_same_sku_and_stored_composed(api):
    """`Café` as a browser sends it (é is U+00E9) and as macOS files hold it (e + U+0301)."""
    product = create(api, sku="Café-1", name="Café")

    response = api.post("/api/products", json={"sku": NFD("CAFÉ-1"), "name": "Second"})
    assert response.status_code == 409, response.get_json()
    assert "Café-1" in response.get_json()["error"]["message"]

    created = create(api, sku=NFD("Thé-2"), name=NFD("Thé"), description=NFD("Crème"))
    assert (created["sku"], created["name"], created["description"]) == ("Thé-2", "Thé", "Crème")
    patched = api.patch(f"/api/products/{product['id']}", json={"name": NFD("Café noir")})
    assert patched.get_json()["name"] == "Café noir"
    clash = api.patch(f"/api/products/{created['id']}", json={"sku": NFD("café-1")})
    assert clash.status_code == 409
    assert api.get("/api/products").get_json()["total"] == 2


@pytest.mark.parametrize("sku", ["C:\\PARTS\\12", "X\u00a0Y-1", "O'NEIL-1"])
def test_a_taken_sku_is_named_as_it_is_spelled_not_in_python_escapes(api, sku):
    """The 409 quotes both SKUs as typed: no doubled backslash, no \\xa0 for a no-break space."""
    create(api, sku=sku.lower(), name="First")

    response = api.post("/api/products", json={"sku": sku, "name": "Second"})

    assert response.status_code == 409
    message = response.get_json()["error"]["message"]
    assert message == (
        f'A product with SKU "{sku}" (as "{sku.lower()}") already exists; SKUs ignore case.'
    )


@pytest.mark.parametrize(
    ("data", "content_type"),
    [("not json", "application/json"), ('["a list"]', "application/json"), ("x=1", "text/plain")],
)
def test_create_wants_a_json_object(api, data, content_type):
    response = api.post("/api/products", data=data, content_type=content_type)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    ("content_type", "came_as"),
    [("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"), ("", "no")],
)
def test_a_json_object_sent_without_its_content_type_is_told_which_to_send(
    api, content_type, came_as
):
    # curl -d sends a form's type: "Send the product as a JSON object." of a JSON object.
    body = '{"sku": "CT-1", "name": "Sent as a form"}'
    response = api.post("/api/products", data=body, content_type=content_type or None)

    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == (
        "Send the product as a JSON object, with Content-Type: application/json "
        f"(it came as {came_as}{' Content-Type' if came_as == 'no' else ''})."
    )


def test_a_page_of_another_site_cannot_change_products(api):
    response = api.post(
        "/api/products",
        json={"sku": "X-1", "name": "Forged"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 403
    assert api.get("/api/products").get_json()["total"] == 0


# --- get, change, delete --------------------------------------------------------------------


def test_get_an_unknown_product_is_404(api):
    response = api.get("/api/products/12345")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_patch_changes_only_the_fields_given(api):
    product = create(api, sku="P-1", name="Old", description="Kept")

    response = api.patch(f"/api/products/{product['id']}", json={"name": " New ", "active": False})

    assert response.status_code == 200
    changed = response.get_json()
    assert (changed["sku"], changed["name"], changed["description"], changed["active"]) == (
        "P-1",
        "New",
        "Kept",
        False,
    )
    assert changed["updated_at"] > product["updated_at"]
    assert changed["created_at"] == product["created_at"]
    assert api.get(f"/api/products/{product['id']}").get_json() == changed


def test_patch_with_the_same_values_changes_nothing(api):
    product = create(api, sku="P-1", name="Same")
    response = api.patch(f"/api/products/{product['id']}", json={"name": "Same", "sku": "P-1"})
    assert response.get_json() == product


def test_the_audit_log_names_the_fields_a_patch_changed_and_skips_one_that_changed_none(api):
    # The whole product sent back (read-only fields are ignored) was logged as a change of
    # every field it holds, and a change of nothing as a change.
    product = create(api, sku="P-1", name="Old")

    def edits():
        return api.get("/api/audit?action=product.updated").get_json()

    assert api.patch(f"/api/products/{product['id']}", json=product).status_code == 200
    assert edits()["items"] == []
    renamed = product | {"name": "New"}
    assert api.patch(f"/api/products/{product['id']}", json=renamed).status_code == 200
    [entry] = edits()["items"]
    assert entry["details"] == {"id": product["id"], "fields": ["name"]}


def test_patch_may_change_only_the_case_of_the_sku(api):
    product = create(api, sku="abc-1", name="Lower")
    response = api.patch(f"/api/products/{product['id']}", json={"sku": "ABC-1"})
    assert (response.status_code, response.get_json()["sku"]) == (200, "ABC-1")


def test_patch_refuses_the_sku_of_another_product(api):
    create(api, sku="TAKEN-1", name="First")
    other = create(api, sku="OTHER-1", name="Second")

    response = api.patch(f"/api/products/{other['id']}", json={"sku": "taken-1"})

    assert response.status_code == 409
    assert set(response.get_json()["error"]["details"]) == {"sku"}
    assert api.get(f"/api/products/{other['id']}").get_json()["sku"] == "OTHER-1"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [({"sku": ""}, "sku"), ({"name": None}, "name"), ({"active": "no"}, "active"), ({"x": 1}, "x")],
)
def test_patch_names_invalid_fields(api, fields, problem):
    product = create(api, sku="P-1", name="Valid")
    response = api.patch(f"/api/products/{product['id']}", json=fields)
    assert response.status_code == 422
    assert set(response.get_json()["error"]["details"]) == {problem}


def test_patch_an_unknown_product_is_404(api):
    assert api.patch("/api/products/999", json={"name": "Ghost"}).status_code == 404


def test_patch_wants_a_json_object(api):
    product = create(api, sku="P-1", name="Valid")
    assert api.patch(f"/api/products/{product['id']}", data="name=x").status_code == 400


def test_delete_answers_204_then_the_product_is_gone(api):
    product = create(api, sku="D-1", name="Doomed")
    kept = create(api, sku="D-2", name="Kept")

    response = api.delete(f"/api/products/{product['id']}")

    assert (response.status_code, response.data) == (204, b"")
    assert api.get(f"/api/products/{product['id']}").status_code == 404
    assert api.delete(f"/api/products/{product['id']}").status_code == 404
    assert [p["id"] for p in api.get("/api/products").get_json()["items"]] == [kept["id"]]


# --- edits that would lose a change made meanwhile ------------------------------------------


def test_an_edit_of_a_version_changed_since_is_refused_and_says_what_it_is_now(api):
    product = create(api, sku="E-1", name="Read")
    url = f"/api/products/{product['id']}"
    read = api.get(url).headers["ETag"]
    theirs = api.patch(url, json={"name": "Theirs"})  # someone else, meanwhile

    mine = api.patch(url, json={"name": "Mine"}, headers={"If-Match": read})

    assert mine.status_code == 412
    error = mine.get_json()["error"]
    assert error["code"] == "precondition_failed"
    assert "changed since you read it" in error["message"]
    assert error["details"] == {"etag": theirs.headers["ETag"].strip('"'), "product": theirs.json}
    assert api.get(url).get_json()["name"] == "Theirs"


def test_an_edit_not_valid_anyway_is_422_even_from_a_version_changed_since(api):
    product = create(api, sku="E-1", name="Read")
    url = f"/api/products/{product['id']}"

    response = api.patch(url, json={"name": ""}, headers={"If-Match": '"gone"'})

    assert (response.status_code, set(response.get_json()["error"]["details"])) == (422, {"name"})


def test_an_edit_of_the_current_version_applies_and_gives_the_next_etag(api):
    product = create(api, sku="E-1", name="Read")
    url = f"/api/products/{product['id']}"
    read = api.get(url).headers["ETag"]

    first = api.patch(url, json={"name": "Mine"}, headers={"If-Match": read})
    second = api.patch(url, json={"active": False}, headers={"If-Match": first.headers["ETag"]})
    anyway = api.patch(url, json={"description": "Any"}, headers={"If-Match": "*"})

    assert [r.status_code for r in (first, second, anyway)] == [200, 200, 200]
    assert first.headers["ETag"] != read
    assert api.get(url).headers["ETag"] == anyway.headers["ETag"]
    assert api.get(url).get_json()["description"] == "Any"


def test_an_etag_a_proxy_marked_weak_still_names_its_version(api):
    # nginx and others turn an ETag weak when they compress the answer.
    product = create(api, sku="E-1", name="Read")
    url = f"/api/products/{product['id']}"
    weak = "W/" + api.get(url).headers["ETag"]

    response = api.patch(url, json={"name": "Mine"}, headers={"If-Match": weak})

    assert (response.status_code, response.get_json()["name"]) == (200, "Mine")


def test_a_delete_of_a_version_changed_since_is_refused(api):
    product = create(api, sku="E-1", name="Read")
    url = f"/api/products/{product['id']}"
    read = api.get(url).headers["ETag"]
    api.patch(url, json={"name": "Theirs"})

    assert api.delete(url, headers={"If-Match": read}).status_code == 412
    current = api.get(url).headers["ETag"]
    assert api.delete(url, headers={"If-Match": current}).status_code == 204


class Interleaved:
    """Two edits' statements, interleaved: the first stops right after it read the product to
    change, until the second runs a statement that would wait for the first's lock (a row read
    FOR UPDATE, or SQLite's one writer's lock) or that writes.

    `first` is the thread of the first edit; `before` and `after` are the engine's cursor events.
    """

    def __init__(self, first: threading.Thread):
        self.first = first
        self.first_read, self.second_locks = threading.Event(), threading.Event()

    def before(self, conn, cursor, statement, *args):
        locks = statement.startswith("UPDATE") or "FOR UPDATE" in statement
        if threading.current_thread() is not self.first and locks:
            self.second_locks.set()

    def after(self, conn, cursor, statement, *args):
        reads = statement.startswith("SELECT") and "WHERE products.id =" in statement
        if threading.current_thread() is self.first and reads and not self.first_read.is_set():
            self.first_read.set()
            assert self.second_locks.wait(60), "the second edit never got to its lock"


def test_two_edits_from_one_version_at_once_apply_one_and_refuse_the_other(
    any_app, any_engine, accounts, api
):
    # Both read the same version, and both say so (If-Match): the second waits for the first
    # and is refused, in both modes. SQLite reads no row FOR UPDATE: both edits applied there,
    # and the first one's name was lost without a word.
    product = create(api, sku="E-1", name="Read")
    url = f"/api/products/{product['id']}"
    etag = {"If-Match": api.get(url).headers["ETag"]}
    answers = {}

    def edit(name: str) -> None:
        client = client_with_token(any_app, accounts["admin"].token)
        answers[name] = client.patch(url, json={"name": name}, headers=etag)

    first, second = (threading.Thread(target=edit, args=(name,)) for name in ("One", "Two"))
    order = Interleaved(first)
    event.listen(any_engine, "before_cursor_execute", order.before)
    event.listen(any_engine, "after_cursor_execute", order.after)
    try:
        first.start()
        assert order.first_read.wait(60), "the first edit never read the product"
        second.start()
        first.join(), second.join()
    finally:
        event.remove(any_engine, "before_cursor_execute", order.before)
        event.remove(any_engine, "after_cursor_execute", order.after)

    assert (answers["One"].status_code, answers["Two"].status_code) == (200, 412), answers
    assert api.get(url).get_json()["name"] == "One"


# --- delete all -----------------------------------------------------------------------------


def test_delete_all_needs_confirm_true(api):
    create(api, sku="K-1", name="Kept")
    for query in ("", "?confirm=false", "?confirm=yes", "?confirm="):
        response = api.delete(f"/api/products{query}")
        assert response.status_code == 400, query
        assert "confirm=true" in response.get_json()["error"]["message"]
    assert api.get("/api/products").get_json()["total"] == 1


def test_delete_all_with_a_filter_deletes_nothing_and_says_it_takes_none(api):
    # The filter was ignored: `?confirm=true&sku=ET-` deleted the whole catalog.
    create(api, sku="ET-1", name="Meant")
    create(api, sku="K-1", name="Kept")

    response = api.delete("/api/products?confirm=true&sku=ET-")

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["message"].startswith("This deletes every product; it takes no sku.")
    assert error["details"] == {"sku": "Not taken here."}
    assert api.get("/api/products").get_json()["total"] == 2


def test_delete_all_deletes_every_product_and_says_how_many(api):
    for n in range(3):
        create(api, sku=f"ALL-{n}", name="Product")

    response = api.delete("/api/products?confirm=true")

    assert (response.status_code, response.get_json()) == (200, {"deleted": 3})
    assert api.get("/api/products").get_json()["total"] == 0
    assert api.delete("/api/products?confirm=true").get_json() == {"deleted": 0}
    assert create(api, sku="ALL-0", name="Again")["sku"] == "ALL-0"


@contextmanager
def an_import_applying(engine):
    """Hold the lock an import holds from the start of its merge to its commit."""
    with engine.connect() as conn:
        database.of(conn).hold_apply_lock(conn)
        yield
        conn.rollback()


def test_delete_all_is_refused_while_an_import_is_applying(api, any_engine):
    create(api, sku="K-1", name="Kept")
    with an_import_applying(any_engine):
        response = api.delete("/api/products?confirm=true")

    assert response.status_code == 409
    assert "import" in response.get_json()["error"]["message"]
    assert api.get("/api/products").get_json()["total"] == 1
    assert api.delete("/api/products?confirm=true").status_code == 200


def test_delete_all_gives_up_while_a_long_reader_holds_the_table(client, test_env):
    create(client, sku="K-1", name="Kept")
    with psycopg.connect(test_env["DATABASE_URL"]) as reader:
        reader.execute("SELECT count(*) FROM products")  # its transaction stays open
        response = client.delete("/api/products?confirm=true")

    assert response.status_code == 409
    assert "busy" in response.get_json()["error"]["message"]
    assert client.get("/api/products").get_json()["total"] == 1


# --- webhook events -------------------------------------------------------------------------


EVENTS = ["product.created", "product.updated", "product.deleted", "products.deleted_all"]


def queued_events(engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.event_type, Delivery.payload).order_by(Delivery.id))
        return [(event, payload) for event, payload in rows]


def test_each_change_queues_its_event_with_the_product(api, any_engine):
    response = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/", "events": EVENTS})
    assert response.status_code == 201, response.get_json()

    product = create(api, sku="EV-1", name="Apple")
    api.patch(f"/api/products/{product['id']}", json={"name": "Green apple"})
    api.patch(f"/api/products/{product['id']}", json={"name": "Green apple"})  # no change
    api.post("/api/products", json={"sku": "ev-1", "name": "Clash"})  # refused: no event
    api.delete(f"/api/products/{product['id']}")
    create(api, sku="EV-2", name="Pear")
    api.delete("/api/products?confirm=true")

    queued = queued_events(any_engine)
    assert [event for event, _ in queued] == [
        "product.created",
        "product.updated",
        "product.deleted",
        "product.created",
        "products.deleted_all",
    ]
    assert '"name":"Green apple"' in queued[1][1]
    assert f'"id":{product["id"]}' in queued[2][1]
    assert '"data":{"deleted":1}' in queued[4][1]


# --- the catalog total ----------------------------------------------------------------------


def test_the_total_follows_rows_written_by_other_connections(client, app):
    from product_importer.extensions import db

    create(client, sku="T-0", name="First")
    assert client.get("/api/products?per_page=1").get_json()["total"] == 1
    with app.app_context(), db.engine.begin() as conn:  # as an import writes: set-based SQL
        conn.execute(
            text(
                "INSERT INTO products (sku, name) "
                "SELECT 'T-' || n, 'Bulk' FROM generate_series(1, 120) AS n"
            )
        )
    assert client.get("/api/products?per_page=1").get_json()["total"] == 121
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text("DELETE FROM products WHERE sku LIKE 'T-1%'"))
    body = client.get("/api/products?per_page=1").get_json()
    assert (body["total"], body["pages"]) == (89, 89)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "", {"sku": "GONE-1", "name": "Made, then deleted"}),
        ("PATCH", "/{id}", {"name": "Made, then deleted"}),
    ],
)
def test_a_change_answers_what_it_made_though_a_delete_of_the_product_commits_right_after(
    http, holding, method, path, body
):
    """A product created or changed (one editor) and deleted (another) at once: the delete
    waits for the change, and may commit before the change's answer is read. The answer was
    read after the commit, from the product loaded again: it was gone, and the change that was
    made answered 500."""
    existing = http.post("/api/products", json={"sku": "GONE-0", "name": "Before"}).json()

    answer = deleted_as_it_commits(
        holding,
        lambda: http.request(method, "/api/products" + path.format(**existing), json=body),
        table="products",
        delete="DELETE FROM products WHERE lower(sku) LIKE 'gone-%'",
    )

    assert answer.status_code in (200, 201), answer.text
    assert answer.json()["name"] == "Made, then deleted"
    assert answer.headers["ETag"]
    assert http.get(f"/api/products/{answer.json()['id']}").status_code == 404
