"""Settings read from the environment: what a mistyped value says; `.env.example` names
every one the code reads, and none it no longer reads."""

import os
import re
import stat
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from product_importer.config import _secret_key, load_config
from product_importer.tls import CA_VARIABLES
from tests.conftest import BIN, ROOT, free_port

# How the code reads a setting: env("X") or a parser (_number("X", ...), whole_number),
# os.environ.get("X") elsewhere, and the name the metrics module keeps in a constant.
READS = re.compile(
    r"(?:\benv\(|\b(?:_number|_between|_bool|_one_of|_auto_or_bool|whole_number)\("
    r"|environ\.get\(|environ\[|_ENV = )"
    r'\s*"([A-Z][A-Z0-9_]+)"'  # the name may be on the call's next line
)


def assert_refused(command: list[str], env: dict, folder, said: str) -> None:
    """Run `product-importer COMMAND` in `folder`: it stops (exit 1) with `Error: said`, and no
    traceback."""
    done = subprocess.run(
        [str(BIN / "product-importer"), *command],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"Error: {said}" in done.stderr
    assert "Traceback" not in done.stderr


def documented_settings() -> set[str]:
    """The settings `.env.example` names (`NAME=` lines)."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


# The command line's own (the CAs `import --url` trusts): read from the environment, never from
# `.env`, so named in its section's words rather than as `NAME=` lines.
CLIENT_VARIABLES = set(CA_VARIABLES)


def test_the_example_env_file_names_every_setting_the_code_reads_and_no_other():
    read = set()
    for path in (ROOT / "src" / "product_importer").rglob("*.py"):
        for found in READS.findall(path.read_text()):
            read.add(found)
    assert read - CLIENT_VARIABLES == documented_settings()
    client_section = (ROOT / ".env.example").read_text().split("the command line's remote")[1]
    assert all(re.search(rf"\b{name}\b", client_section) for name in CLIENT_VARIABLES)


SETTING = "IMPORT_SEARCH_INDEX_AFTER_SWITCH"


@pytest.mark.parametrize(
    ("value", "expected"), [("", None), ("auto", None), ("TRUE", True), ("off", False)]
)
def test_the_search_index_setting_is_auto_unless_told(monkeypatch, tmp_path, value, expected):
    monkeypatch.setenv(SETTING, value)

    assert load_config(str(tmp_path))[SETTING] is expected


def test_a_mistyped_search_index_setting_says_what_it_takes(monkeypatch, tmp_path):
    monkeypatch.setenv(SETTING, "maybe")

    with pytest.raises(ValueError, match="must be auto, true or false, not 'maybe'"):
        load_config(str(tmp_path))


@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        ("MAX_UPLOAD_BYTES", "1GB", "MAX_UPLOAD_BYTES must be a whole number, not '1GB'"),
        ("IMPORT_UNDO_DAYS", "7 days", "IMPORT_UNDO_DAYS must be a number, not '7 days'"),
        ("WEBHOOK_ALLOW_PRIVATE", "ture", "WEBHOOK_ALLOW_PRIVATE must be true or false"),
        ("LOG_FORMAT", "jsno", "LOG_FORMAT must be one of text, json, not 'jsno'"),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR"),
        ("PROXY_COUNT", "-1", "PROXY_COUNT must be a whole number of at least 0, not -1"),
        ("MAX_UPLOAD_BYTES", "0", "MAX_UPLOAD_BYTES must be a whole number of at least 1"),
        # each taken, and the workers' upkeep then failed every minute on the dates they made
        ("UPLOAD_RETENTION_HOURS", "inf", "UPLOAD_RETENTION_HOURS must be a number, not 'inf'"),
        ("IMPORT_UNDO_DAYS", "nan", "IMPORT_UNDO_DAYS must be a number, not 'nan'"),
        ("IMPORT_UNDO_DAYS", "-1", "IMPORT_UNDO_DAYS must be a number from 0 to 3,650, not -1"),
        (
            "UPLOAD_RETENTION_HOURS",
            "99999999",
            "UPLOAD_RETENTION_HOURS must be a number from 0 to 87,600, not 99999999",
        ),
        # every running import would look lost and be started again
        (
            "IMPORT_HEARTBEAT_TIMEOUT_SECONDS",
            "0",
            "IMPORT_HEARTBEAT_TIMEOUT_SECONDS must be a number from 5 to 86,400, not 0",
        ),
        # taken for RabbitMQ on a host named localhost:6379, retried a hundred times
        (
            "CELERY_BROKER_URL",
            "localhost:6379",
            "CELERY_BROKER_URL must be redis://host:6379/0 (or rediss://, amqp:// for RabbitMQ), "
            "or empty for the embedded worker, not a value without ://",
        ),
        # past it, gunicorn would refuse the line with its own page before the app could
        ("MAX_URL_BYTES", "9000", "MAX_URL_BYTES must be at most 8000 (gunicorn reads request"),
        # a traceback: "No module named 'MySQLdb'", "Could not parse SQLAlchemy URL"
        (
            "DATABASE_URL",
            "mysql://a:secret@db/x",
            "DATABASE_URL must be postgresql://user@host/database or sqlite:///path, not mysql://...",
        ),
        (
            "DATABASE_URL",
            "db.example.com/x",
            "DATABASE_URL must be postgresql://user@host/database or sqlite:///path, not a value",
        ),
    ],
)
def test_a_command_with_a_mistyped_setting_names_it_and_stops(tmp_path, setting, value, said):
    # A typo used to end in a traceback that did not name the setting (int('1GB')), or to be
    # taken silently as the default (a boolean, the log format).
    env = os.environ | {"INSTANCE_PATH": str(tmp_path / "instance"), setting: value}

    assert_refused(["migrate"], env, tmp_path, said)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        (" https://importer.example.com/ ", "https://importer.example.com"),
        ("http://10.0.0.5:8000/importer/", "http://10.0.0.5:8000/importer"),
    ],
)
def test_the_public_url_is_kept_without_its_final_slash(monkeypatch, tmp_path, value, expected):
    monkeypatch.setenv("PUBLIC_URL", value)

    assert load_config(str(tmp_path))["PUBLIC_URL"] == expected


@pytest.mark.parametrize(
    "value",
    [
        "importer.example.com",  # no scheme: a receiver could not fetch it
        "ftp://importer.example.com",
        "https://",
        "https://ops:pw@importer.example.com",  # a credential sent to every receiver
        "https://importer.example.com:99999",
        "https://importer.example.com/?token=x",
    ],
)
def test_a_public_url_that_is_no_address_says_what_it_takes(monkeypatch, tmp_path, value):
    monkeypatch.setenv("PUBLIC_URL", value)

    with pytest.raises(ValueError, match="^PUBLIC_URL must "):
        load_config(str(tmp_path))


def test_a_broker_url_in_capitals_shares_the_sign_in_limits_through_redis(monkeypatch, tmp_path):
    # The scheme is taken in any case; the limits' storage compared it in lower case alone
    # and fell back to each process's memory without a word.
    monkeypatch.setenv("CELERY_BROKER_URL", " REDIS://127.0.0.1:6379/0 ")

    config = load_config(str(tmp_path))

    assert config["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/0"


def test_a_dotenv_file_of_a_folder_above_is_not_read(tmp_path):
    # Another project's .env higher up (its DATABASE_URL) configured this app without a word.
    (tmp_path / ".env").write_text("LOG_FORMAT=jsno\n")
    (tmp_path / "here").mkdir()  # a folder with no .env of its own
    env = os.environ | {"INSTANCE_PATH": str(tmp_path / "instance")}
    command = [str(BIN / "product-importer"), "migrate"]

    done = subprocess.run(command, env=env, cwd=tmp_path / "here", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert_refused(["migrate"], env, tmp_path, "LOG_FORMAT must be one of text, json")


def test_settings_take_any_case_and_empty_is_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE", "Yes")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("LOG_LEVEL", "warn")  # Python's logging takes it, and so did we
    monkeypatch.setenv("MAX_UPLOAD_BYTES", " ")

    config = load_config(str(tmp_path))

    assert config["WEBHOOK_ALLOW_PRIVATE"] is True
    assert (config["LOG_FORMAT"], config["LOG_LEVEL"]) == ("json", "WARNING")
    assert config["MAX_UPLOAD_BYTES"] == 1024**3


@pytest.mark.parametrize(
    ("command", "setting", "value", "said"),
    [
        (["worker"], "IMPORT_SLOTS", "two", "IMPORT_SLOTS must be a whole number, not 'two'"),
        (["worker"], "IMPORT_SLOTS", "0", "IMPORT_SLOTS must be a whole number of at least 1"),
        (["import", "a.csv"], "IMPORT_SLOTS", "two", "IMPORT_SLOTS must be a whole number"),
        (["serve", "--port", "PORT"], "WEB_CONCURRENCY", "many", "WEB_CONCURRENCY must be a whole"),
    ],
)
@pytest.mark.parametrize("where", ["environment", ".env"])
def test_a_mistyped_process_setting_stops_its_command_with_its_name(
    tmp_path, command, setting, value, said, where
):
    # Both were read with int() (gunicorn reads WEB_CONCURRENCY as it is imported): a
    # traceback naming no setting; IMPORT_SLOTS=0 started a worker that never imported. And
    # IMPORT_SLOTS of `.env` was not seen by `import`, which runs imports too: read as its
    # module was imported, before the command read `.env`.
    env = os.environ | {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": "postgresql://postgres@127.0.0.1/product_importer_never_made",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",
    }
    if where == ".env":
        (tmp_path / ".env").write_text(f"{setting}={value}\n")
        env.pop(setting, None)
    else:
        env[setting] = value
    command = [str(free_port()) if part == "PORT" else part for part in command]
    (tmp_path / "a.csv").write_text("sku,name\nA-1,Apple\n")  # the file `import` is given

    assert_refused(command, env, tmp_path, said)


def test_a_new_instance_folder_and_its_secret_key_are_its_owners_alone(monkeypatch, tmp_path):
    # The embedded default keeps its database (webhook secrets), uploads and secret key there;
    # the folder was made readable by every user of the machine (0755 with the usual umask).
    monkeypatch.delenv("SECRET_KEY", raising=False)
    instance = tmp_path / "instance"

    key = load_config(str(instance))["SECRET_KEY"]

    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    assert stat.S_IMODE((instance / "secret_key").stat().st_mode) == 0o600
    assert len(key) == 64 and load_config(str(instance))["SECRET_KEY"] == key  # kept


def test_processes_starting_at_once_on_a_new_instance_folder_share_one_secret_key(
    monkeypatch, tmp_path
):
    # The key file was created, then written: a process starting in between read it empty, and
    # signed every session with an empty key until it stopped.
    monkeypatch.delenv("SECRET_KEY", raising=False)
    instance = tmp_path / "instance"
    instance.mkdir()
    starting = threading.Barrier(16)

    def start() -> str:
        starting.wait()
        return _secret_key(instance)

    with ThreadPoolExecutor(16) as processes:
        keys = set(processes.map(lambda _: start(), range(16)))

    assert len(keys) == 1 and len(keys.pop()) == 64
    assert [path.name for path in instance.iterdir()] == ["secret_key"]  # nothing left beside


def test_a_secret_key_is_made_where_the_folder_takes_no_hard_links(monkeypatch, tmp_path):
    # A FAT or SMB volume refuses os.link with EPERM: every command stopped with a traceback.
    monkeypatch.delenv("SECRET_KEY", raising=False)
    instance = tmp_path / "instance"
    instance.mkdir()

    def no_hard_links(*_):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)

    key = _secret_key(instance)

    assert len(key) == 64 and _secret_key(instance) == key
    assert stat.S_IMODE((instance / "secret_key").stat().st_mode) == 0o600
    assert [path.name for path in instance.iterdir()] == ["secret_key"]


def test_a_blank_secret_key_is_unset_and_one_is_made(monkeypatch, tmp_path):
    # A key of spaces was taken as the key: anyone could sign sessions with it.
    monkeypatch.setenv("SECRET_KEY", "   ")

    key = load_config(str(tmp_path / "instance"))["SECRET_KEY"]

    assert len(key) == 64 and key == (tmp_path / "instance" / "secret_key").read_text().strip()


def test_an_empty_secret_key_file_is_given_a_key(monkeypatch, tmp_path):
    # Left empty by a process that stopped while it wrote it: every session was signed with ""
    monkeypatch.delenv("SECRET_KEY", raising=False)
    (tmp_path / "secret_key").write_text("")

    key = _secret_key(tmp_path)

    assert len(key) == 64 and (tmp_path / "secret_key").read_text() == key
