"""Small helpers shared by tests."""

import threading
import time
from contextlib import ExitStack

from sqlalchemy import text

# The settings a request or an import may change on its connection, as they are now.
SESSION_SETTINGS = text(
    "SELECT pg_backend_pid(), current_setting('jit'), "
    "pg_size_bytes(current_setting('work_mem')), "
    "pg_size_bytes(current_setting('maintenance_work_mem'))"
)


def upload_csv(
    http_client, content: bytes | str, filename: str = "products.csv", data: dict | None = None
):
    """POST a file to /api/imports (with the form fields `data`); return the response."""
    if isinstance(content, str):
        content = content.encode()
    files = {"file": (filename, content, "text/csv")}
    return http_client.post("/api/imports", files=files, data=data or {})


def wait_for_job(http_client, job_id: int, timeout: float = 60) -> dict:
    """Poll an import job until it has finished; return its JSON."""
    deadline = time.monotonic() + timeout
    while True:
        job = http_client.get(f"/api/imports/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"import {job_id} still {job['status']} after {timeout}s: {job}")
        time.sleep(0.05)  # as often as `wait_until`: most imports of the tests end within 0.2 s


def wait_until(condition, what: str, timeout: float = 60):
    """Wait until `condition()` is truthy; return what it gave."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} within {timeout}s")
        time.sleep(0.05)
    return found


# An audit entry of the test's own, never committed, with the id the next entry will get: the
# next change made through the API (each records one just before its commit) waits on it.
HOLD_NEXT_AUDIT = (
    "INSERT INTO audit_log (id, at, action) "
    "SELECT nextval(pg_get_serial_sequence('audit_log', 'id')) + 1, now(), 'test.held'"
)
BLOCKED = "SELECT cardinality(pg_blocking_pids(:pid)) > 0"


def deleted_as_it_commits(holding, send, *, table: str, delete: str, **params):
    """Send a change (`send()`, a request that writes to `table`) and commit `delete` right
    after the change's commit, before the request reads `table` again; return its response.

    The change is held before its commit (HOLD_NEXT_AUDIT); meanwhile a lock on the whole
    table is asked for, which waits for the change, and anything the request reads there after
    its commit waits for that lock, whose transaction deletes.
    """
    answers, deleter = [], []
    request = threading.Thread(target=lambda: answers.append(send()))
    with holding(HOLD_NEXT_AUDIT) as audit:
        request.start()
        audit.wait_until_blocking()  # its change made, waiting to record it and commit

        def delete_then():
            with audit.engine.begin() as conn:
                deleter.append(conn.execute(text("SELECT pg_backend_pid()")).scalar())
                conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
                conn.execute(text(delete), params)

        deleting = threading.Thread(target=delete_then)
        deleting.start()
        wait_until(lambda: deleter, "the delete started")

        def delete_waits():
            with audit.engine.connect() as conn:
                return conn.execute(text(BLOCKED), {"pid": deleter[0]}).scalar()

        wait_until(delete_waits, "the delete waiting for the change")
        audit.release()
        deleting.join()
        request.join()
    return answers[0]


def import_csv(
    http_client,
    content: bytes | str,
    filename: str = "products.csv",
    timeout: float = 60,
    data: dict | None = None,
) -> dict:
    """Upload a file and wait for its import to finish; return the final job JSON."""
    response = upload_csv(http_client, content, filename, data)
    assert response.status_code == 202, response.text
    return wait_for_job(http_client, response.json()["id"], timeout)


def pooled_settings(engine, pid: int) -> list:
    """SESSION_SETTINGS (but the pid) of the idle pooled connection `pid`, as its next user
    finds them: take idle connections from the pool until it comes."""
    with ExitStack() as taken:
        for _ in range(engine.pool.size()):
            connection = taken.enter_context(engine.connect())
            found, *settings = connection.execute(SESSION_SETTINGS).one()
            if found == pid:
                return settings
    raise AssertionError(f"connection {pid} is not back in the pool")
