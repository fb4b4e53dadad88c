"""A cancel in the embedded default: SQLite has one writer, which the merge holds until it
commits, and the import runs on a thread of the web process that is asked to cancel it.

The app runs here, as `product-importer serve` runs it with nothing configured (SQLite, the
worker's threads in the web process), served over HTTP on a thread: the tests can then hold an
import at a known point of its run (`holding_run`) however fast the machine is.
"""

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from werkzeug.serving import make_server

from tests.conftest import admin_token_for, http_client
from tests.helpers import import_csv, upload_csv, wait_for_job
from tests.modes import make_embedded_app, snapshot

from .conftest import generate, wait_for

NOT_CHANGED = "the catalog was not changed"


@dataclass
class Embedded:
    """The embedded app of this process, its URL, and its database for checking it."""

    app: object
    url: str
    engine: Engine
    token: str


@pytest.fixture(scope="module")
def embedded(app, tmp_path_factory):
    """The app as the embedded default, with its worker's threads, served on a thread here."""
    from product_importer.background import EmbeddedWorker
    from product_importer.extensions import db

    embedded = make_embedded_app(app, tmp_path_factory.mktemp("embedded-cancel"))
    with embedded.app_context():
        engine = db.engine
    worker = EmbeddedWorker(embedded)
    worker.start()
    server = make_server("127.0.0.1", 0, embedded, threaded=True)
    threading.Thread(target=server.serve_forever, name="embedded-http", daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    yield Embedded(embedded, url, engine, admin_token_for(embedded))
    server.shutdown()
    worker.stop.set()  # its maintenance loop; its task threads wait for nothing more


@pytest.fixture
def http(embedded):
    with http_client(embedded.url, embedded.token) as client:
        yield client


@pytest.fixture
def holding_run(monkeypatch):
    """Return a context manager that holds the next import at the start of a step of its
    merge ("updating", ...) or at its first rows read ("reading"), until a cancel reaches it.

    Held in the merge, it holds SQLite's one writer, as a merge of many rows does.
    """
    from product_importer.imports.progress import Progress

    merging, read = Progress.merging, Progress.read

    @contextmanager
    def hold(step: str):
        reached, released = threading.Event(), threading.Event()

        def wait_for_cancel(progress) -> None:
            reached.set()
            while not progress.cancel.wait(0.05) and not released.is_set():
                pass

        def held_merging(progress, name, what=None):
            merging(progress, name, what)
            if name == step:
                wait_for_cancel(progress)

        def held_read(progress, *args):
            read(progress, *args)
            if step == "reading" and progress.rows_processed:
                wait_for_cancel(progress)

        monkeypatch.setattr(Progress, "merging", held_merging)
        monkeypatch.setattr(Progress, "read", held_read)
        try:
            yield reached
        finally:
            released.set()  # a test that failed leaves no import held
            monkeypatch.undo()

    return hold


# Added to the merge's first write of its change record: the statement then goes on until it
# is interrupted (or its test ends), as a merge of millions of rows goes on for minutes.
ENDLESS = """
AND (WITH RECURSIVE spin(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM spin WHERE still_held())
     SELECT max(n) FROM spin) > 0
"""


@pytest.fixture
def endless_statement(monkeypatch):
    """Return a context manager under which the next merge's statement after its "updating"
    step starts runs until it is interrupted; the merge is held between its step and that
    statement until a cancel has interrupted it once. That interrupt lands with no statement
    running: SQLite forgets it.

    It yields an event set once the import runs the endless statement.
    """
    from product_importer import database
    from product_importer.imports import engine
    from product_importer.imports.progress import Progress

    sqlite, stage = type(database.SQLITE), engine.SqliteStage
    interrupt, lock_catalog, merging = sqlite.interrupt, stage.lock_catalog, Progress.merging

    @contextmanager
    def endless():
        interrupted, inside, ended = threading.Event(), threading.Event(), threading.Event()

        def noted_interrupt(seam, conn) -> None:
            # The first lands between two statements (SQLite drops it); the next ones reach
            # SQLite only once the endless statement runs, so none ends it before it began.
            if not interrupted.is_set() or inside.is_set():
                interrupt(seam, conn)
            interrupted.set()

        def still_held() -> int:
            inside.set()
            return 0 if ended.is_set() else 1

        def with_endless(stage) -> None:
            lock_catalog(stage)
            stage.conn.connection.driver_connection.create_function("still_held", 0, still_held)

        def held_merging(progress, name, what=None):
            merging(progress, name, what)
            if name == "updating":  # until the cancel's first interrupt, or the test's end
                while not interrupted.wait(0.05) and not ended.is_set():
                    pass

        monkeypatch.setattr(sqlite, "interrupt", noted_interrupt)
        monkeypatch.setattr(stage, "lock_catalog", with_endless)
        endless_record = engine.SQLITE_RECORD_UPDATED + ENDLESS
        monkeypatch.setattr(engine, "SQLITE_RECORD_UPDATED", endless_record)
        monkeypatch.setattr(Progress, "merging", held_merging)
        try:
            yield inside
        finally:
            ended.set()  # a test that failed leaves no import running
            monkeypatch.undo()

    return endless


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def upload(http, data: bytes) -> dict:
    response = upload_csv(http, data)
    assert response.status_code == 202, response.text
    return response.json()


def test_a_cancel_while_an_embedded_import_merges_stops_it_with_nothing_applied(
    embedded, http, holding_run
):
    seeded = import_csv(http, generate(2_000, seed=3).data)
    assert seeded["status"] == "completed", seeded
    before = snapshot(embedded.engine)
    changed = generate(3_000, seed=4)  # other names for some SKUs, and new SKUs
    # The one who cancels last used their token minutes ago: a request notes that, a write.
    late = http_client(embedded.url, admin_token_for(embedded.app))
    with embedded.engine.begin() as conn:
        conn.execute(text("UPDATE access_tokens SET last_used_at = :at"), {"at": minutes_ago(5)})

    with late, holding_run("updating") as reached:  # the merge holds the writer meanwhile
        job = upload(http, changed.data)
        assert reached.wait(60), "the import never reached its merge"
        assert http.get(f"/api/imports/{job['id']}").json()["phase"] == "applying"

        response = late.post(f"/api/imports/{job['id']}/cancel")

        assert response.status_code == 202, response.text
        assert response.json()["id"] == job["id"]
    cancelled = wait_for_job(http, job["id"])

    assert cancelled["status"] == "cancelled", cancelled
    assert NOT_CHANGED in cancelled["error"]
    assert (cancelled["created"], cancelled["updated"]) == (0, 0)
    assert snapshot(embedded.engine) == before
    assert http.post(f"/api/imports/{job['id']}/cancel").status_code == 409


def test_a_cancel_while_an_embedded_import_reads_stops_it_with_nothing_applied(
    embedded, http, holding_run
):
    """Held at its first rows until the cancel has been answered: it reads no more after."""
    import_csv(http, generate(2_000, seed=3).data)
    before = snapshot(embedded.engine)
    changed = generate(20_000, seed=5)

    with holding_run("reading") as reached:
        job = upload(http, changed.data)
        assert reached.wait(60), "the import never read a row"

        response = http.post(f"/api/imports/{job['id']}/cancel")

        assert response.status_code == 202, response.text
    cancelled = wait_for_job(http, job["id"])

    assert cancelled["status"] == "cancelled", cancelled
    assert NOT_CHANGED in cancelled["error"]
    assert 0 < cancelled["rows_processed"] < changed.rows  # it stopped reading
    assert snapshot(embedded.engine) == before


def test_the_bar_of_an_embedded_import_goes_on_while_its_merge_holds_the_writer(
    embedded, http, holding_run
):
    """The heartbeat cannot write the job's row meanwhile: it would stay where reading left it."""
    from product_importer.imports.progress import READING_SHARE

    import_csv(http, generate(2_000, seed=3).data)

    with holding_run("updating") as reached:
        job = upload(http, generate(3_000, seed=4).data)
        assert reached.wait(60), "the import never reached its merge"

        merging = wait_for(
            http, job["id"], lambda j: j["percent"] > READING_SHARE, "past its reading's share"
        )

        assert (merging["phase"], merging["rows_processed"]) == ("applying", 3_000)
        assert merging["message"] == "Applying 3,000 rows (updating)"
        stream = first_event(http, job["id"])
        assert stream["percent"] >= merging["percent"]  # the stream says it too, never less
        assert http.post(f"/api/imports/{job['id']}/cancel").status_code == 202
    assert wait_for_job(http, job["id"])["status"] == "cancelled"


def first_event(http, job_id: int) -> dict:
    """The data of the first `progress` event of the job's stream."""
    with http.stream("GET", f"/api/imports/{job_id}/events") as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                return json.loads(line.removeprefix("data: "))
    pytest.fail(f"the stream of import {job_id} ended without an event")


def test_a_cancel_stops_an_embedded_merge_inside_a_long_statement_after_one_between_two(
    embedded, http, endless_statement
):
    """An interrupt that lands between two of the merge's statements is lost: the cancel goes
    on interrupting until the merge has stopped, rather than wait for its statement to end
    (its request would fail, SQLite's writer still held past its busy timeout)."""
    import_csv(http, generate(2_000, seed=3).data)
    before = snapshot(embedded.engine)

    with endless_statement() as inside:
        job = upload(http, generate(3_000, seed=4).data)
        merging = lambda j: (j["message"] or "").endswith("(updating)")  # noqa: E731
        wait_for(http, job["id"], merging, "merging")

        response = http.post(f"/api/imports/{job['id']}/cancel")

        assert response.status_code == 202, response.text
        cancelled = wait_for_job(http, job["id"])
        assert inside.is_set()  # it was stopped inside the statement, not before it
    assert cancelled["status"] == "cancelled", cancelled
    assert NOT_CHANGED in cancelled["error"]
    assert snapshot(embedded.engine) == before


def test_a_cancel_while_an_embedded_plan_holds_the_writer_is_answered_by_a_token_seen_long_ago(
    embedded, http, holding_run
):
    """A plan writes its change record without the apply lock: the request must not wait for
    the plan's end to note when its token was last used."""
    import_csv(http, generate(2_000, seed=3).data)
    before = snapshot(embedded.engine)
    late = http_client(embedded.url, admin_token_for(embedded.app))
    with embedded.engine.begin() as conn:
        conn.execute(text("UPDATE access_tokens SET last_used_at = :at"), {"at": minutes_ago(5)})

    with late, holding_run("finishing") as reached:  # its record written, not committed
        job = upload_csv(http, generate(3_000, seed=4).data, data={"plan": "true"}).json()
        assert reached.wait(60), "the plan never wrote its change record"

        response = late.post(f"/api/imports/{job['id']}/cancel")

        assert response.status_code == 202, response.text
    cancelled = wait_for_job(http, job["id"])

    assert cancelled["status"] == "cancelled", cancelled
    assert snapshot(embedded.engine) == before
    with embedded.engine.connect() as conn:
        recorded = "SELECT count(*) FROM import_changes WHERE job_id = :id"
        assert conn.execute(text(recorded), {"id": job["id"]}).scalar() == 0


def test_the_import_and_history_pages_show_the_bar_of_an_embedded_merge(
    embedded, http, holding_run
):
    """Rendered by the server from the job: its row stays where reading left it meanwhile."""
    from product_importer.imports.progress import READING_SHARE

    import_csv(http, generate(2_000, seed=3).data)

    with holding_run("updating") as reached:
        job = upload(http, generate(3_000, seed=4).data)
        assert reached.wait(60), "the import never reached its merge"
        wait_for(http, job["id"], lambda j: j["percent"] > READING_SHARE, "past reading's share")

        page = http.get(f"/imports/{job['id']}").text
        history = http.get("/imports").text
        row = history.split(f'data-job-id="{job["id"]}"')[1].split("</tr>")[0]

        assert "Applying 3,000 rows (updating)" in page
        assert float(page.split('data-percent="')[1].split('"')[0]) > READING_SHARE
        assert shown_percent(row) > READING_SHARE
        assert http.post(f"/api/imports/{job['id']}/cancel").status_code == 202
    assert wait_for_job(http, job["id"])["status"] == "cancelled"


def shown_percent(html: str) -> int:
    """The percent a badge shows ("Running 57%")."""
    return int(html.split("Running ")[1].split("%")[0])
