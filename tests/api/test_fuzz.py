"""The API keeps its OpenAPI promise under schemathesis, a fuzzer made for the job.

`st run` walks every operation of /api/openapi.json against the live server (gunicorn, a real
PostgreSQL and Celery worker) with every check on, the stateful phase included (following the
document's links: create, read, change, delete), from a fixed seed and a bounded number of
examples. Any server error, undocumented status, schema mismatch or refused valid request fails.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import insert

from tests.conftest import BIN

CONFIG = Path(__file__).with_name("schemathesis.toml")
# A deeper hunt than the suite's run: FUZZ_SEED=777 FUZZ_EXAMPLES=250 (about 7 minutes) found
# options the server took against the document, which the fixed seed never tried.
# The command line's --seed and --max-examples take the place of the config file's.
DEEPER = [
    *(["--seed", os.environ["FUZZ_SEED"]] if os.environ.get("FUZZ_SEED") else []),
    *(["--max-examples", os.environ["FUZZ_EXAMPLES"]] if os.environ.get("FUZZ_EXAMPLES") else []),
]
# Operations schemathesis.toml leaves out, each saying why (a tus piece's raw bytes).
LEFT_OUT = 1
# The fuzzer may revoke tokens by id; its own lies far beyond any id it will try.
FUZZER_TOKEN_ID = 9_000_000_000_000_000


@pytest.fixture
def fuzzer_token(app, accounts) -> str:
    """A token of the standard admin that the fuzz run cannot guess the id of."""
    from product_importer.accounts import credentials
    from product_importer.accounts.models import Token
    from product_importer.extensions import db

    secret = credentials.new_token()
    row = {
        "id": FUZZER_TOKEN_ID,
        "user_id": 1,  # the standard admin
        "name": "schemathesis",
        "token_hash": credentials.token_hash(secret),
        "prefix": secret[:12],
        "role": "admin",
    }
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(insert(Token), row)
    return secret


@pytest.mark.timeout(3600)  # a safety net only: on a loaded machine it takes several minutes
def test_schemathesis_finds_no_failure(live_server, live_worker, fuzzer_token, tmp_path):
    run = subprocess.run(
        [
            str(BIN / "st"),
            "--config-file",
            str(CONFIG),
            "run",
            f"{live_server}/api/openapi.json",
            "--checks",
            "all",
            "--workers",
            "1",
            "--header",
            f"Authorization: Bearer {fuzzer_token}",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
            *DEEPER,
        ],
        capture_output=True,
        text=True,
        timeout=3500,
    )

    (tmp_path / "schemathesis.txt").write_text(run.stdout)
    summary = run.stdout[run.stdout.find("=== FAILURES") :] or run.stdout[-3000:]
    assert run.returncode == 0, summary + run.stderr[-2000:]
    # Every operation was tested but those left out, and every phase ran, stateful included.
    selected, total = map(int, re.search(r"Selected: (\d+)/(\d+)", run.stdout).groups())
    assert selected == total - LEFT_OUT == int(re.search(r"Tested: (\d+)", run.stdout).group(1))
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in run.stdout, phase
