"""`product-importer import FILE` as an operator reads its summary: what became of each webhook."""

import os
import re
import subprocess

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BIN, ROOT, paused
from tests.webhooks.conftest import create_endpoint
from tests.webhooks.receiver import Answer, Receiver

SUCCEEDED = ("product_importer_webhook_attempts_total", {"outcome": "succeeded"})


def attempts_succeeded(client) -> float:
    """The succeeded webhook attempts /metrics counts."""
    metrics = client.get("/metrics").get_data(as_text=True)
    found = (
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if (sample.name, sample.labels) == SUCCEEDED
    )
    return next(found, 0.0)


def webhooks_row(stdout: str) -> str:
    """The summary table's Webhooks cell."""
    (row,) = [line for line in stdout.splitlines() if "│ Webhooks" in line]
    return row.split("│")[2].strip()


def test_the_import_command_says_each_webhook_once_and_why_one_waits(tmp_path, client, live_worker):
    answering, failing = Receiver(), Receiver(default=Answer(status=503))
    create_endpoint(client, answering.url, events=("import.completed",))
    create_endpoint(client, failing.url, events=("product.created", "import.completed"))
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n")

    with paused(live_worker):  # only the command sends: the failing webhook's event waits
        assert client.post("/api/products", json={"sku": "P-1", "name": "Pear"}).status_code == 201
        before = attempts_succeeded(client)
        done = subprocess.run(
            [str(BIN / "product-importer"), "import", str(path)],
            cwd=ROOT,
            env=os.environ | {"COLUMNS": "300"},  # the summary's cells on one line each
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert done.returncode == 0, done.stdout + done.stderr
    said = webhooks_row(done.stdout)
    assert said.startswith("2 webhooks: "), said  # one delivery each, not the second twice
    assert "delivered (HTTP 200)" in said
    assert re.search(r"waiting for an earlier event to that webhook; a worker or `serve`", said)
    assert "None" not in said
    assert attempts_succeeded(client) == before + 1  # counted in /metrics: pushed as it ended
    answering.close()
    failing.close()
