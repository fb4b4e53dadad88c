"""`product-importer serve`: several instances share one machine without stepping on each other."""

import os
import socket
import ssl
import subprocess
import sys

import certifi
import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from product_importer import cli
from product_importer.tls import CA_VARIABLES
from tests.accounts.conftest import post_sign_in
from tests.conftest import BIN, PASSWORD, Process, free_port, wait_until_up
from tests.helpers import wait_until


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


# Fires a second stop signal on each line the first stop's handler runs, one line after
# another, as when a terminal's Ctrl-C and gunicorn's master (or honcho and the master) both
# signal a web process at once.
SECOND_STOP_ON_EACH_LINE = """
import os, signal, sys
from product_importer import gunicorn_app
from product_importer.imports import streams

state = {"fire_at": 0, "line": 0, "in_second": False}

def second_stop(sig, frame):
    state["in_second"] = True
    gunicorn_app._stopping_now(None)

def trace(frame, event, arg):
    if event == "line" and not state["in_second"]:
        state["line"] += 1
        if state["line"] == state["fire_at"]:
            os.kill(os.getpid(), signal.SIGUSR1)
    return trace

signal.signal(signal.SIGUSR1, second_stop)
fire_at = 1
while True:
    streams.server_stopping = type(streams.server_stopping)()
    state.update(fire_at=fire_at, line=0, in_second=False)
    sys.settrace(trace)
    gunicorn_app._stopping_now(None)
    sys.settrace(None)
    assert streams.server_stopping.is_set()
    if state["line"] < fire_at:
        break
    fire_at += 1
print("stopped", fire_at)
"""


def test_a_second_stop_signal_during_the_first_does_not_hang_the_process():
    # The stop flag was a threading.Event: a second signal handled while the first handler
    # held the Event's lock waited on it forever, and the process hung until killed (CI saw
    # honcho kill a web process 5 s after its SIGTERM). Seconds, not forever, when it works.
    done = run_or_fail(SECOND_STOP_ON_EACH_LINE, "a second stop signal, during the first")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("stopped ")


def run_or_fail(script: str, what: str) -> subprocess.CompletedProcess:
    """Run a Python script; fail the test, saying `what` hung, if it has not ended in a minute
    (it takes well under a second: a minute is a hang)."""
    try:
        return subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} hung the process")


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o700])
def test_serve_warns_when_others_may_read_the_instance_folder(app, tmp_path, mode):
    # A folder made before the app made it private (0700) kept its mode: the secret key, and
    # in the embedded default the database, readable by every user of the machine, unsaid.
    instance = tmp_path / "instance"
    instance.mkdir()
    instance.chmod(mode)
    port = free_port()
    args = [str(BIN / "product-importer"), "serve", "--port", str(port)]
    env = {"INSTANCE_PATH": str(instance), "WEB_CONCURRENCY": "1", "CELERY_BROKER_URL": ""}
    server = Process(args, env, tmp_path / "serve.log")
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server)
        server.wait_for_output("Serving on")
    finally:
        server.kill()
    # no broker, the tests' PostgreSQL: it said "SQLite" whatever DATABASE_URL named
    assert "in embedded (PostgreSQL + in-process worker) mode" in server.output()
    warned = f"may read the instance folder {instance} (mode {mode:o})" in server.output()
    assert warned == (mode != 0o700)
    who = {0o755: "every user of this machine", 0o750: "the folder's group"}.get(mode)
    assert (f"{who} may read" in server.output()) == warned
    if warned:
        assert f"chmod 700 {instance}" in server.output()


# A web process's quick stop (Ctrl-C, SIGQUIT) handled while the process hands a connection to
# its thread pool, which holds the pool's lock then (ThreadPoolExecutor.submit).
QUICK_STOP_DURING_SUBMIT = """
import signal, types
from concurrent.futures import ThreadPoolExecutor
from product_importer.gunicorn_app import WebWorker

worker = WebWorker.__new__(WebWorker)  # the handler's part alone: no sockets, no app
worker.tpool = ThreadPoolExecutor(1)
worker.cfg = types.SimpleNamespace(worker_int=lambda worker: None)
with worker.tpool._shutdown_lock:
    try:
        worker.handle_quit(signal.SIGQUIT, None)
    except SystemExit as stop:
        print("stopped", stop.code)
"""


def test_a_quick_stop_while_a_connection_is_handed_to_the_threads_does_not_hang():
    # gthread's quick stop shut its thread pool from the signal handler, taking the lock the
    # interrupted hand-over held: the process waited for it until the master's SIGKILL.
    done = run_or_fail(QUICK_STOP_DURING_SUBMIT, "a quick stop during a hand-over to the threads")
    assert done.stdout.strip() == "stopped 0", done.stderr


def test_serve_on_a_port_in_use_says_so_and_what_to_do(app, tmp_path):
    # gunicorn tried for five seconds after "Serving on http://...", then ended on
    # "Can't connect to ('127.0.0.1', 8000)" with no word of what to do.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(BIN / "product-importer"), "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert done.returncode == 1, done.stdout + done.stderr
    # The README starts it with `make run`, whose port is PORT=, not --port (make refuses it).
    assert (
        f"Error: Port {port} of 127.0.0.1 is already in use (another `product-importer serve`?):"
        f" stop what listens there, or give another: --port {port + 1}"
        f" (make run PORT={port + 1})."
    ) in done.stderr
    assert "Serving on" not in done.stdout + done.stderr


@pytest.fixture
def tls_server(app, live_worker, tmp_path):
    """`serve` answering HTTPS itself, with a certificate for localhost from a CA of the
    test's own (trustme); yields its URL, the CA's PEM file, and a TLS context trusting it."""
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost", "127.0.0.1")
    cert, key, ca = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    certificate.private_key_pem.write_to_path(str(key))
    authority.cert_pem.write_to_path(str(ca))
    trusting = ssl.create_default_context(cafile=ca)
    port = free_port()
    args = [str(BIN / "product-importer"), "serve", "--port", str(port)]
    env = {"TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(key), "WEB_CONCURRENCY": "1"}
    server = Process(args, env, tmp_path / "serve.log")
    url = f"https://localhost:{port}"
    try:
        server.wait_for_output(f"Serving on https://127.0.0.1:{port}")
        wait_until_up(url, server, verify=trusting)
        yield url, ca, trusting
    finally:
        server.kill()


def test_serve_answers_https_and_a_remote_import_goes_through_it(
    tls_server, tmp_path, accounts, sql
):
    # A CSV imported from another machine through `import --url https://...`, and a person
    # signing in over it. The command asks for the import with httpx and uploads with
    # requests (tuspy): each read its own variable for the CAs to trust, so a server whose CA
    # SSL_CERT_FILE named took the upload's first request and refused the import's (and with
    # REQUESTS_CA_BUNDLE the other way round). Either variable now serves both.
    url, ca, trusting = tls_server
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\nB-2,Banana\n")
    command = [str(BIN / "product-importer"), "import", str(path), "--url", url]
    command += ["--token", accounts["editor"].token]
    plain = {name: value for name, value in os.environ.items() if name not in CA_VARIABLES}

    def run(**cas: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=plain | cas)

    for variable in CA_VARIABLES:
        trusted = run(**{variable: str(ca)})
        assert trusted.returncode == 0, f"{variable}: {trusted.stdout}{trusted.stderr}"
    refused = run()
    wrong = run(SSL_CERT_FILE=str(tmp_path / "key.pem"))  # holds no certificate
    other = run(REQUESTS_CA_BUNDLE=certifi.where())  # the browsers' CAs, not the test's own

    assert sorted(sql("SELECT sku, name FROM products")) == [("A-1", "Apple"), ("B-2", "Banana")]
    assert sql("SELECT count(*) FROM import_jobs WHERE status = 'completed'")[0][0] == 2
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"could not reach {url}: its TLS certificate was not accepted" in refused.stderr
    assert "set SSL_CERT_FILE to its PEM file" in refused.stderr
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert f"SSL_CERT_FILE is {tmp_path / 'key.pem'}, which holds no CA certificate" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert other.returncode == 1, other.stdout + other.stderr
    said = f"REQUESTS_CA_BUNDLE is {certifi.where()}: does it hold the CA that signed it?"
    assert said in other.stderr
    assert sql("SELECT count(*) FROM uploads")[0][0] == 2  # the refused ones sent nothing
    # as a browser signs in over HTTPS: Flask-WTF refuses a form posted without a Referer of
    # the same origin there (the pages' Referrer-Policy, same-origin, sends it)
    referer = {"Referer": f"{url}/login"}
    with httpx.Client(base_url=url, verify=trusting, timeout=30, headers=referer) as browser:
        response = post_sign_in(browser, accounts["viewer"].email, PASSWORD)
        assert response.status_code == 302, response.text
        (session,) = [
            c for c in response.headers.get_list("set-cookie") if c.startswith("session=")
        ]
        assert "; Secure" in session  # never sent back in clear
        assert browser.get("/api/products").json()["total"] == 2


@pytest.mark.parametrize(
    ("names", "said"),
    [
        (("TLS_CERT_FILE",), "TLS_CERT_FILE is set but TLS_KEY_FILE is not"),
        (("TLS_KEY_FILE",), "TLS_KEY_FILE is set but TLS_CERT_FILE is not"),
        (("TLS_CERT_FILE", "TLS_KEY_FILE"), "could not be loaded"),
    ],
)
def test_serve_with_a_wrong_tls_setting_stops_saying_what_is_wrong(app, tmp_path, names, said):
    # The key given as the certificate and the certificate as the key: neither loads.
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.cert_chain_pems[0].write_to_path(str(key))
    certificate.private_key_pem.write_to_path(str(cert))
    chosen = {name: str(cert if name == "TLS_CERT_FILE" else key) for name in names}

    done = serve_refused(chosen)

    assert said in done.stderr


def test_serve_with_a_key_under_a_passphrase_refuses_it_rather_than_ask(app, tmp_path):
    # OpenSSL asked for the passphrase at the terminal, in `serve` and again in each web
    # process, where nobody can type it.
    certificate = trustme.CA().issue_cert("localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    unlocked = serialization.load_pem_private_key(certificate.private_key_pem.bytes(), None)
    key.write_bytes(
        unlocked.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )

    done = serve_refused({"TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(key)})

    assert "could not be loaded (the key is encrypted)" in done.stderr
    assert "without a passphrase" in done.stderr


def serve_refused(settings: dict) -> subprocess.CompletedProcess:
    """Run `serve` with these settings, its input closed: it stops (exit 1) before serving,
    saying why as a setting's error."""
    done = subprocess.run(
        [str(BIN / "product-importer"), "serve", "--port", str(free_port())],
        capture_output=True, text=True, timeout=120, env=os.environ | settings,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "(from the environment or .env)" in done.stderr, done.stderr
    assert "Serving on" not in done.stdout + done.stderr
    return done


@pytest.mark.parametrize(("host", "link"), [("::", "127.0.0.1"), ("::1", "localhost")])
def test_serve_listens_on_an_ipv6_address_and_answers_the_name_its_links_give(
    app, live_worker, tmp_path, host, link
):
    # gunicorn read "::1:8000" as host "" and port "": serve stopped after "Serving on".
    port = free_port()
    args = [str(BIN / "product-importer"), "serve", "--host", host, "--port", str(port)]
    server = Process(args, {"WEB_CONCURRENCY": "1"}, tmp_path / "serve.log")
    try:
        server.wait_for_output(f"Serving on http://[{host}]:{port}")
        # as a browser opening the link reaches it: by IPv6 (a name may be tried by IPv4 first)
        wait_until(lambda: answers(f"http://[::1]:{port}/healthz", link), "serving on [::1]")
    finally:
        server.kill()


def answers(url: str, host: str) -> bool:
    """Whether a server answers 200 at `url` to a request naming `host`; False if none is up."""
    try:
        return httpx.get(url, headers={"Host": host}).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.parametrize("port", ["70000", "0"])
def test_serve_on_a_port_no_address_has_says_which_ports_there_are(port):
    # gunicorn ended in a traceback on 70000, after "Serving on http://127.0.0.1:70000"; on 0
    # it listened on a port of the system's choosing, the setup link naming port 0.
    done = subprocess.run(
        [str(BIN / "product-importer"), "serve", "--port", port],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 2, done.stdout + done.stderr
    assert f"Invalid value for '--port': {port} is not in the range 1<=x<=65535." in done.stderr


@pytest.mark.parametrize(
    ("host", "shown"),
    [("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1"), ("::1", "localhost"), ("fd00::5", "[fd00::5]")],
)
def test_the_setup_link_names_the_server_as_the_host_check_takes_it(host, shown):
    # The Host check takes no IPv6 address: the loopback's link names localhost.
    assert cli._shown(host) == shown
