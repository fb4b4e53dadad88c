"""LOG_FORMAT=json: the real server and worker write one JSON object per line, with the ids."""

import json
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import text

from tests.conftest import BIN, Process, free_port, paused, wait_until_up
from tests.helpers import import_csv

FIELDS = {"time", "level", "logger", "message", "request_id", "job_id"}
# Celery's signal handler writes this straight to the terminal, past every logging setting.
CELERY_SHUTDOWN_NOTICE = re.compile(r"\n+worker: (Warm|Cold) shutdown \(MainProcess\)\n")


# Ends the sessions that wait for a lock the held transaction (`:pid`) holds.
CANCEL_BLOCKED = (
    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
)


def json_lines(output: str) -> list[dict]:
    """Every line of a process's output as a JSON object (Celery's shutdown notice aside)."""
    lines = CELERY_SHUTDOWN_NOTICE.sub("\n", output).splitlines()
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    assert all(isinstance(r, dict) and set(r) >= FIELDS for r in records), records
    return records


def test_server_and_worker_log_json_with_request_and_job_ids(
    start_worker, live_worker, accounts, tmp_path
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"LOG_FORMAT": "json", "WEB_CONCURRENCY": "2"}
    server = Process(
        [str(BIN / "product-importer"), "serve", "--port", str(port)], env, tmp_path / "s.log"
    )
    worker = start_worker(LOG_FORMAT="json")
    try:
        wait_until_up(url, server)
        headers = {"Authorization": f"Bearer {accounts['admin'].token}"}
        with paused(live_worker), httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            traced = http.get("/api/products", headers={"X-Request-ID": "trace-42"})
            assert traced.headers["X-Request-ID"] == "trace-42"  # a proxy's id, echoed back
            made = http.get("/healthz", headers={"X-Request-ID": 'no "quotes" here'})
            assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])  # ours instead
            job = import_csv(http, "name,sku\nA,J-1\nB,J-2\n")  # run by the JSON worker
        assert job["status"] == "completed"
    finally:
        worker.kill()
        server.kill()

    served = json_lines(server.output())
    access = [r for r in served if r["logger"] == "gunicorn.access"]
    assert any(r["request_id"] == "trace-42" and "/api/products" in r["message"] for r in access)
    assert any(r["request_id"] == made.headers["X-Request-ID"] for r in access)
    assert any("Listening at" in r["message"] for r in served)
    worked = json_lines(worker.output())
    assert any(r["job_id"] == job["id"] and "finished" in r["message"] for r in worked)
    assert any(r["message"].endswith(" ready.") for r in worked)


def test_text_logs_stay_readable_and_name_the_request(app, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [str(BIN / "product-importer"), "serve", "--port", str(port)]
    server = Process(args, {"WEB_CONCURRENCY": "1"}, tmp_path / "text.log")  # LOG_FORMAT unset
    try:
        wait_until_up(url, server)
        assert httpx.get(f"{url}/healthz", headers={"X-Request-ID": "text-7"}).status_code == 200
        server.wait_for_output("request_id=text-7")  # the access line, written after the answer
    finally:
        server.kill()
    [line] = [line for line in server.output().splitlines() if "request_id=text-7" in line]
    assert " INFO gunicorn.access: " in line and '"GET /healthz HTTP/1.1" 200' in line
    assert line.endswith(" request_id=text-7")
    assert not any(line.startswith("{") for line in server.output().splitlines())


def test_a_database_error_while_a_webhook_is_made_logs_no_secret(
    live_server, http, holding, tmp_path_factory
):
    # The traceback logged with the error quoted the statement's values: the webhook's secret.
    made = "LOCK TABLE webhook_endpoints IN EXCLUSIVE MODE"
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["product.created"]}
    with holding(made) as held, ThreadPoolExecutor(1) as pool:
        answer = pool.submit(http.post, "/api/webhooks", json=hook)
        held.wait_until_blocking()
        with held.engine.connect() as conn:  # its INSERT cancelled: a 500, with its traceback
            conn.execute(text(CANCEL_BLOCKED), {"pid": held.pid})
        assert answer.result().status_code == 500

    servers = tmp_path_factory.getbasetemp().glob("server*/server.log")  # live_server's among
    logged = "".join(log.read_text() for log in servers)
    assert "canceling statement due to user request" in logged
    assert "whsec_" not in logged and "[SQL parameters hidden" in logged
