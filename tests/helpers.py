"""Small helpers shared by tests."""

import time


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
        time.sleep(0.2)


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
