"""What the benchmarks share: generated data, their databases, and the app's processes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"  # git-ignored
BIN = Path(sys.executable).parent
PG = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
# Appended to every benchmark database's name, so that runs of several people do not clash.
DB_SUFFIX = os.environ.get("BENCH_DB_SUFFIX", "")
ADMIN_URL = f"{PG}/postgres"


def database_url(name: str) -> str:
    return f"{PG}/{name}{DB_SUFFIX}"


def recreate_database(name: str) -> None:
    """Drop (if there) and create one of the benchmarks' own databases."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}{DB_SUFFIX}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}{DB_SUFFIX}"')


def app_environment(db_name: str, broker: str, instance: str, **settings: str) -> dict:
    """This process's environment plus the app's settings for a benchmark's own database."""
    folder = DATA / instance
    return {
        **os.environ,
        "DATABASE_URL": database_url(db_name),
        "CELERY_BROKER_URL": broker,
        "INSTANCE_PATH": str(folder),
        "UPLOAD_FOLDER": str(folder / "uploads"),
        **settings,
    }


def generated_csv(name: str, rows: int, *, changed: bool = False) -> Path:
    """Generate a data file with bench/generate_csv.py once; later runs reuse it."""
    path = DATA / name
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        print(f"generating {path.name} ({rows:,} rows)...", flush=True)
        # written aside and renamed whole: a run stopped while generating leaves no partial
        # file that the next run would take for the data (and upload as it grows)
        partial = path.with_name(f"{path.name}.partial")
        args = [sys.executable, str(ROOT / "bench" / "generate_csv.py"), str(partial)]
        args += ["--rows", str(rows)] + (["--changed"] if changed else [])
        subprocess.run(args, check=True)
        partial.replace(path)
    return path


def start(args: list[str], env: dict, log_name: str) -> subprocess.Popen:
    """Start `product-importer ARGS` in its own process group, output to bench/data/LOG."""
    DATA.mkdir(parents=True, exist_ok=True)
    log = open(DATA / log_name, "wb")  # noqa: SIM115  (kept open for the process)
    return subprocess.Popen(
        [str(BIN / "product-importer"), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    """Stop a started process and its children (gunicorn's, celery's)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def wait_for_server(url: str, server: subprocess.Popen, log_name: str) -> None:
    """Wait until the server answers /healthz; fail with its log if it does not."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not start:\n{(DATA / log_name).read_text()}")


def role_token(env: dict, role: str, email: str) -> str:
    """A personal access token of an account with `role` on the benchmark's database, made
    with the CLI (the account is made first, unless a kept database has it already)."""
    cli = str(BIN / "product-importer")
    subprocess.run([cli, "users", "create", email, "--role", role], env=env, capture_output=True)
    made = subprocess.run(
        [cli, "tokens", "create", email, "--name", "benchmark"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip()


def admin_token(env: dict) -> str:
    """An admin's personal access token on the benchmark's database."""
    return role_token(env, "admin", "bench@example.com")


def api_client(url: str, env: dict, timeout: float) -> httpx.Client:
    """An HTTP client of the app at `url`, signed in as the benchmark's admin."""
    token = admin_token(env)
    return httpx.Client(base_url=url, timeout=timeout, headers={"Authorization": f"Bearer {token}"})
