"""The whole import path end to end: upload over HTTP, a Celery worker, PostgreSQL."""

from tests.helpers import import_csv


def test_upload_is_imported_by_the_worker(http, live_worker, db_session):
    csv = "sku,name,description\r\nA-1,Apple,Red\r\nb-2,Banana,\r\na-1,Apple 2,Green\r\n"
    job = import_csv(http, csv)

    assert job["status"] == "completed"
    assert (job["rows_processed"], job["created"], job["updated"], job["unchanged"]) == (3, 2, 0, 0)
    assert job["percent"] == 100
    imports = http.get("/api/imports").json()["items"]
    assert imports[0]["id"] == job["id"]
