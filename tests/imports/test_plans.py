"""Plans, change records, undo and guards, through HTTP, in both modes (issue 10)."""

import csv
import gzip
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.conftest import paused
from tests.helpers import import_csv, upload_csv, wait_for_job

from .conftest import TABLE_LOCK, csv_bytes, wait_for

HEADER = ("sku", "name", "description", "active")
FIRST = csv_bytes(
    [
        ("A-1", "Apple", "Red", "true"),
        ("B-2", "Banana", "Yellow", "true"),
        ("C-3", "Cherry", "", "no"),
    ],
    header=HEADER,
)
# Changes A-1's SKU spelling, name and active; leaves B-2; C-3 gets a description; D-4 is new.
SECOND = csv_bytes(
    [
        ("a-1", "Apple pie", "Red", "false"),
        ("B-2", "Banana", "Yellow", "true"),
        ("C-3", "Cherry", "Dark", "no"),
        ("D-4", "Date", "Sweet", "yes"),
    ],
    header=HEADER,
)
VALUES_AFTER_SECOND = [
    ("a-1", "Apple pie", "Red", False),
    ("B-2", "Banana", "Yellow", True),
    ("C-3", "Cherry", "Dark", False),
    ("D-4", "Date", "Sweet", True),
]


def values(catalog) -> list[tuple]:
    """(sku, name, description, active) of every product, by SKU."""
    return sorted(((r[1], r[2], r[3], bool(r[4])) for r in catalog), key=lambda v: v[0].lower())


def counts(job: dict) -> tuple:
    return job["created"], job["updated"], job["unchanged"], job["rows_invalid"]


def changes(http, job_id: int, **params) -> dict:
    response = http.get(f"/api/imports/{job_id}/changes", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --- plans ----------------------------------------------------------------------------------


def test_a_plan_changes_nothing_and_applying_it_equals_a_direct_import(any_http, any_catalog):
    import_csv(any_http, FIRST)
    before = any_catalog()

    plan = import_csv(any_http, SECOND, data={"plan": "true"})

    assert plan["status"] == "planned", plan
    # read and compared: the apply's writing is left (100 is for an import that has ended)
    assert (plan["plan"], plan["percent"], plan["kind"]) == (True, 40, "import")
    assert counts(plan) == (1, 2, 1, 0)
    assert any_catalog() == before
    created = changes(any_http, plan["id"], kind="created")
    assert created["total"] == 1
    assert created["items"][0]["sku"] == "D-4"
    assert created["items"][0]["product_id"] is None
    assert created["items"][0]["changes"]["name"] == {"before": None, "after": "Date"}
    updated = changes(any_http, plan["id"], kind="updated")["items"]
    assert [item["sku"] for item in updated] == ["a-1", "C-3"]
    assert updated[0]["changes"] == {
        "sku": {"before": "A-1", "after": "a-1"},
        "name": {"before": "Apple", "after": "Apple pie"},
        "active": {"before": True, "after": False},
    }
    assert updated[1]["changes"] == {"description": {"before": "", "after": "Dark"}}

    applied = any_http.post(f"/api/imports/{plan['id']}/apply")
    assert applied.status_code == 202, applied.text
    assert applied.json()["id"] == plan["id"]
    job = wait_for_job(any_http, plan["id"])

    assert job["status"] == "completed", job
    assert (job["plan"], counts(job)) == (False, (1, 2, 1, 0))
    assert values(any_catalog()) == VALUES_AFTER_SECOND
    record = changes(any_http, job["id"])
    assert record["total"] == 3
    assert all(item["product_id"] for item in record["items"])
    assert any_http.post(f"/api/imports/{job['id']}/apply").status_code == 409


def test_applying_a_plan_merges_the_rows_it_kept_without_reading_the_file_again(http, sql):
    data = SECOND.replace(b"D-4,", b",") + b"E-5,Elder,,maybe\r\n"  # two invalid rows
    plan = import_csv(http, data, data={"plan": "true"})
    assert counts(plan) == (3, 0, 0, 2)
    (path,) = sql("SELECT file_path FROM import_jobs WHERE id = :id", id=plan["id"])[0]
    with open(path, "wb"):  # the stored file, emptied: an apply that read it would import nothing
        pass

    job = wait_for_job(http, http.post(f"/api/imports/{plan['id']}/apply").json()["id"])

    assert job["status"] == "completed_with_errors", job
    assert counts(job) == counts(plan)
    assert http.get(f"/api/imports/{job['id']}/errors.csv").text.count("\n") == 3  # the plan's


def test_applying_a_plan_whose_kept_rows_were_lost_reads_the_file_again(http, sql, catalog):
    plan = import_csv(http, SECOND, data={"plan": "true"})
    sql(f"TRUNCATE import_planned_{plan['id']}")  # as a crash of the database server leaves it

    job = wait_for_job(http, http.post(f"/api/imports/{plan['id']}/apply").json()["id"])

    assert (job["status"], counts(job)) == ("completed", (4, 0, 0, 0))
    assert values(catalog()) == VALUES_AFTER_SECOND


def test_a_plan_stored_at_100_percent_before_the_upgrade_is_applied_from_40(http, sql):
    plan = import_csv(http, SECOND, data={"plan": "true"})
    assert plan["percent"] == 40
    sql("UPDATE import_jobs SET percent = 100 WHERE id = :id", id=plan["id"])  # as 0019 found it

    queued = http.post(f"/api/imports/{plan['id']}/apply").json()

    assert (queued["status"], queued["percent"]) == ("queued", 40)  # 100 only once it has ended
    assert wait_for_job(http, plan["id"])["percent"] == 100


def test_applying_a_plan_counts_against_the_catalog_as_it_is_then(any_http, any_catalog):
    plan = import_csv(any_http, FIRST, data={"plan": "true"})
    assert counts(plan) == (3, 0, 0, 0)
    import_csv(any_http, FIRST)  # the same products arrive another way meanwhile

    any_http.post(f"/api/imports/{plan['id']}/apply")
    job = wait_for_job(any_http, plan["id"])

    assert counts(job) == (0, 0, 3, 0)
    assert changes(any_http, job["id"])["total"] == 0


def test_an_apply_cancelled_before_it_ran_counts_nothing(http, catalog, holding, live_worker):
    import_csv(http, FIRST)
    plan = import_csv(http, SECOND, data={"plan": "true"})
    before = catalog()
    with holding(TABLE_LOCK):  # an earlier import waits for the catalog; the apply behind it
        first = upload_csv(http, "sku,name\r\nE-5,Elder\r\n").json()
        wait_for(http, first["id"], lambda job: job["phase"] == "applying", "applying")
        http.post(f"/api/imports/{plan['id']}/apply")
        wait_for(http, plan["id"], lambda job: "waiting" in job["message"], "waiting its turn")
        assert http.post(f"/api/imports/{plan['id']}/cancel").status_code == 202
        cancelled = wait_for_job(http, plan["id"])
    wait_for_job(http, first["id"])

    assert cancelled["status"] == "cancelled", cancelled
    assert counts(cancelled) == (0, 0, 0, 0)  # not the plan's (1, 2, 1, 0): nothing applied
    assert values(catalog()) == values(before) + [("E-5", "Elder", "", True)]


def test_a_discarded_plan_leaves_the_catalog_byte_identical(any_http, any_catalog):
    import_csv(any_http, FIRST)
    before = any_catalog()
    plan = import_csv(any_http, SECOND, data={"plan": "true"})

    response = any_http.post(f"/api/imports/{plan['id']}/discard")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "discarded"
    assert any_catalog() == before
    assert changes(any_http, plan["id"])["total"] == 0
    assert any_http.post(f"/api/imports/{plan['id']}/apply").status_code == 409
    assert any_http.post(f"/api/imports/{plan['id']}/discard").status_code == 409


# --- the change record ----------------------------------------------------------------------


def test_the_change_record_downloads_as_csv(any_http):
    import_csv(any_http, FIRST)
    job = import_csv(any_http, SECOND.replace(b"Sweet", b"=1+1"))

    response = any_http.get(f"/api/imports/{job['id']}/changes.csv")

    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == [
        "kind", "product_id", "sku", "name", "description", "active",
        "sku_before", "name_before", "description_before", "active_before", "changed_since",
    ]  # fmt: skip
    assert [row[0] for row in rows[1:]] == ["created", "updated", "updated"]
    assert rows[1][2:] == ["D-4", "Date", "'=1+1", "true", "", "", "", "", "false"]
    # a description left as it was is not repeated
    assert rows[2][2:] == ["a-1", "Apple pie", "", "false", "A-1", "Apple", "", "true", "false"]
    assert rows[3][2:] == ["C-3", "Cherry", "Dark", "false", "C-3", "Cherry", "", "false", "false"]
    only_created = any_http.get(f"/api/imports/{job['id']}/changes.csv", params={"kind": "created"})
    assert len(list(csv.reader(io.StringIO(only_created.text)))) == 2
    assert any_http.get(f"/api/imports/{job['id']}/changes?kind=deleted").status_code == 422
    assert any_http.get(f"/api/imports/{job['id']}/changes?per_page=201").status_code == 422


def test_an_empty_kind_lists_both_kinds_as_no_kind_does(any_http):
    import_csv(any_http, FIRST)
    job = import_csv(any_http, SECOND)
    every = any_http.get(f"/api/imports/{job['id']}/changes.csv")

    # as `?sku=` on the products: a filter left empty filters nothing
    listed = any_http.get(
        f"/api/imports/{job['id']}/changes", params={"kind": " ", "page": "", "per_page": ""}
    )
    download = any_http.get(f"/api/imports/{job['id']}/changes.csv", params={"kind": ""})

    assert listed.status_code == 200, listed.text
    assert listed.json()["total"] == 3
    assert (download.status_code, download.text) == (200, every.text)


def test_the_change_record_pages_in_file_order(any_http):
    rows = [(f"SKU-{n:03}", f"Name {n}", "") for n in range(120)]
    job = import_csv(any_http, csv_bytes(rows, header=("sku", "name", "description")))

    first = changes(any_http, job["id"], kind="created", per_page=50)
    last = changes(any_http, job["id"], kind="created", per_page=50, page=3)

    assert (first["total"], first["pages"], len(first["items"])) == (120, 3, 50)
    assert first["items"][0]["sku"] == "SKU-000"
    assert [item["sku"] for item in last["items"]] == [f"SKU-{n:03}" for n in range(100, 120)]


# --- undo -----------------------------------------------------------------------------------


def test_undoing_a_fresh_import_leaves_an_empty_catalog(any_http, any_catalog):
    job = import_csv(any_http, FIRST)

    response = any_http.post(f"/api/imports/{job['id']}/undo")

    assert response.status_code == 202, response.text
    undo = response.json()
    assert (undo["kind"], undo["undo_of"]) == ("undo", job["id"])
    undo = wait_for_job(any_http, undo["id"])
    assert undo["status"] == "completed", undo
    assert (undo["deleted"], undo["conflicts"]) == (3, 0)
    assert "deleted 3 products" in undo["message"]
    assert any_catalog() == []
    assert any_http.get(f"/api/imports/{job['id']}").json()["undone_by"] == undo["id"]
    record = changes(any_http, job["id"])  # still says what the import had created
    assert [item["sku"] for item in record["items"]] == ["A-1", "B-2", "C-3"]
    assert record["items"][2]["changes"]["active"] == {"before": None, "after": False}
    assert any_http.post(f"/api/imports/{job['id']}/undo").status_code == 409


def test_an_undo_sums_up_what_it_deleted_restored_and_left(any_http):
    import_csv(any_http, FIRST)
    job = import_csv(any_http, SECOND)  # D-4 created; a-1 and C-3 updated
    products = any_http.get("/api/products", params={"sku": "C-3"}).json()["items"]
    assert any_http.patch(f"/api/products/{products[0]['id']}", json={"name": "Sour"}).is_success

    undo = wait_for_job(any_http, any_http.post(f"/api/imports/{job['id']}/undo").json()["id"])

    assert (undo["deleted"], undo["updated"], undo["conflicts"]) == (1, 1, 1), undo
    assert undo["summary"] == "1 deleted, 1 restored, 1 changed since left as they are."
    # its message, the heading of its page, in words for one product ("1 products" before)
    assert undo["message"] == (
        "Undo complete: deleted 1 product, restored 1; 1 changed since was left as it is"
    )
    # Only the one edited since is marked in the undone import's record: every product the
    # undo restored was marked too, hiding it.
    record = changes(any_http, job["id"], kind="updated")["items"]
    assert [(item["sku"], item["changed_since"]) for item in record] == [
        ("a-1", False),
        ("C-3", True),
    ]


def test_a_product_its_undo_left_stays_marked_once_a_later_undo_puts_back_the_import_values(
    any_http,
):
    import_csv(any_http, FIRST)
    job = import_csv(any_http, SECOND)  # a-1 and C-3 updated
    later = import_csv(any_http, csv_bytes([("C-3", "Cherry", "Black", "no")], header=HEADER))
    undo = wait_for_job(any_http, any_http.post(f"/api/imports/{job['id']}/undo").json()["id"])
    assert undo["conflicts"] == 1  # C-3, written since by the later import: left
    wait_for_job(any_http, any_http.post(f"/api/imports/{later['id']}/undo").json()["id"])

    # C-3 holds what the undone import wrote again, not what its undo restored: still marked
    record = changes(any_http, job["id"], kind="updated")["items"]
    assert [(item["sku"], item["changed_since"]) for item in record] == [
        ("a-1", False),
        ("C-3", True),
    ]


def test_undoing_an_update_restores_every_field(any_http, any_catalog):
    import_csv(any_http, FIRST)
    before = any_catalog()
    job = import_csv(any_http, SECOND)
    assert values(any_catalog()) == VALUES_AFTER_SECOND

    undo = any_http.post(f"/api/imports/{job['id']}/undo").json()
    undo = wait_for_job(any_http, undo["id"])

    assert (undo["status"], undo["updated"], undo["conflicts"]) == ("completed", 2, 0)
    assert any_catalog() == before  # SKU spelling, active and timestamps included


def test_a_product_edited_after_the_import_is_a_conflict_and_kept(any_http, any_catalog):
    job = import_csv(any_http, FIRST)
    banana = next(row for row in any_catalog() if row[1] == "B-2")
    edited = any_http.patch(f"/api/products/{banana[0]}", json={"name": "Plantain"})
    assert edited.status_code == 200, edited.text
    later = import_csv(any_http, csv_bytes([("C-3", "Cherry", "Sour", "")], header=HEADER))
    assert later["updated"] == 1

    undo = any_http.post(f"/api/imports/{job['id']}/undo").json()
    undo = wait_for_job(any_http, undo["id"])

    assert (undo["status"], undo["conflicts"]) == ("completed", 2)
    assert values(any_catalog()) == [
        ("B-2", "Plantain", "Yellow", True),
        ("C-3", "Cherry", "Sour", False),
    ]


def test_a_created_product_changed_or_deleted_since_shows_so_and_is_kept(any_http, any_catalog):
    job = import_csv(any_http, FIRST)
    ids = {row[1]: row[0] for row in any_catalog()}
    assert any_http.patch(f"/api/products/{ids['B-2']}", json={"name": "Plantain"}).is_success
    assert any_http.delete(f"/api/products/{ids['C-3']}").is_success

    record = changes(any_http, job["id"], kind="created")

    assert record["total"] == 2  # C-3 is gone from the catalog, and from the record
    listed = [(i["sku"], i["changed_since"], i["changes"]["name"]) for i in record["items"]]
    assert listed == [
        ("A-1", False, {"before": None, "after": "Apple"}),
        ("B-2", True, {"before": None, "after": "Plantain"}),  # its name now
    ]
    undo = wait_for_job(any_http, any_http.post(f"/api/imports/{job['id']}/undo").json()["id"])
    assert (undo["deleted"], undo["conflicts"]) == (1, 2)
    assert values(any_catalog()) == [("B-2", "Plantain", "Yellow", True)]
    after_undo = changes(any_http, job["id"], kind="created")["items"]
    assert [(item["sku"], item["changed_since"]) for item in after_undo] == [
        ("A-1", False),  # as the undo deleted it
        ("B-2", True),
    ]


def test_only_a_completed_import_can_be_undone(any_http):
    failed = import_csv(any_http, "sku,name\r\n,\r\n")
    plan = import_csv(any_http, FIRST, data={"plan": "true"})
    assert failed["status"] == "failed"

    for job in (failed, plan):
        response = any_http.post(f"/api/imports/{job['id']}/undo")
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "conflict"
    assert any_http.post("/api/imports/999999/undo").status_code == 404


def test_an_undo_asked_for_several_times_at_once_starts_once(any_http):
    # Undo clicked in two tabs, or twice: on SQLite each request read "not undone" before the
    # other had committed, and two undo jobs ran.
    for round_ in range(5):
        job = import_csv(any_http, csv_bytes([(f"U{round_}-1", "One", "")]))
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(any_http.post, [f"/api/imports/{job['id']}/undo"] * 4))
        assert sorted(answer.status_code for answer in answers) == [202, 409, 409, 409]
        undos = [
            j for j in any_http.get("/api/imports").json()["items"] if j["undo_of"] == job["id"]
        ]
        assert len(undos) == 1, undos
        wait_for_job(any_http, undos[0]["id"])


# --- guards ---------------------------------------------------------------------------------


def test_past_max_invalid_the_job_fails_before_the_merge(any_http, any_catalog):
    import_csv(any_http, FIRST)
    before = any_catalog()
    rows = [("X-1", "", ""), ("X-2", "", ""), ("X-3", "", ""), ("X-4", "Ok", ""), ("X-5", "Ok", "")]
    data = csv_bytes(rows, header=("sku", "name", "description"))

    job = import_csv(any_http, data, data={"max_invalid": "2"})
    by_share = import_csv(any_http, data, data={"max_invalid": "50%"})
    within = import_csv(any_http, data, data={"max_invalid": "60%"})

    assert job["status"] == "failed", job
    assert "3 of 5 rows read were invalid, more than the limit of 2;" in job["error"]
    assert job["rows_invalid"] == 3
    assert by_share["status"] == "failed"
    assert "3 of 5 rows read were invalid, more than the limit of 50%" in by_share["error"]
    assert within["status"] == "completed_with_errors"
    assert within["created"] == 2
    assert len(any_catalog()) == len(before) + 2


ANYWAY = "Import the valid rows anyway"


def test_a_job_stopped_by_its_invalid_row_limit_says_so_and_can_go_on_without_it(any_http):
    # max_invalid=0 stops at a bad first row: every row read was invalid, yet the limit (not
    # the rows) stopped it, and the rows after it were never read.
    first_bad = import_csv(any_http, "sku,name\n,No SKU\n", data={"max_invalid": "0"})
    past_share = import_csv(any_http, "sku,name\nA-1,Apple\n,No SKU\n", data={"max_invalid": "10%"})

    for job in (first_bad, past_share):
        assert (job["status"], job["error_code"]) == ("failed", "too_many_invalid"), job
        assert ANYWAY in any_http.get(f"/imports/{job['id']}").text


def test_a_job_failed_otherwise_has_no_invalid_row_limit_code_whatever_its_counts(any_http):
    # A damaged gzip file read past some invalid rows, with a limit it did not reach: going on
    # without the limit would fail the same way.
    rows = b"".join(b"S-%d,%s\n" % (n, b"" if n % 100 == 0 else b"Name") for n in range(50_000))
    whole = gzip.compress(b"sku,name\n" + rows)
    job = import_csv(any_http, whole[: len(whole) // 2], data={"max_invalid": "50%"})

    assert job["status"] == "failed", job
    assert job["error"].startswith("The compressed file is damaged"), job
    assert job["error_code"] == "damaged_gzip"  # not too_many_invalid
    assert ANYWAY not in any_http.get(f"/imports/{job['id']}").text


def test_bad_options_are_refused_with_the_field(any_http):
    response = upload_csv(any_http, FIRST, data={"max_invalid": "lots", "columns": "{"})

    assert response.status_code == 422
    assert set(response.json()["error"]["details"]) == {"max_invalid", "columns"}


def test_options_are_taken_as_the_openapi_document_describes_them(any_http):
    # A form's plan is true or false, as is a JSON body's (schemathesis found both taking
    # anything, and an empty max_invalid and a control character in a column name).
    refused = upload_csv(any_http, FIRST, data={"plan": "0"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"] == {"plan": "true or false."}
    assert import_csv(any_http, FIRST, data={"plan": "false"})["status"] == "completed"
    planned = import_csv(any_http, SECOND, data={"plan": "True", "max_invalid": ""})
    assert planned["status"] == "planned", planned

    retry = f"/api/imports/{planned['id']}/retry"
    bodies = {
        "plan": {"plan": "true"},
        "max_invalid": {"max_invalid": ""},
        "columns": {"columns": {"sku": "Item\x03Code", "name": "name"}},
    }
    for option, body in bodies.items():
        response = any_http.post(retry, json=body)
        assert response.status_code == 422, response.text
        assert set(response.json()["error"]["details"]) == {option}, response.text
    assert "U+0003" in response.json()["error"]["details"]["columns"]
    taken = any_http.post(retry, json={"plan": True, "max_invalid": 5, "columns": None})
    assert taken.status_code == 202, taken.text
    assert (taken.json()["plan"], taken.json()["max_invalid"]) == (True, "5")


def test_a_missing_column_lists_the_header_and_a_mapping_retries_it(any_http, any_catalog):
    data = "Item Code;Title;Notes\r\nA-1;Apple;x\r\n"
    job = import_csv(any_http, data)
    assert job["status"] == "failed"
    assert job["header"] == ["Item Code", "Title", "Notes"]

    retry = any_http.post(
        f"/api/imports/{job['id']}/retry", json={"columns": {"sku": "item code", "name": "Title"}}
    )

    assert retry.status_code == 202, retry.text
    done = wait_for_job(any_http, retry.json()["id"])
    assert done["status"] == "completed", done
    assert done["columns"] == {"sku": "item code", "name": "Title"}
    assert done["warnings"] == ["Unknown columns were ignored: Notes."]
    assert values(any_catalog()) == [("A-1", "Apple", "", True)]


def test_a_mapping_can_say_an_optional_field_is_not_in_the_file(any_http, any_catalog):
    # "description" twice: without a way to say "none of them", the field's own name matched
    # both again and the mapping failed the same way, round and round.
    job = import_csv(any_http, "sku,name,Description,description\nA-1,Apple,x,y\n")
    assert job["header"] == ["sku", "name", "Description", "description"]

    columns = {"sku": "sku", "name": "name", "description": None}
    retry = any_http.post(f"/api/imports/{job['id']}/retry", json={"columns": columns})

    assert retry.status_code == 202, retry.text
    done = wait_for_job(any_http, retry.json()["id"])
    assert done["status"] == "completed", done
    assert done["columns"] == columns
    assert done["warnings"] == []  # left out as asked: not "unknown columns were ignored"
    assert values(any_catalog()) == [("A-1", "Apple", "", True)]
    refused = any_http.post(f"/api/imports/{job['id']}/retry", json={"columns": {"sku": None}})
    assert refused.status_code == 422, refused.text
    assert "columns" in refused.json()["error"]["details"]


def test_the_same_file_again_is_noted(any_http):
    first = import_csv(any_http, FIRST)
    again = import_csv(any_http, FIRST, data={"plan": "true"})

    assert again["duplicate_of"] == first["id"]
    assert again["warnings"][0].startswith(f"This file is identical to import #{first['id']} of ")
    assert import_csv(any_http, SECOND)["duplicate_of"] is None


def test_the_file_of_an_undone_import_imported_again_is_not_noted_as_imported(any_http):
    # Undone, its products are gone: importing its file again is the next step, not a repeat.
    first = import_csv(any_http, FIRST)
    wait_for_job(any_http, any_http.post(f"/api/imports/{first['id']}/undo").json()["id"])

    again = import_csv(any_http, FIRST)

    assert (again["duplicate_of"], again["warnings"]) == (None, [])
    assert import_csv(any_http, FIRST)["duplicate_of"] == again["id"]  # in effect again


def test_refusals_of_undo_retry_and_cancel_say_what_to_do_instead(any_http):
    job = import_csv(any_http, FIRST)
    undo = wait_for_job(any_http, any_http.post(f"/api/imports/{job['id']}/undo").json()["id"])
    plan = import_csv(any_http, SECOND, data={"plan": "true"})

    def refusal(path: str) -> str:
        answer = any_http.post(path)
        assert answer.status_code == 409, answer.text
        return answer.json()["error"]["message"]

    # a completed undo: "undo the import again instead" was itself refused
    assert refusal(f"/api/imports/{undo['id']}/retry") == (
        f"Job {undo['id']} is an undo: it cannot be retried."
    )
    assert refusal(f"/api/imports/{plan['id']}/cancel") == (
        f"Import {plan['id']} is a plan waiting: discard it instead."
    )


def test_every_answer_holds_the_import_job_as_get_does(any_http):
    # docs/api.md's ImportJob has `retry_refusal`: the answers to POSTs left it out.
    plan = import_csv(any_http, FIRST, data={"plan": "true"})
    discarded = any_http.post(f"/api/imports/{plan['id']}/discard")
    job = import_csv(any_http, FIRST)
    undo = any_http.post(f"/api/imports/{job['id']}/undo")
    retried = any_http.post(f"/api/imports/{plan['id']}/retry")

    for answer in (discarded, undo, retried):
        assert answer.is_success, answer.text
        shown = any_http.get(f"/api/imports/{answer.json()['id']}").json()
        assert answer.json().keys() == shown.keys()
    wait_for_job(any_http, undo.json()["id"])
    wait_for_job(any_http, retried.json()["id"])


def test_an_import_past_the_undo_window_cannot_be_undone(any_http, served):
    job = import_csv(any_http, FIRST)
    with served.engine.begin() as conn:
        conn.execute(
            text("UPDATE import_jobs SET finished_at = :then WHERE id = :id"),
            {"then": datetime.now(UTC) - timedelta(days=8), "id": job["id"]},
        )

    response = any_http.post(f"/api/imports/{job['id']}/undo")

    assert response.status_code == 409
    assert "more than 7 days ago" in response.json()["error"]["message"]


# --- upkeep ---------------------------------------------------------------------------------


def test_upkeep_discards_old_plans_and_removes_old_change_records(app, http, sql):
    from product_importer.extensions import db
    from product_importer.imports import plans

    old_plan = import_csv(http, FIRST, data={"plan": "true"})
    old_import = import_csv(http, SECOND)
    recent = import_csv(http, csv_bytes([("E-5", "Elder", "", "")], header=HEADER))
    failed = import_csv(http, "name\nNo sku\n")
    assert failed["status"] == "failed"
    # a row of its record, as the helpers of a bulk apply that died before its end leave it
    sql(
        "INSERT INTO import_changes (job_id, rn, kind, product_id, sku, name, active) "
        "VALUES (:id, 2, 'updated', 1, 'X-1', 'Lost', true)",
        id=failed["id"],
    )
    long_ago = datetime.now(UTC) - timedelta(days=30)
    for job in (old_plan, old_import):
        sql(
            "UPDATE import_jobs SET finished_at = :then WHERE id = :id", then=long_ago, id=job["id"]
        )

    with app.app_context():
        discarded = plans.discard_expired(db.session)
        removed = plans.remove_old_changes(db.session)
        db.session.commit()

    # the old import's 4 created products (the discarded plan's rows went with the discard),
    # and the failed import's left row
    assert (discarded, removed) == (1, 5)
    assert sql("SELECT count(*) FROM import_changes WHERE job_id = :id", id=failed["id"]) == [(0,)]
    assert http.get(f"/api/imports/{old_plan['id']}").json()["status"] == "discarded"
    assert changes(http, old_import["id"])["total"] == 0
    assert changes(http, recent["id"])["total"] == 1


def test_a_plan_discarded_by_someone_as_the_upkeep_expires_it_stops_not_the_upkeep(
    app, http, sql, holding
):
    # The upkeep listed the expired plans, then discarded each: one applied or discarded in
    # between raised a 409 there, and the rest of the pass (old change records) was skipped.
    from product_importer.extensions import db
    from product_importer.imports import plans

    plan = import_csv(http, FIRST, data={"plan": "true"})
    old_import = import_csv(http, SECOND)
    long_ago = datetime.now(UTC) - timedelta(days=30)
    for job in (plan, old_import):
        sql("UPDATE import_jobs SET finished_at = :at WHERE id = :id", at=long_ago, id=job["id"])

    def upkeep() -> tuple[int, int]:
        with app.app_context():
            done = plans.discard_expired(db.session), plans.remove_old_changes(db.session)
            db.session.commit()
            return done

    lock = f"SELECT id FROM import_jobs WHERE id = {plan['id']} FOR UPDATE"
    with holding(lock) as held, ThreadPoolExecutor(1) as pool:
        upkept = pool.submit(upkeep)
        held.wait_until_blocking()  # the plan listed, its discard waiting for the row
        discard = "UPDATE import_jobs SET status = 'discarded' WHERE id = :id"
        held.conn.execute(text(discard), {"id": plan["id"]})  # by someone, meanwhile
        held.conn.commit()
        discarded, removed = upkept.result()

    assert (discarded, removed) == (0, 4)  # the old import's 4 created products
    assert changes(http, old_import["id"])["total"] == 0


def test_an_undo_asked_for_inside_the_window_keeps_the_record_it_will_read(
    app, http, sql, catalog, live_worker
):
    # Asked for a minute before the window closed, an undo waiting in the queue found its
    # record removed by the upkeep: it undid nothing, and the import was marked undone.
    from product_importer.extensions import db
    from product_importer.imports import plans

    job = import_csv(http, FIRST)
    window_end = datetime.now(UTC) - timedelta(days=7)
    sql("UPDATE import_jobs SET finished_at = :at WHERE id = :id", at=window_end, id=job["id"])
    with paused(live_worker):
        sql(  # a minute inside, when the undo was asked for
            "UPDATE import_jobs SET finished_at = :at WHERE id = :id",
            at=window_end + timedelta(minutes=1),
            id=job["id"],
        )
        undo = http.post(f"/api/imports/{job['id']}/undo")
        assert undo.status_code == 202, undo.text
        sql("UPDATE import_jobs SET finished_at = :at WHERE id = :id", at=window_end, id=job["id"])
        with app.app_context():
            plans.remove_old_changes(db.session)  # the upkeep's pass, the window now closed
            db.session.commit()

    undone = wait_for_job(http, undo.json()["id"])
    assert undone["status"] == "completed", undone
    assert catalog() == []  # every product the import created, deleted


def test_rows_a_plan_kept_go_once_no_apply_will_read_them(app, http, sql):
    from product_importer.extensions import db
    from product_importer.imports.engine import forget_unused_plans

    kept = import_csv(http, FIRST, data={"plan": "true"})
    dropped = import_csv(http, SECOND, data={"plan": "true"})
    # as a cancel of its apply while it was queued leaves it
    sql("UPDATE import_jobs SET status = 'cancelled' WHERE id = :id", id=dropped["id"])

    with app.app_context():
        forget_unused_plans(db.session.connection())
        db.session.commit()

    tables = {row[0] for row in sql("SELECT relname FROM pg_class WHERE relkind = 'r'")}
    assert f"import_planned_{kept['id']}" in tables
    assert f"import_planned_{dropped['id']}" not in tables


def test_apply_discard_and_undo_are_in_the_audit_log(http):
    plan = import_csv(http, FIRST, data={"plan": "true"})
    other = import_csv(http, SECOND, data={"plan": "true"})
    http.post(f"/api/imports/{plan['id']}/apply")
    http.post(f"/api/imports/{other['id']}/discard")
    wait_for_job(http, plan["id"])
    undo = http.post(f"/api/imports/{plan['id']}/undo").json()
    wait_for_job(http, undo["id"])

    entries = http.get("/api/audit", params={"action": "import."}).json()["items"]

    actions = [(entry["action"], entry["target"]) for entry in entries]
    assert ("import.applied", f"import #{plan['id']}") in actions
    assert ("import.discarded", f"import #{other['id']}") in actions
    assert ("import.undone", f"import #{plan['id']}") in actions
