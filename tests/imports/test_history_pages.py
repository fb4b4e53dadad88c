"""The import history past its first page: older imports stay within reach."""

import re

from product_importer.imports.models import ImportJob
from product_importer.timeutil import utcnow

MANY = 205  # more than one page of the history holds (200)


def many_imports(db_session, count: int = MANY) -> list[int]:
    """`count` completed imports, file-1.csv the oldest; return their ids, oldest first."""
    now = utcnow()
    jobs = [
        ImportJob(
            filename=f"file-{n}.csv",
            file_path="",
            status="completed",
            warnings=[],
            started_at=now,
            finished_at=now,
        )
        for n in range(1, count + 1)
    ]
    db_session.add_all(jobs)
    db_session.commit()
    return [job.id for job in jobs]


def shown_files(html: str) -> set[str]:
    """The file names the history page lists."""
    return set(re.findall(r'class="job-file"[^>]*>(file-\d+\.csv)<', html))


def test_the_history_page_leads_to_imports_older_than_its_first_page(client, db_session):
    """Import #1 of 205 is listed on page 2, reached by an Older link from page 1."""
    many_imports(db_session)

    first = client.get("/imports").get_data(as_text=True)
    assert "file-205.csv" in shown_files(first)
    assert "file-1.csv" not in shown_files(first)
    older = re.search(r'<a class="btn" href="([^"]+)">Older</a>', first)
    assert older, "page 1 offers no way to the older imports"
    assert "Imports 1–200 of 205" in first

    second = client.get(older.group(1)).get_data(as_text=True)
    assert shown_files(second) == {f"file-{n}.csv" for n in range(1, 6)}
    assert "Imports 201–205 of 205" in second
    assert re.search(r'<a class="btn" href="/imports">Newer</a>', second)
    assert ">Older</a>" not in second


def test_a_history_link_past_its_last_page_shows_the_last_page(client, db_session):
    """An old bookmark (?page=9) or a typed word shows imports, not an empty table."""
    many_imports(db_session)

    assert "file-1.csv" in shown_files(client.get("/imports?page=9").get_data(as_text=True))
    assert "file-205.csv" in shown_files(client.get("/imports?page=last").get_data(as_text=True))


def test_the_api_lists_imports_page_by_page(client, db_session):
    """GET /api/imports?page=2 gives the oldest five of 205, and says how many pages there are."""
    ids = many_imports(db_session)

    first = client.get("/api/imports").get_json()
    assert len(first["items"]) == 200
    assert (first["page"], first["pages"], first["total"]) == (1, 2, MANY)

    second = client.get("/api/imports?page=2").get_json()
    assert [job["id"] for job in second["items"]] == ids[:5][::-1]

    small = client.get("/api/imports?page=3&per_page=2").get_json()
    assert [job["filename"] for job in small["items"]] == ["file-201.csv", "file-200.csv"]
    blank = client.get("/api/imports?page=&per_page=").get_json()  # as a form sends them
    assert (blank["page"], blank["per_page"], len(blank["items"])) == (1, 200, 200)
    assert client.get("/api/imports?page=0").status_code == 422
    assert client.get("/api/imports?per_page=201").status_code == 422
    refused = client.get("/api/imports?per_page=0").get_json()["error"]  # named as itself
    assert (refused["message"], refused["details"]) == (
        "per_page must be 1 or more.",
        {"per_page": "1 or more."},
    )


def test_the_history_says_an_import_was_undone_and_a_cancelled_undo_asks_for_no_file(
    client, db_session
):
    """An undone import read "Completed" with its counts, nothing saying they were taken
    back; a cancelled undo also said its (never uploaded) file was no longer kept."""
    now = utcnow()
    done = dict(file_path="", warnings=[], started_at=now, finished_at=now)
    imported = ImportJob(filename="b.csv", status="completed", created=3, **done)
    db_session.add(imported)
    db_session.flush()
    undo = ImportJob(filename="b.csv", status="completed", kind="undo", undo_of=imported.id, **done)
    cancelled = ImportJob(
        filename="b.csv", status="cancelled", kind="undo", undo_of=imported.id, **done
    )
    db_session.add_all([undo, cancelled])
    db_session.flush()
    imported.undone_by = undo.id
    db_session.commit()

    history = client.get("/imports").get_data(as_text=True)

    assert f'Undone by <a href="/imports/{undo.id}">#{undo.id}</a>' in history
    assert "no longer kept" not in history
    assert "no longer kept" not in client.get(f"/imports/{cancelled.id}").get_data(as_text=True)
