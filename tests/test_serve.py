"""`product-importer serve`: several instances share one machine without stepping on each other."""

import httpx

from tests.conftest import BIN, Process, free_port, wait_until_up


def test_two_servers_on_one_machine_keep_no_control_socket(app, tmp_path):
    # gunicorn's control socket lives at one path per user: a second instance would replace
    # it, and whichever stopped first would delete the other's.
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "XDG_RUNTIME_DIR": "", "WEB_CONCURRENCY": "1", "LOG_LEVEL": "DEBUG"}
    servers = []
    try:
        for n in range(2):
            port = free_port()
            args = [str(BIN / "product-importer"), "serve", "--port", str(port)]
            server = Process(args, env, tmp_path / f"serve-{n}.log")
            servers.append((f"http://127.0.0.1:{port}", server))
            wait_until_up(*servers[-1])
        for _url, server in servers:
            # gunicorn logs "Control socket disabled" or "Control socket listening at PATH"
            server.wait_for_output("Control socket")
            assert "Control socket disabled" in server.output()

        first, second = servers
        first[1].kill()
        assert httpx.get(f"{second[0]}/healthz", timeout=10).status_code == 200
    finally:
        for _url, server in servers:
            server.kill()

    assert list(home.rglob("gunicorn.ctl")) == []
    assert all("Control socket listening" not in server.output() for _url, server in servers)
