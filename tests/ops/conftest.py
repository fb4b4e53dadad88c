"""Operations fixtures: a server of several web processes started as an operator starts it."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BIN, Process, free_port, wait_until_up

METRICS_TOKEN = "metrics-scraper-secret"


@pytest.fixture(scope="module")
def two_process_server(test_env, app, worker, tmp_path_factory):
    """`product-importer serve` with two web processes and a METRICS_TOKEN; yields its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("ops-server") / "server.log"
    env = {"WEB_CONCURRENCY": "2", "METRICS_TOKEN": METRICS_TOKEN}
    server = Process([str(BIN / "product-importer"), "serve", "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, server)
    yield url
    server.kill()


def scrape(url: str, token: str = METRICS_TOKEN) -> dict[tuple, float]:
    """GET /metrics; return every sample as {(name, sorted label pairs): value}."""
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: dict, name: str, **labels) -> float:
    """The value of one sample; 0 when it is not there yet."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
