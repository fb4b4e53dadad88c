"""`product-importer import FILE` without --url: the command runs its own import and no other
one, Ctrl-C ends it as the README says at every step, and its copy of the file in
UPLOAD_FOLDER never outlives a refusal, a folder that cannot take it, or a Ctrl-C."""

import fcntl
import io
import os
import re
import signal
import socket
import sqlite3
import subprocess

from tests.conftest import BIN, ROOT, Process, paused
from tests.helpers import HOLD_NEXT_AUDIT, wait_until
from tests.webhooks.conftest import create_endpoint
from tests.webhooks.receiver import Answer, Receiver

from .test_embedded_and_cli import SETTINGS, run_import_command

LATER = b"sku,name\nL-1,Later\n"
IMPORT = [str(BIN / "product-importer"), "import"]
WIDE = {"COLUMNS": "300"}  # the summary's cells on one line each


def test_the_import_command_runs_its_own_import_not_one_queued_after_it(
    tmp_path, client, live_worker, held_file, holding_rejections
):
    # It ran the whole queue: an import uploaded while the command's ran was run by the
    # command too, which returned only after it (a Ctrl-C then left that one running).
    path = tmp_path / "held.csv"
    path.write_bytes(held_file.data)

    with paused(live_worker):  # no worker takes either import meanwhile
        with holding_rejections() as reading:  # the command's import stops half-way
            command = Process([*IMPORT, str(path)], WIDE, tmp_path / "import.log")
            reading.wait_until_blocking()
            later = client.post("/api/imports", data={"file": (io.BytesIO(LATER), "later.csv")})
            later = later.get_json()
        command.popen.wait(timeout=120)
        left = client.get(f"/api/imports/{later['id']}").get_json()
    command.kill()

    assert command.popen.returncode == 0, command.output()
    assert re.search(r"│ Outcome\s+│ Completed with errors\s+│", command.output())
    assert left["status"] == "queued"  # for a worker, which takes it once it runs again
    ran = wait_until(lambda: finished(client, later["id"]), "the worker ran the later import")
    assert ran["status"] == "completed"


def finished(client, job_id: int) -> dict | None:
    """The job if it has ended, through the API; else None."""
    job = client.get(f"/api/imports/{job_id}").get_json()
    return job if job["status"] not in ("queued", "running") else None


def embedded_env(tmp_path, test_env) -> dict:
    """The environment of the embedded default (SQLite in `tmp_path/instance`, no broker),
    its database migrated."""
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS | set(test_env)}
    env |= {"INSTANCE_PATH": str(tmp_path / "instance"), **WIDE}
    migrate = [str(BIN / "product-importer"), "migrate"]
    done = subprocess.run(migrate, env=env, cwd=tmp_path, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return env


def sqlite_jobs(database) -> list[tuple]:
    """Each import job of the SQLite database: id, status and the process that ran it."""
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT id, status, worker FROM import_jobs ORDER BY id").fetchall()


def test_two_import_commands_on_sqlite_each_run_their_own_import(tmp_path, test_env):
    # The first to hold the queue ran the other terminal's import too, and returned only after
    # it; the other one, finding the queue held, ran nothing and waited for ever once the
    # queue was free again.
    env = embedded_env(tmp_path, test_env)
    database = tmp_path / "instance" / "product_importer.db"
    commands = []
    for name in ("first.csv", "second.csv"):
        (tmp_path / name).write_text(f"sku,name\n{name},Fruit\n")
    try:
        # the queue held meanwhile, as `serve`'s worker or a third terminal holds it while it
        # runs an import: both imports are queued before either command may run one
        with open(f"{database}.import.lock", "w") as queue_lock:
            fcntl.flock(queue_lock, fcntl.LOCK_EX)
            for number, name in enumerate(("first.csv", "second.csv"), start=1):
                args = [*IMPORT, str(tmp_path / name)]
                log = tmp_path / f"{name}.log"
                commands.append(Process(args, env, log, cwd=tmp_path, inherit=False))
                wait_until(lambda n=number: len(sqlite_jobs(database)) == n, f"import {number}")
        for command in commands:
            command.popen.wait(timeout=120)
    finally:
        for command in commands:
            command.kill()

    for command in commands:
        assert command.popen.returncode == 0, command.output()
    host = socket.gethostname()
    assert sqlite_jobs(database) == [
        (1, "completed", f"{host}:{commands[0].popen.pid}"),
        (2, "completed", f"{host}:{commands[1].popen.pid}"),
    ]


def test_ctrl_c_while_the_imports_webhook_is_sent_ends_with_its_summary(
    tmp_path, client, live_worker, sql
):
    # It printed "Aborted!" (exit 1) and no summary: the wait for what the command still ran
    # after its import (its webhooks, or another terminal's import) let Ctrl-C through.
    receiver = Receiver(default=Answer(held=True))  # answers once the test lets it
    create_endpoint(client, receiver.url, events=("import.completed",))
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    slow_hooks = WIDE | {"WEBHOOK_TIMEOUT_SECONDS": "600"}  # no attempt ends on its own

    with paused(live_worker):  # only the command sends the webhook
        command = Process([*IMPORT, str(path)], slow_hooks, tmp_path / "import.log")
        receiver.wait_for_open(1)
        command.popen.send_signal(signal.SIGINT)
        command.popen.wait(timeout=120)
    command.kill()
    receiver.close()
    # the command's attempt keeps its delivery for 10 minutes: the next test must not wait
    sql("UPDATE webhook_deliveries SET status = 'failed', locked_until = NULL")

    assert command.popen.returncode == 0, command.output()  # completed: Ctrl-C cancelled nothing
    assert re.search(r"│ Outcome\s+│ Completed\s+│", command.output()), command.output()
    # (whether it then says it did not wait for the webhook, or that one is still to be sent,
    # depends on where the interrupt found it: both are the summary, not "Aborted!")
    assert re.search(r"│ Webhooks\s+│ 1 webhook: ", command.output()), command.output()
    assert "Aborted!" not in command.output()
    (job,) = client.get("/api/imports").get_json()["items"]
    assert job["status"] == "completed"


def test_ctrl_c_before_the_import_is_queued_leaves_no_copy_of_the_file(tmp_path, client, holding):
    # The copy in UPLOAD_FOLDER stayed for ever (no job, hence no retention cleanup, knew
    # of it: 516 MB seen), and the command said "Aborted!" (exit 1).
    uploads = tmp_path / "uploads"
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n")

    with holding(HOLD_NEXT_AUDIT) as held:  # the job's transaction waits at its audit entry
        env = WIDE | {"UPLOAD_FOLDER": str(uploads)}
        command = Process([*IMPORT, str(path)], env, tmp_path / "import.log")
        held.wait_until_blocking()
        assert len(list(uploads.iterdir())) == 1  # copied; its job not committed
        command.popen.send_signal(signal.SIGINT)
        command.popen.wait(timeout=120)
    command.kill()

    assert command.popen.returncode == 130, command.output()
    assert command.output().strip().splitlines()[-1] == (
        "Stopped (Ctrl-C) before the import was queued: nothing was imported."
    )
    assert list(uploads.iterdir()) == []
    assert client.get("/api/imports").get_json()["items"] == []


def test_a_file_over_the_limit_is_refused_before_anything_is_copied(tmp_path, catalog):
    # It was copied whole into UPLOAD_FOLDER first, then refused: a file of many gigabytes
    # filled the disk to be told it was too large.
    uploads = tmp_path / "uploads"
    path = tmp_path / "big.csv"
    path.write_text("sku,name\n" + "A-1,Apple\n" * 200)
    env = {"MAX_UPLOAD_BYTES": "1000", "UPLOAD_FOLDER": str(uploads)}

    result = run_import_command(path, env=env)

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "Error: The file is 2,009 bytes; the limit is 1,000 bytes. Split it into smaller files "
        "or compress it with gzip."
    )
    assert not uploads.exists()  # not even its folder was made
    assert catalog() == []


def test_a_pipe_past_the_limit_is_refused_without_reading_it_to_its_end(tmp_path, catalog):
    # A pipe was copied to its end before the limit was looked at: an endless one filled the
    # disk. Here the pipe stays open: the command must not wait for its end.
    uploads = tmp_path / "uploads"
    env = os.environ | {"MAX_UPLOAD_BYTES": "1000", "UPLOAD_FOLDER": str(uploads)}
    command = subprocess.Popen(
        [*IMPORT, "/dev/stdin"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        command.stdin.write("sku,name\n" + "A-1,Apple\n" * 200)
        command.stdin.flush()
        command.wait(timeout=120)
    finally:
        command.kill()
        command.stdin.close()
        stderr = command.stderr.read()
        command.stdout.close()
        command.stderr.close()

    assert command.returncode == 2, stderr
    assert stderr.strip() == (
        "Error: The input is larger than the limit of 1,000 bytes (MAX_UPLOAD_BYTES). Split it "
        "into smaller files or compress it with gzip."
    )
    assert list(uploads.iterdir()) == []
    assert catalog() == []


def test_a_copy_that_would_leave_too_little_disk_free_is_refused_before_it_is_made(
    tmp_path, catalog
):
    # The web upload keeps MIN_FREE_DISK_BYTES free; the command copied the file regardless.
    uploads = tmp_path / "uploads"
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n")
    env = {"MIN_FREE_DISK_BYTES": str(2**62), "UPLOAD_FOLDER": str(uploads)}

    result = run_import_command(path, env=env)

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(f"Error: Too little disk space in UPLOAD_FOLDER ({uploads})")
    assert "Free space there, or set UPLOAD_FOLDER to a folder with more." in result.stderr
    assert list(uploads.iterdir()) == []
    assert catalog() == []


def test_an_upload_folder_that_cannot_be_made_is_said_in_one_line(tmp_path, catalog):
    # NotADirectoryError, a traceback.
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    uploads = tmp_path / "notes.txt" / "uploads"
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\n")

    result = run_import_command(path, env={"UPLOAD_FOLDER": str(uploads)})

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"Error: Could not write {uploads} (Not a directory): the file is copied into "
        "UPLOAD_FOLDER before it is imported. Set UPLOAD_FOLDER to a folder this user can "
        "write to, with free space for the file."
    )
    assert catalog() == []


def test_a_copy_the_disk_stops_taking_is_said_in_one_line_and_removed(tmp_path, catalog):
    # A full disk said "OSError: [Errno 28] No space left on device" in a traceback, the copy
    # left half-written. A limit on the size of the files the command writes (`ulimit -f`)
    # fails its writes past it the same way, on any machine.
    uploads = tmp_path / "uploads"
    path = tmp_path / "big.csv"
    path.write_text("sku,name\n" + "A-1,Apple\n" * 400_000)  # 4 MB
    command = 'ulimit -f 2048 && exec "$@"'  # 1 or 2 MiB, in the shell's blocks

    result = subprocess.run(
        ["sh", "-c", command, "sh", *IMPORT, str(path)],
        cwd=ROOT,
        env=os.environ | {"UPLOAD_FOLDER": str(uploads)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    said = result.stderr.strip()
    assert re.fullmatch(
        rf"Error: Could not write {uploads}/\w+\.csv \(File too large\): the file is copied "
        "into UPLOAD_FOLDER before it is imported. Set UPLOAD_FOLDER to a folder this user can "
        "write to, with free space for the file.",
        said,
    ), said
    assert list(uploads.iterdir()) == []
    assert catalog() == []
