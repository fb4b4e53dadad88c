"""`.env.example` copied to `.env`, as its first line says to do, before any value is filled in."""

import os
import shutil

import httpx

from tests.conftest import BIN, ROOT, Process, free_port, wait_until_up


def test_a_copy_of_the_example_settings_serves_in_production_mode(app, tmp_path):
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")  # every setting there, empty
    env = {key: value for key, value in os.environ.items() if key != "WEB_CONCURRENCY"}
    port = free_port()
    args = [str(BIN / "product-importer"), "serve", "--port", str(port)]
    server = Process(args, env, tmp_path / "serve.log", cwd=tmp_path, inherit=False)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server)  # an empty WEB_CONCURRENCY is the default: one per core
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    finally:
        server.kill()

    assert "in production mode" in server.output()
