"""PostgreSQL restarted while an import reads, and again while one applies: each job is
retried or failed with a reason, never left running and never half-applied; the web server
and the worker reconnect by themselves, and `/readyz` says 503 while the database is down."""

import psycopg
import pytest

from tests.conftest import http_client
from tests.helpers import upload_csv, wait_for_job
from tests.imports.conftest import csv_bytes, generate

from .conftest import held_catalog, held_rejections, wait_for_status, wait_until_blocking

pytestmark = pytest.mark.slow
ENDED = {"completed", "completed_with_errors", "failed"}


def catalog(cluster) -> dict:
    """lower(sku) -> name of every product."""
    with psycopg.connect(cluster.url) as conn:
        return dict(conn.execute("SELECT lower(sku), name FROM products").fetchall())


def restart(cluster, url: str) -> None:
    """Stop PostgreSQL, see the web server say so, start it again, see it ready again."""
    cluster.stop()
    down = wait_for_status(url, "/readyz", 503)
    assert down.json()["checks"]["database"].startswith("unreachable")
    cluster.start()
    wait_for_status(url, "/readyz", 200)


def test_postgresql_restarted_while_an_import_reads_and_while_another_applies(
    cluster, redis_server, deploy, accounts
):
    app = deploy(cluster.url, redis_server.url)
    held_file = generate(2_000, rejected=5_000)  # stops half-way through its reading when held
    applied = csv_bytes([("Applied", "APPLY-1", ""), ("Applied too", "APPLY-2", "")])
    with http_client(app.url, accounts["admin"].token) as http:
        with held_rejections(cluster.url) as holder:
            reading = upload_csv(http, held_file.data).json()
            wait_until_blocking(cluster.url, holder)
            restart(cluster, app.url)
        first = wait_for_job(http, reading["id"], timeout=120)

        with held_catalog(cluster.url) as holder:
            applying = upload_csv(http, applied).json()
            wait_until_blocking(cluster.url, holder)  # in its merge, waiting for the catalog
            assert http.get(f"/api/imports/{applying['id']}").json()["phase"] == "applying"
            restart(cluster, app.url)
        second = wait_for_job(http, applying["id"], timeout=120)

        # The web server and the worker use the database again by themselves.
        assert http.post("/api/products", json={"sku": "AFTER-1", "name": "After"}).is_success
    products = catalog(cluster)

    for job, rows in ((first, held_file.expected), (second, {"apply-1": 0, "apply-2": 0})):
        assert job["status"] in ENDED
        if job["status"] == "failed":  # with a reason, and nothing of it applied
            assert "Retry the import" in job["error"]
            assert not set(rows) & set(products)
        else:  # retried to its end: all of it applied
            assert set(rows) <= set(products)
    assert "after-1" in products
