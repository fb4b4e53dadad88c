"""Imports through HTTP: a live gunicorn server, a Celery worker process, PostgreSQL.

Each test uploads a file the way a user or an integrator would, waits for the job, and checks
the job as the API shows it and the any_catalog as the database holds it.
"""

import csv
import gzip
import io
import os
import time
import unicodedata

import pytest

from tests.conftest import client_with_token
from tests.helpers import import_csv, upload_csv, wait_for_job

from .conftest import assert_retry_refused, errors_csv


def counts(job: dict) -> tuple:
    """(rows read, rejected, created, updated, unchanged) of a job."""
    return (
        job["rows_processed"],
        job["rows_invalid"],
        job["created"],
        job["updated"],
        job["unchanged"],
    )


# --- a good file ----------------------------------------------------------------------------


def test_an_upload_is_imported_exactly_as_written(any_http, any_catalog):
    data = (
        "name,sku,description\r\n"
        'Apple,A-1,"Red, sweet\r\nand crisp"\r\n'
        "  Banana  ,B-2,  Yellow  \r\n"
        'Cherry,C-3,"He said ""ripe"""\r\n'
        "Café crème,D-4,日本語\r\n"
        "Elder,E-5,\r\n"
    ).encode()
    job = import_csv(any_http, data, filename="fruit.csv")

    assert job["status"] == "completed"
    assert counts(job) == (5, 0, 5, 0, 0)
    assert job["filename"] == "fruit.csv"
    assert (job["percent"], job["phase"], job["error"], job["warnings"]) == (100, None, None, [])
    assert job["bytes_total"] == job["bytes_processed"] == len(data)
    assert job["message"] == "Import complete"
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]
    assert job["finished_at"].endswith("Z")
    assert [row[1:5] for row in any_catalog()] == [
        ("A-1", "Apple", "Red, sweet\r\nand crisp", True),
        ("B-2", "Banana", "Yellow", True),
        ("C-3", "Cherry", 'He said "ripe"', True),
        ("D-4", "Café crème", "日本語", True),
        ("E-5", "Elder", "", True),
    ]


# Accents as a browser types them (NFC: é is U+00E9); files exported on macOS often hold them
# decomposed (NFD: e, then the combining U+0301).
ACCENTED = "sku,name,description\r\nCafé-1,Café crème,Crème brûlée\r\nThé-2,Thé,\r\n"


def test_an_nfd_file_and_an_nfc_file_of_the_same_skus_are_the_same_products(any_http, any_catalog):
    nfd = unicodedata.normalize("NFD", ACCENTED).encode()
    assert nfd != ACCENTED.encode()

    assert counts(import_csv(any_http, nfd, filename="mac.csv")) == (2, 0, 2, 0, 0)
    stored = [("Café-1", "Café crème", "Crème brûlée"), ("Thé-2", "Thé", "")]
    assert [row[1:4] for row in any_catalog()] == stored  # in NFC

    assert counts(import_csv(any_http, ACCENTED.encode())) == (2, 0, 0, 0, 2)
    assert counts(import_csv(any_http, nfd)) == (2, 0, 0, 0, 2)  # compared in NFC too
    renamed = unicodedata.normalize("NFD", "sku,name\nCAFÉ-1,Café noir\n").encode()
    assert counts(import_csv(any_http, renamed)) == (1, 0, 0, 1, 0)
    assert [row[1:3] for row in any_catalog()] == [("CAFÉ-1", "Café noir"), ("Thé-2", "Thé")]


def test_the_response_to_an_upload_is_the_queued_job_and_where_to_find_it(any_http):
    response = upload_csv(any_http, "sku,name\nA-1,Apple\n")

    assert response.status_code == 202
    job = response.json()
    assert response.headers["Location"].endswith(f"/api/imports/{job['id']}")
    assert job["status"] in ("queued", "running", "completed")
    assert any_http.get(response.headers["Location"]).json()["id"] == job["id"]
    assert wait_for_job(any_http, job["id"])["status"] == "completed"


def test_imports_are_listed_newest_first(any_http):
    ids = [import_csv(any_http, f"sku,name\nS-{n},Name {n}\n")["id"] for n in range(3)]

    items = any_http.get("/api/imports").json()["items"]
    assert [item["id"] for item in items] == ids[::-1]
    assert {item["status"] for item in items} == {"completed"}


@pytest.mark.parametrize("filename", ["products.csv.gz", "products.csv"])
def test_a_gzip_upload_is_imported(any_http, any_catalog, filename):
    data = gzip.compress(b"\xef\xbb\xbfsku,name\r\nA-1,Apple\r\nB-2,Banana\r\n")
    job = import_csv(any_http, data, filename=filename)

    assert job["status"] == "completed"
    assert counts(job) == (2, 0, 2, 0, 0)
    assert job["bytes_total"] == len(data)
    assert [row[1:3] for row in any_catalog()] == [("A-1", "Apple"), ("B-2", "Banana")]


def test_a_file_name_is_listed_without_its_control_characters(any_http):
    # A NUL, which PostgreSQL's text cannot hold (a 500), and a terminal's escape, as a form
    # may send them.
    boundary = "name-test"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="\x1b[1mbold\x00.csv"\r\nContent-Type: text/csv\r\n\r\n'
        f"sku,name\r\nA-1,Apple\r\n--{boundary}--\r\n"
    ).encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = any_http.post("/api/imports", content=body, headers=headers)

    assert response.status_code == 202, response.text
    job = wait_for_job(any_http, response.json()["id"])
    assert (job["filename"], job["status"]) == ("[1mbold.csv", "completed")


def test_a_semicolon_file_with_columns_in_any_case_is_imported(any_http, any_catalog):
    job = import_csv(any_http, " SKU ; Name ;DESCRIPTION\nA-1;Apple, red;Sweet, crisp\n")

    assert job["status"] == "completed"
    assert [row[1:4] for row in any_catalog()] == [("A-1", "Apple, red", "Sweet, crisp")]


def test_a_windows_1252_file_is_imported_with_a_warning(any_http, any_catalog):
    job = import_csv(any_http, b"sku,name,description\r\nA-1,Caf\xe9,\x80 5 \x96 cheap\r\n")

    assert job["status"] == "completed"
    assert len(job["warnings"]) == 1 and "Windows-1252" in job["warnings"][0]
    assert [row[1:4] for row in any_catalog()] == [("A-1", "Café", "€ 5 – cheap")]


def test_a_windows_1252_byte_far_into_the_file_restarts_the_reading_cleanly(any_http, any_catalog):
    rows = b"".join(b"S-%d,Name %d,%s\r\n" % (n, n, b"x" * 200) for n in range(20_000))
    data = b"sku,name,description\r\n" + rows + b"S-LAST,Caf\xe9,\r\n"  # past 4 MB
    job = import_csv(any_http, data)

    assert job["status"] == "completed"
    assert counts(job) == (20_001, 0, 20_001, 0, 0)
    assert "Windows-1252" in job["warnings"][0]
    products = any_catalog()
    assert len(products) == 20_001
    assert products[-1][1:3] == ("S-LAST", "Café")


def test_unknown_columns_are_ignored_with_a_warning(any_http, any_catalog):
    job = import_csv(any_http, "sku,Price,name,colour\nA-1,9.99,Apple,red\n")

    assert job["status"] == "completed"
    assert job["warnings"] == ["Unknown columns were ignored: Price, colour."]
    assert [row[1:3] for row in any_catalog()] == [("A-1", "Apple")]


def test_a_header_of_thousands_of_columns_is_named_in_short(any_http):
    # An export with every attribute as a column: the warning and the missing-column error
    # name the first columns and how many more, not a page of names; `header` keeps them all.
    extra = ",".join(f"attribute {n}" for n in range(5_000))
    job = import_csv(any_http, f"sku,name,{extra}\nA-1,Apple{',x' * 5_000}\n")
    assert job["status"] == "completed"
    assert job["warnings"] == [
        "Unknown columns were ignored: "
        + ", ".join(f"attribute {n}" for n in range(20))
        + " and 4,980 more."
    ]

    failed = import_csv(any_http, f"code,title,{extra}\nA-1,Apple{',x' * 5_000}\n")
    assert failed["status"] == "failed"
    assert "The header found was: code, title, attribute 0," in failed["error"]
    assert "attribute 17 and 4,982 more. The first line must name" in failed["error"]
    assert len(failed["header"]) == 5_002


# --- import semantics -----------------------------------------------------------------------


def test_duplicates_in_another_case_within_a_file_keep_the_last_row(any_http, any_catalog):
    data = "sku,name\nabc-1,First\nX-1,Other\nABC-1,Second\nAbc-1,Third\nx-1,Other again\n"
    job = import_csv(any_http, data)

    assert counts(job) == (5, 0, 2, 0, 0)
    assert [row[1:3] for row in any_catalog()] == [("Abc-1", "Third"), ("x-1", "Other again")]


def test_sku_case_is_ignored_beyond_ascii_too(any_http, any_catalog):
    # as PostgreSQL lowers letter by letter: a Σ ending a word is σ (Python's ς), İ is i
    data = "sku,name\nÄPFEL-1,Apfel\näpfel-1,Apfel 2\nÉTÉ-2,Été\nΟΔΟΣ-3,Road\nοδοσ-3,Road 2\n"
    job = import_csv(any_http, data + "İ-4,Dot\ni-4,Dot 2\n")

    assert counts(job) == (7, 0, 4, 0, 0)
    assert sorted(row[1:3] for row in any_catalog()) == [
        ("i-4", "Dot 2"),
        ("ÉTÉ-2", "Été"),
        ("äpfel-1", "Apfel 2"),
        ("οδοσ-3", "Road 2"),
    ]


def test_a_sku_in_another_case_updates_the_product_and_takes_the_new_spelling(
    any_http, any_catalog
):
    import_csv(any_http, "sku,name,description\nabc-1,Apple,Red\nb-2,Banana,Yellow\n")
    before = {row[1].lower(): row for row in any_catalog()}

    job = import_csv(any_http, "sku,name,description\nABC-1,Apple,Red\nB-2,Banana (new),Yellow\n")

    assert counts(job) == (2, 0, 0, 2, 0)  # a spelling-only change counts as updated
    after = {row[1].lower(): row for row in any_catalog()}
    assert after["abc-1"][:5] == (before["abc-1"][0], "ABC-1", "Apple", "Red", True)
    assert after["b-2"][:5] == (before["b-2"][0], "B-2", "Banana (new)", "Yellow", True)
    assert after["abc-1"][5] == before["abc-1"][5]  # created_at kept
    assert after["abc-1"][6] > before["abc-1"][6]  # updated_at moved


def test_products_not_in_the_file_are_untouched(any_http, any_catalog):
    import_csv(any_http, "sku,name\nA-1,Apple\nB-2,Banana\n")
    before = any_catalog()

    import_csv(any_http, "sku,name\nC-3,Cherry\n")

    assert any_catalog()[:2] == before


def test_active_is_set_only_from_a_file_that_has_the_column(any_http, any_catalog):
    job = import_csv(any_http, "sku,name,active\nA-1,Apple,false\nB-2,Banana,\nC-3,Cherry,YES\n")
    assert counts(job) == (3, 0, 3, 0, 0)
    assert [(row[1], row[4]) for row in any_catalog()] == [
        ("A-1", False),
        ("B-2", True),
        ("C-3", True),
    ]

    job = import_csv(any_http, "sku,name\nA-1,Apple 2\nB-2,Banana 2\n")  # no active column
    assert counts(job) == (2, 0, 0, 2, 0)
    assert [(row[2], row[4]) for row in any_catalog()][:2] == [
        ("Apple 2", False),
        ("Banana 2", True),
    ]

    job = import_csv(any_http, "sku,name,active\nA-1,Apple 2,y\nB-2,Banana 2,\nC-3,Cherry,0\n")
    assert counts(job) == (3, 0, 0, 2, 1)  # B-2's empty cell keeps its value: unchanged
    assert [(row[1], row[4]) for row in any_catalog()] == [
        ("A-1", True),
        ("B-2", True),
        ("C-3", False),
    ]


def test_a_file_without_a_description_column_keeps_the_descriptions(any_http, any_catalog):
    import_csv(any_http, "sku,name,description\nA-1,Apple,Red\n")

    job = import_csv(any_http, "sku,name\nA-1,Apple\nB-2,Banana\n")

    assert counts(job) == (2, 0, 1, 0, 1)
    assert [row[1:4] for row in any_catalog()] == [("A-1", "Apple", "Red"), ("B-2", "Banana", "")]

    job = import_csv(any_http, "sku,name,description\nA-1,Apple,\n")  # an empty cell clears it
    assert counts(job) == (1, 0, 0, 1, 0)
    assert any_catalog()[0][1:4] == ("A-1", "Apple", "")


def test_unchanged_rows_are_counted_and_not_rewritten(any_http, any_catalog):
    data = "sku,name,description,active\nA-1,Apple,Red,yes\nB-2,Banana,Yellow,no\nC-3,Cherry,,1\n"
    import_csv(any_http, data)
    before = any_catalog()

    job = import_csv(any_http, data.replace("Yellow", "Green").replace("a-1", "A-1"))

    assert job["status"] == "completed"
    assert counts(job) == (3, 0, 0, 1, 2)
    after = any_catalog()
    assert [after[0], after[2]] == [before[0], before[2]]  # updated_at unchanged too
    assert after[1][3] == "Green" and after[1][6] > before[1][6]

    job = import_csv(any_http, data.replace("Yellow", "Green"))
    assert counts(job) == (3, 0, 0, 0, 3)
    assert any_catalog() == after


def test_created_updated_unchanged_count_distinct_products(any_http):
    import_csv(any_http, "sku,name\nA-1,Apple\nB-2,Banana\n")

    data = "sku,name\nA-1,Apple\nb-2,Banana\nB-2,Banana 2\nC-3,Cherry\nc-3,Cherry\nD-4,\n"
    job = import_csv(any_http, data)

    assert job["status"] == "completed_with_errors"
    assert counts(job) == (6, 1, 1, 1, 1)
    assert job["rows_superseded"] == 2  # b-2 and C-3: a later row of the same SKU won
    assert job["summary"] == (
        "1 created, 1 updated, 1 unchanged, 1 rejected. "
        "2 rows repeated an earlier SKU; the last one was kept."
    )


# --- rejected rows and failed files ---------------------------------------------------------


def test_a_nul_in_an_active_cell_past_the_files_start_rejects_its_row(any_http, any_catalog):
    # The reason quoted the cell, NUL and all, and PostgreSQL's text holds none: the whole
    # import failed. Past the first 8 KiB, which the binary check reads, a NUL reaches the rows.
    rows = "".join(f"A-{n},Apple {n},yes\n" for n in range(1000))
    job = import_csv(any_http, f"sku,name,active\n{rows}Z-1,Zed,y\x00\n")

    assert job["status"] == "completed_with_errors", job
    assert counts(job)[:3] == (1001, 1, 1000)  # rows read, rejected, created
    assert errors_csv(any_http, job["id"])[1] == [
        "1002",
        "Z-1",
        'active is not one of true/false, 1/0, yes/no, y/n (found "y\ufffd")',
    ]


def test_rejected_rows_of_a_mapped_column_named_like_a_formula_import_again_mapped(
    any_http, any_catalog
):
    # The download puts a `'` before "@id" (a spreadsheet would run it), and the import kept
    # it: the same mapping then failed ("Missing required column: sku").
    mapped = {"columns": '{"sku": "@id"}'}
    first = import_csv(any_http, "@id,name\nA-1,Apple\nB-2,\n", data=mapped)
    rejected = any_http.get(f"/api/imports/{first['id']}/rejected.csv").text
    assert rejected.splitlines()[0].endswith(",'@id,name")
    fixed = rejected.replace("B-2,", "B-2,Banana")

    again = import_csv(any_http, fixed, data=mapped)

    assert again["status"] == "completed", again
    assert [row[1:3] for row in any_catalog()] == [("A-1", "Apple"), ("B-2", "Banana")]


def test_invalid_rows_are_skipped_and_listed_in_errors_csv(any_http, any_catalog):
    data = (
        "sku,name,description,active\r\n"
        "A-1,Apple,ok,yes\r\n"  # 2
        ",No SKU,x,\r\n"  # 3
        'B-2,Banana,"two\r\nlines",\r\n'  # 4-5
        "C-3,,x,\r\n"  # 6
        "D-4,Date,x,maybe\r\n"  # 7
        "E-5,Elder,x\r\n"  # 8
        f"{'S' * 256},Long,x,\r\n"  # 9
        "F-6,Fig\x01,x,\r\n"  # 10
        "G-7,Grape,ok,no\r\n"  # 11
        'H-8,Open,"never closed\r\n'  # 12-13
    )
    job = import_csv(any_http, data)

    assert job["status"] == "completed_with_errors"
    assert counts(job) == (10, 7, 3, 0, 0)
    assert job["error"] is None
    assert job["percent"] == 100
    assert [row[1:5] for row in any_catalog()] == [
        ("A-1", "Apple", "ok", True),
        ("B-2", "Banana", "two\r\nlines", True),
        ("G-7", "Grape", "ok", False),
    ]
    assert errors_csv(any_http, job["id"]) == [
        ["line", "sku", "reason"],
        ["3", "", "sku is empty"],
        ["6", "C-3", "name is empty"],
        ["7", "D-4", 'active is not one of true/false, 1/0, yes/no, y/n (found "maybe")'],
        ["8", "E-5", "wrong number of fields (expected 4, found 3)"],
        ["9", "S" * 255, "sku is longer than 255 characters"],
        ["10", "F-6", "sku or name holds a control character"],
        ["12", "", "a quoted field is still open at the end of the file"],
    ]


def test_errors_csv_lists_every_rejected_row_of_a_large_file_in_line_order(any_http, any_catalog):
    rows = "".join(f"S-{n},{'' if n % 5 else 'Name'}\n" for n in range(12_500))
    job = import_csv(any_http, f"sku,name\n{rows}")

    assert job["status"] == "completed_with_errors"
    assert counts(job) == (12_500, 10_000, 2_500, 0, 0)
    report = errors_csv(any_http, job["id"])
    assert len(report) == 10_001
    expected = [[str(n + 2), f"S-{n}", "name is empty"] for n in range(12_500) if n % 5]
    assert report[1:] == expected
    assert len(any_catalog()) == 2_500


def test_errors_csv_of_a_clean_import_has_only_the_header(any_http):
    job = import_csv(any_http, "sku,name\nA-1,Apple\n")

    assert errors_csv(any_http, job["id"]) == [["line", "sku", "reason"]]
    response = any_http.get(f"/api/imports/{job['id']}/errors.csv")
    assert f"import-{job['id']}-errors.csv" in response.headers["content-disposition"]


@pytest.mark.parametrize("download", ["rejected.csv", "errors.csv", "changes.csv"])
def test_a_download_of_an_import_starts_with_a_byte_order_mark_only_when_asked(http, download):
    job = import_csv(http, "sku,name\nÜ-1,Äpfel Ü\nÜ-2,\n")  # Ü-2 is rejected: no name
    url = f"/api/imports/{job['id']}/{download}"

    for_excel = http.get(url, params={"bom": "true"}).content
    plain = http.get(url).content
    refused = http.get(url, params={"bom": "yes"})

    assert for_excel.startswith("\ufeff".encode()) and for_excel[3:] == plain
    assert not plain.startswith("\ufeff".encode()) and "Ü".encode() in plain
    assert refused.status_code == 422
    assert refused.json()["error"]["details"] == {"bom": "true or false."}


def rejected_file(http, job_id: int) -> list[list[str]]:
    """The job's rejected rows as the file had them, parsed."""
    response = http.get(f"/api/imports/{job_id}/rejected.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f"import-{job_id}-rejected.csv" in response.headers["content-disposition"]
    return list(csv.reader(io.StringIO(response.text)))


def test_the_rejected_rows_file_once_fixed_imports_as_it_is(any_http, any_catalog):
    data = (
        "Name;SKU;Colour;Active\r\n"  # another order, another delimiter, an unknown column
        "Apple;A-1;red;yes\r\n"  # 2
        "No SKU;;green;\r\n"  # 3
        '"Banana ""big""; ripe";B-2;;maybe\r\n'  # 4
        ";C-3;blue;no\r\n"  # 5
        "Date;=D-4;black\r\n"  # 6: one cell short, and a cell a spreadsheet would run
    )
    first = import_csv(any_http, data)
    assert counts(first) == (5, 4, 1, 0, 0)
    assert first["header"] is None  # only a job that failed on its header names it

    report = rejected_file(any_http, first["id"])

    assert report == [
        ["line", "reason", "Name", "SKU", "Colour", "Active"],
        ["3", "sku is empty", "No SKU", "", "green", ""],
        [
            "4",
            'active is not one of true/false, 1/0, yes/no, y/n (found "maybe")',
            'Banana "big"; ripe',
            "B-2",
            "",
            "maybe",
        ],
        ["5", "name is empty", "", "C-3", "blue", "no"],
        ["6", "wrong number of fields (expected 4, found 3)", "Date", "'=D-4", "black"],
    ]
    # Fixed as a person would in a spreadsheet: fill the cells the reasons name.
    fixed = [report[0], *report[1:]]
    fixed[1][3], fixed[2][5], fixed[3][2], fixed[4][5:] = "E-5", "no", "Cherry", [""]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(fixed)

    second = import_csv(any_http, buffer.getvalue())

    assert second["status"] == "completed", errors_csv(any_http, second["id"])
    assert counts(second) == (4, 0, 4, 0, 0)
    assert second["warnings"] == ["Unknown columns were ignored: line, reason, Colour."]
    assert sorted(row[1:5] for row in any_catalog()) == [
        ("=D-4", "Date", "", True),
        ("A-1", "Apple", "", True),
        ("B-2", 'Banana "big"; ripe', "", False),
        ("C-3", "Cherry", "", False),
        ("E-5", "No SKU", "", True),
    ]
    assert rejected_file(any_http, second["id"]) == [["line", "reason", *report[0]]]
    assert errors_csv(any_http, first["id"])[0] == ["line", "sku", "reason"]


def test_a_cell_the_rejected_rows_file_escapes_before_its_tab_reads_as_it_did(any_http):
    """The file writes a cell that starts with a tab as '<tab>...: the quote shielded the tab
    from trimming, so the fixed row was rejected again, for a cell nobody had to fix."""
    first = import_csv(any_http, "sku,name,active\n\tA-1,\tApple,\tmaybe\nB-2,\tBanana,\ty\n")
    assert counts(first) == (2, 1, 1, 0, 0)
    report = rejected_file(any_http, first["id"])
    assert report[1] == ["2", report[1][1], "'\tA-1", "'\tApple", "'\tmaybe"]
    report[1][4] = "'\tyes"  # the fix: a word of `active`, its tab and quote kept

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(report)
    second = import_csv(any_http, buffer.getvalue())

    assert second["status"] == "completed", errors_csv(any_http, second["id"])
    products = any_http.get("/api/products", params={"sort": "sku"}).json()["items"]
    assert [(p["sku"], p["name"], p["active"]) for p in products] == [
        ("A-1", "Apple", True),
        ("B-2", "Banana", True),
    ]


def test_a_file_without_one_valid_row_fails_naming_the_most_common_reason(any_http, any_catalog):
    import_csv(any_http, "sku,name\nKEEP-1,Kept\n")
    before = any_catalog()
    data = "sku,name,active\nA-1,Apple,maybe\nB-2,Banana,sure\n,Nameless,yes\nD-4,Date,nope\n"

    job = import_csv(any_http, data)

    assert job["status"] == "failed", job
    assert counts(job) == (4, 4, 0, 0, 0)
    assert job["error"].startswith("No valid rows: all 4 rows were rejected.")
    assert (
        "The most common reason: active is not one of true/false, 1/0, yes/no, y/n (3 rows)"
        in job["error"]
    )
    assert "Download the rejected rows" in job["error"]
    assert job["percent"] < 100
    assert len(errors_csv(any_http, job["id"])) == 5
    assert any_catalog() == before


def test_a_header_only_file_completes_with_nothing_to_do(any_http, any_catalog):
    job = import_csv(any_http, "\ufeffsku,name,description\r\n")

    assert job["status"] == "completed"
    assert counts(job) == (0, 0, 0, 0, 0)
    assert job["percent"] == 100
    assert job["error"] is None
    assert job["message"] == "Nothing to import: the file has no rows"
    assert any_catalog() == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            "name,description\nApple,Red\n",
            "Missing required column: sku. The header found was: name, description.",
        ),
        (
            "Product;Title;Price\nA-1;Apple;1\n",
            "Missing required columns: sku, name. The header found was: Product, Title, Price.",
        ),
    ],
)
def test_a_missing_required_column_fails_at_once_naming_it(any_http, any_catalog, data, expected):
    job = import_csv(any_http, data)

    assert job["status"] == "failed"
    assert job["error"].startswith(expected)
    assert "sku and name" in job["error"]  # what to do
    assert job["header"] == expected.split("was: ")[1].rstrip(".").split(", ")  # no Retry
    # but a retry with a column mapping can import it: not refused
    assert (job["error_code"], job["retry_refusal"]) == (None, None)
    assert job["rows_processed"] == 0
    assert job["percent"] < 100
    assert any_catalog() == []


def _damaged(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 4]) + data[middle + 4 :]


@pytest.mark.parametrize("damage", ["cut-short", "corrupted"])
def test_a_damaged_gzip_file_fails_the_job_saying_so(any_http, any_catalog, damage):
    whole = gzip.compress(b"sku,name\n" + b"".join(b"S-%d,Name\n" % n for n in range(50_000)))
    data = whole[: len(whole) // 2] if damage == "cut-short" else _damaged(whole)

    job = import_csv(any_http, data)

    assert job["status"] == "failed"
    assert job["error"].startswith("The compressed file is damaged or incomplete")
    assert "Compress the CSV again" in job["error"]
    assert any_catalog() == []
    assert_retry_refused(any_http, job, "damaged_gzip", "Compress the CSV again")


def test_a_line_longer_than_any_csv_line_fails_the_job_and_is_not_retried(any_http, any_catalog):
    from product_importer.imports.csv_rows import MAX_LINE_BYTES

    # checked per read of up to 1 MiB: a line a little past the limit may still get through
    long = b"x" * (MAX_LINE_BYTES + 2 * 1024 * 1024)
    data = b"sku,name\nA-1,Apple\nB-2," + long + b"\nC-3,Cherry\n"

    job = import_csv(any_http, data)

    assert job["error"].startswith(f"A line is longer than {MAX_LINE_BYTES:,} bytes"), job
    assert any_catalog() == []
    assert_retry_refused(any_http, job, "line_too_long", "Export the products as CSV")


def test_a_file_of_blank_lines_the_upload_check_let_through_is_not_retried(any_http, any_catalog):
    # The upload's check reads the first 8 KiB: cut in the middle of a UTF-8 no-break space,
    # they are not blank; the import reads the whole file, and it holds no header row.
    from product_importer.imports.csv_rows import SNIFF_BYTES

    data = b" " * (SNIFF_BYTES - 1) + "\u00a0\r\n".encode()

    job = import_csv(any_http, data)

    assert job["error"].startswith("The file holds no header row"), job
    assert job["header"] == []
    assert any_catalog() == []
    assert_retry_refused(any_http, job, "no_header", "Add the line 'sku,name,description'")
    # nothing to map either: no page offers to choose its columns
    for page in (f"/imports/{job['id']}", "/imports"):
        html = any_http.get(page).text
        assert "Choose the columns" not in html and "mapping-section" not in html, page


# --- refused uploads ------------------------------------------------------------------------


def _stored_files(folder) -> set[str]:
    return set(os.listdir(folder)) if os.path.isdir(folder) else set()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b" \r\n\t\n  \n", "empty"),
        (b"\xef\xbb\xbf\r\n", "empty"),
        (gzip.compress(b""), "empty"),
        (gzip.compress(b"\n\n   \n"), "empty"),
        (" \u00a0\r\n\u3000\t".encode(), "empty"),  # as an import trims: no header in it
        (b"\xa0\r\n \xa0", "empty"),  # no-break spaces in Windows-1252
        (b"sku,name\nA-1,App\x00le\n", "binary"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)) * 4, "binary"),
        (gzip.compress(b"sku,name\n\x00\x00\x00"), "binary"),
        (b"\x1f\x8b\x08\x00garbage, not deflate data" * 10, "cannot be decompressed"),
    ],
    ids=[
        "empty",
        "whitespace",
        "bom-only",
        "gzip-of-nothing",
        "gzip-of-whitespace",
        "unicode-spaces",
        "windows-1252-spaces",
        "nul",
        "zip",
        "gzip-of-binary",
        "broken-gzip",
    ],
)
def test_an_empty_or_binary_upload_is_refused_with_422(any_http, served, data, words):
    before = _stored_files(served.uploads)

    response = upload_csv(any_http, data)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert words in error["message"]
    assert any_http.get("/api/imports").json()["items"] == []
    assert _stored_files(served.uploads) == before


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "any_http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}],
    ids=["origin", "sec-fetch-site"],
)
def test_an_upload_sent_by_another_site_is_refused(any_http, headers):
    files = {"file": ("products.csv", b"sku,name\nA-1,Apple\n")}
    response = any_http.post("/api/imports", files=files, headers=headers)

    assert response.status_code == 403
    assert any_http.get("/api/imports").json()["items"] == []


def test_an_upload_keeps_its_file_name_for_people(any_http):
    job = import_csv(any_http, "sku,name\nA-1,Apple\n", filename="Produits d'été 2024.csv")

    assert job["filename"] == "Produits d'été 2024.csv"


def test_an_upload_without_a_file_field_is_refused_with_400(any_http):
    response = any_http.post("/api/imports", files={"upload": ("a.csv", b"sku,name\nA,B\n")})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert "'file'" in response.json()["error"]["message"]
    assert any_http.get("/api/imports").json()["items"] == []


def test_unknown_imports_are_404(any_http):
    for path in ("/api/imports/999", "/api/imports/999/errors.csv", "/api/imports/999/events"):
        response = any_http.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    for action in ("cancel", "retry"):
        assert any_http.post(f"/api/imports/999/{action}").status_code == 404


@pytest.fixture
def small_limit_client(app, test_env, live_worker, accounts):
    """A Flask test client of an app whose upload limit is 1,000 bytes."""
    from product_importer import create_app

    limited = create_app({"TESTING": True, "MAX_UPLOAD_BYTES": 1000, "MAX_CONTENT_LENGTH": 5000})
    yield client_with_token(limited, accounts["admin"].token)
    app.extensions["celery"].set_default()  # create_app made the limited app's Celery current


@pytest.mark.parametrize("size", [1001, 4000, 100_000])
def test_an_upload_over_the_limit_is_refused_with_413(small_limit_client, test_env, size):
    before = _stored_files(test_env["UPLOAD_FOLDER"])
    data = b"sku,name\n" + b"A,B\n" * (size // 4)

    response = small_limit_client.post(
        "/api/imports", data={"file": (io.BytesIO(data[:size]), "big.csv")}
    )

    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "too_large"  # one code, whichever check refused it
    assert "limit" in error["message"]
    assert small_limit_client.get("/api/imports").get_json()["items"] == []
    assert _stored_files(test_env["UPLOAD_FOLDER"]) == before


def test_an_upload_at_the_limit_is_accepted(small_limit_client):
    data = (b"sku,name\n" + b"A,B\n" * 300)[:1000]

    response = small_limit_client.post("/api/imports", data={"file": (io.BytesIO(data), "ok.csv")})

    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()
    assert job["bytes_total"] == 1000
    location = response.headers["Location"]
    deadline = time.monotonic() + 30
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = small_limit_client.get(location).get_json()
    assert job["status"] == "completed"
