"""PostgreSQL restarted while an import reads, and again while one applies: each job is
queued again once the database answers and runs to its end, never left running and never
half-applied; the web server and the worker reconnect by themselves, and `/readyz` says 503
while the database is down."""

import psycopg
import pytest

from tests.conftest import http_client
from tests.helpers import upload_csv, wait_for_job
from tests.imports.conftest import csv_bytes, generate

from .conftest import held_catalog, held_rejections, wait_for_status, wait_until_blocking

pytestmark = pytest.mark.slow


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
        assert len(set(held_file.expected) & set(catalog(cluster))) in (0, len(held_file.expected))
        first = wait_for_job(http, reading["id"], timeout=120)

        with held_catalog(cluster.url) as holder:
            applying = upload_csv(http, applied).json()
            wait_until_blocking(cluster.url, holder)  # in its merge, waiting for the catalog
            assert http.get(f"/api/imports/{applying['id']}").json()["phase"] == "applying"
            restart(cluster, app.url)
        assert len({"apply-1", "apply-2"} & set(catalog(cluster))) in (0, 2)  # all or nothing
        second = wait_for_job(http, applying["id"], timeout=120)

        # The web server and the worker use the database again by themselves.
        assert http.post("/api/products", json={"sku": "AFTER-1", "name": "After"}).is_success
    products = catalog(cluster)

    # Each was queued again once the database answered, and ran to its end: all of it applied.
    assert (first["status"], second["status"]) == ("completed_with_errors", "completed")
    assert {key: products[key] for key in held_file.expected} == {
        key: value[1] for key, value in held_file.expected.items()
    }
    assert (products["apply-1"], products["apply-2"]) == ("Applied", "Applied too")
    assert "after-1" in products
