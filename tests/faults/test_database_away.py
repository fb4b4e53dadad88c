"""Requests while PostgreSQL is down, or cut by its stop: 503 with Retry-After and a message
saying nothing was changed and to try again, never a 500; nothing of them is kept, not even an
upload's empty file; and the command line's import waits for the database to come back."""

import subprocess
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.conftest import BIN, http_client
from tests.imports.conftest import csv_bytes

from .conftest import wait_for_status, wait_until_blocking

pytestmark = pytest.mark.slow

TUS = {"Tus-Resumable": "1.0.0"}


def unavailable(response) -> str:
    """The message of a 503 that says the database is away; fails on any other answer."""
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    error = response.json()["error"]
    assert error["code"] == "database_unavailable"
    return error["message"]


def files_in(folder) -> list:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def test_requests_while_postgresql_is_down_answer_503_and_change_nothing(
    cluster, redis_server, deploy, accounts, tmp_path
):
    app = deploy(cluster.url, redis_server.url)
    with http_client(app.url, accounts["admin"].token) as http:
        assert http.get("/api/products").status_code == 200  # the pool holds connections
        cluster.stop()
        wait_for_status(app.url, "/readyz", 503)

        message = unavailable(http.get("/api/products"))
        assert "Nothing was changed" in message and "try again" in message
        unavailable(http.post("/api/products", json={"sku": "DOWN-1", "name": "Down"}))
        unavailable(http.post("/api/uploads", headers={**TUS, "Upload-Length": "10"}))
        page = http.get("/products", headers={"Accept": "text/html"})
        assert page.status_code == 503 and "try again" in page.text
        assert "text/html" in page.headers["Content-Type"]

        cluster.start()
        wait_for_status(app.url, "/readyz", 200)
        # Nothing was kept: the same product is created now, once.
        assert http.post("/api/products", json={"sku": "DOWN-1", "name": "Down"}).status_code == 201
    assert files_in(tmp_path / "uploads") == []
    # one line each in the web server's log, not a traceback per request through the outage
    logged = app.processes[0].output()
    assert "database away, answered 503: connection failed" in logged
    assert "Traceback" not in logged


def test_an_upload_cut_by_a_stop_before_its_commit_leaves_no_file(
    cluster, redis_server, deploy, accounts, tmp_path
):
    app = deploy(cluster.url, redis_server.url)
    with (
        http_client(app.url, accounts["editor"].token) as http,
        psycopg.connect(cluster.url) as holder,
        ThreadPoolExecutor(1) as pool,
    ):
        holder.execute("LOCK TABLE uploads IN ACCESS EXCLUSIVE MODE")
        creating = pool.submit(http.post, "/api/uploads", headers={**TUS, "Upload-Length": "10"})
        wait_until_blocking(cluster.url, holder.info.backend_pid)  # its file made, row not yet
        cluster.stop()  # ends every session: the creation's INSERT fails
        unavailable(creating.result())
        holder.close()  # its session ended with the others
    assert files_in(tmp_path / "uploads") == []
    # its reason is the driver's first line, which depends on when the stop cut the session
    assert "database away, answered 503: " in app.processes[0].output()


def test_a_remote_import_started_while_postgresql_is_down_waits_for_it(
    cluster, redis_server, deploy, accounts, tmp_path
):
    app = deploy(cluster.url, redis_server.url)
    web = app.processes[0]
    path = tmp_path / "catalog.csv"
    path.write_bytes(csv_bytes([("Apple", "A-1", "Red"), ("Pear", "P-1", "Green")]))
    cluster.stop()
    wait_for_status(app.url, "/readyz", 503)
    args = [str(BIN / "product-importer"), "import", str(path), "--url", app.url]
    command = subprocess.Popen(
        [*args, "--token", accounts["editor"].token], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        web.wait_for_output('"POST /api/uploads HTTP/1.1" 503')  # asked, and told to wait
        cluster.start()
        stdout, stderr = command.communicate(timeout=300)
    finally:
        command.kill()
    assert command.returncode == 0, stdout.decode() + stderr.decode()
    with psycopg.connect(cluster.url) as conn:
        names = dict(conn.execute("SELECT sku, name FROM products").fetchall())
    assert names == {"A-1": "Apple", "P-1": "Pear"}
