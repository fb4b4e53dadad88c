"""Settings from the environment: the embedded default unless a database and broker are named."""

import math
import os
import secrets
import socket
import ssl
import tempfile
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import load_dotenv

MIB = 1024**2
GIB = 1024**3
DAY = 24 * 3600  # seconds
TEN_YEARS = 3650 * DAY  # the longest anything is kept: longer is a mistyped number
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}
# gunicorn's longest request line (method, address, protocol) short of no limit at all.
MAX_REQUEST_LINE = 8190
# The longest address the API reads: a request line that holds it fits in MAX_REQUEST_LINE,
# so gunicorn lets it through and the app, not gunicorn, refuses a longer one.
MOST_URL_BYTES = 8000
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}  # as Python's logging takes them


class SettingError(ValueError):
    """A setting holds a value it does not take: the message names it and what it takes."""


def _bool(name: str, default: bool = False) -> bool:
    """A setting that is true or false (1/0, yes/no, on/off); empty is the default."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    word = value.strip().lower()
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise SettingError(f"{name} must be true or false, not {value!r}")
    return word in TRUE_WORDS


def _number(name: str, default: float, kind: type = float):
    """A setting that is a number (`kind`: int for a whole one); empty is the default."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return kind(default)
    try:
        number = kind(value.strip())
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):  # float() takes "nan" and "inf"
        what = "a whole number" if kind is int else "a number"
        raise SettingError(f"{name} must be {what}, not {value!r}") from None
    return number


def _between(name: str, default: float, least: float, most: float) -> float:
    """A setting that is a number from `least` to `most`; empty is the default. Past them a
    time would be negative, every import stale, or a date past the year 9999."""
    value = _number(name, default)
    if not least <= value <= most:
        given = os.environ[name].strip()
        raise SettingError(
            f"{name} must be a number from {_said(least)} to {_said(most)}, not {given}"
        )
    return value


def _said(number: float) -> str:
    """A bound as a person writes it: 2592000 as 2,592,000, 0.01 as it is."""
    return f"{number:,.0f}" if number == int(number) else f"{number:g}"


def whole_number(name: str, default: int, minimum: int = 1) -> int:
    """A setting that is a whole number of at least `minimum`; empty is the default."""
    value = _number(name, default, int)
    if value < minimum:
        raise SettingError(f"{name} must be a whole number of at least {minimum}, not {value}")
    return value


def _one_of(name: str, default: str, words: tuple[str, ...]) -> str:
    """A setting that is one of `words`, in any case; empty is the default."""
    value = os.environ.get(name)
    word = (value or "").strip().lower() or default.lower()
    if word not in {w.lower() for w in words}:
        raise SettingError(f"{name} must be one of {', '.join(words)}, not {value!r}")
    return word


def _url_bytes() -> int:
    """MAX_URL_BYTES: the longest address (path and query) the API reads, up to MOST_URL_BYTES."""
    value = whole_number("MAX_URL_BYTES", MOST_URL_BYTES, minimum=1024)
    if value > MOST_URL_BYTES:
        raise SettingError(
            f"MAX_URL_BYTES must be at most {MOST_URL_BYTES} (gunicorn reads request lines of "
            f"at most {MAX_REQUEST_LINE} bytes), not {value}"
        )
    return value


def _public_url() -> str:
    """PUBLIC_URL, the address people and receivers reach the app at, without a final slash;
    empty when unset (each import then names the address it was asked at)."""
    value = (os.environ.get("PUBLIC_URL") or "").strip()
    if not value:
        return ""
    try:
        parts = urlsplit(value)
        usable = parts.scheme in ("http", "https") and parts.hostname and parts.port != 0
    except ValueError:  # a port out of range or a bracket unclosed
        usable = False
    if not usable or parts.username is not None:
        raise SettingError(
            f"PUBLIC_URL must be the app's address, as https://importer.example.com, not {value!r}"
        )
    if parts.query or parts.fragment:
        raise SettingError(f"PUBLIC_URL must have no query or fragment, not {value!r}")
    return value.rstrip("/")


def _log_level() -> str:
    """LOG_LEVEL, one of LOG_LEVELS or an alias Python's logging takes (WARN, FATAL)."""
    alias = LOG_LEVEL_ALIASES.get((os.environ.get("LOG_LEVEL") or "").strip().upper())
    return alias or _one_of("LOG_LEVEL", "INFO", LOG_LEVELS).upper()


def _auto_or_bool(name: str) -> bool | None:
    """A setting that is `auto` (None: the code decides case by case), true or false."""
    value = os.environ.get(name)
    word = (value or "auto").strip().lower()
    if word == "auto":
        return None
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise SettingError(f"{name} must be auto, true or false, not {value!r}")
    return word in TRUE_WORDS


def normalize_database_url(url: str) -> str:
    """Make `postgresql://` URLs use psycopg 3 (SQLAlchemy would pick psycopg2); refuse a URL
    of another database, or none, naming what it takes (never the URL: it may hold a password)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if not url.startswith(("postgresql+psycopg://", "sqlite:///")):
        raise SettingError(
            "DATABASE_URL must be postgresql://user@host/database or sqlite:///path, "
            f"not {_scheme_shown(url)}"
        )
    return url


def _scheme_shown(url: str) -> str:
    """A refused URL as an error says it: its scheme alone (the rest may hold a password)."""
    return f"{url.split('://')[0]}://..." if "://" in url else "a value without ://"


BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")


def _broker_url() -> str:
    """CELERY_BROKER_URL, empty for the embedded worker; refuse one Celery would read as
    something else (`localhost:6379` is taken for RabbitMQ on a host named so, retried a
    hundred times), naming what it takes (never the URL: it may hold a password)."""
    url = (os.environ.get("CELERY_BROKER_URL") or "").strip()
    scheme = url.split("://")[0] if "://" in url else None
    if url and (scheme or "").lower() not in BROKER_SCHEMES:
        raise SettingError(
            "CELERY_BROKER_URL must be redis://host:6379/0 (or rediss://, amqp:// for "
            f"RabbitMQ), or empty for the embedded worker, not {_scheme_shown(url)}"
        )
    return f"{scheme.lower()}{url[len(scheme) :]}" if url else url  # REDIS:// is redis:// here


def _secret_key(instance_path: Path) -> str:
    """Return SECRET_KEY, generating and keeping one in the instance folder when unset."""
    if os.environ.get("SECRET_KEY", "").strip():  # blank is unset, as every other setting
        return os.environ["SECRET_KEY"]
    key_file = instance_path / "secret_key"
    key = _read_key(key_file)
    if key is None:
        _write_key(key_file)
        key = _read_key(key_file)
    if key is None:
        raise SettingError(f"{key_file} could not be written: set SECRET_KEY instead")
    return key


def _read_key(key_file: Path) -> str | None:
    """The key the file holds, or None when there is none (no file, or an empty one left by a
    process that stopped while it wrote it)."""
    try:
        return key_file.read_text().strip() or None
    except FileNotFoundError:
        return None


def _write_key(key_file: Path) -> None:
    """Put a new key in place, readable by its owner alone (mkstemp makes it 0600).

    It is written whole beside the file first, then linked into place: a process starting at
    the same moment finds no key or the whole key, and the first one linked wins. Where the
    folder takes no hard links (a FAT or SMB volume), or an empty file stands in the way, it
    is moved into place instead.
    """
    made, written = tempfile.mkstemp(dir=key_file.parent, prefix=".secret_key.")
    try:
        with os.fdopen(made, "w") as file:
            file.write(secrets.token_hex(32))
        try:
            os.link(written, key_file)
        except FileExistsError:
            if _read_key(key_file) is None:
                os.replace(written, key_file)
        except OSError:  # no hard links here
            os.replace(written, key_file)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(written)


def tls_files() -> tuple[str, str] | None:
    """TLS_CERT_FILE and TLS_KEY_FILE, for `serve` to answer HTTPS itself; None when unset.

    Loaded once here, so a wrong file stops the command with what is wrong, before gunicorn's
    web processes would each fail to start on it.
    """
    cert = os.environ.get("TLS_CERT_FILE", "").strip()
    key = os.environ.get("TLS_KEY_FILE", "").strip()
    if not (cert or key):
        return None
    if not (cert and key):
        given, missing = ("TLS_CERT_FILE", "TLS_KEY_FILE")[:: 1 if cert else -1]
        raise SettingError(f"{given} is set but {missing} is not: HTTPS needs both, or neither")
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # a key under a passphrase would have OpenSSL ask for it at the terminal, in `serve`
        # and again in each web process: refused here instead
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except (OSError, ssl.SSLError, PassphraseAsked) as error:
        raise SettingError(
            f"TLS_CERT_FILE {cert} and TLS_KEY_FILE {key} could not be loaded ({error}): each "
            "must be a PEM file readable here, the key the certificate's own, without a "
            "passphrase"
        ) from None
    return cert, key


class PassphraseAsked(Exception):
    """TLS_KEY_FILE is encrypted: `serve` has no passphrase to give."""


def _no_passphrase() -> str:
    raise PassphraseAsked("the key is encrypted")


def load_env_file() -> None:
    """Read `.env` of the folder the command runs in (not the package's) into the environment."""
    load_dotenv(Path.cwd() / ".env")  # not a folder above's: another project's .env


def load_config(instance_path: str) -> dict:
    """Read every setting from the environment; `.env.example` documents each one."""
    instance = Path(instance_path)
    # Made private: in the embedded default it holds the database (webhook secrets included),
    # the uploads and the secret key, which other users of the machine must not read.
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = os.environ.get
    database_url = env("DATABASE_URL") or f"sqlite:///{instance / 'product_importer.db'}"
    broker_url = _broker_url()
    max_upload = whole_number("MAX_UPLOAD_BYTES", GIB)
    return {
        "SECRET_KEY": _secret_key(instance),
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(database_url),
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(database_url),
        "CELERY_BROKER_URL": broker_url,
        # No broker named: run background work in a thread of the web process.
        "EMBEDDED_WORKER": not broker_url,
        "UPLOAD_FOLDER": env("UPLOAD_FOLDER") or str(instance / "uploads"),
        "MAX_UPLOAD_BYTES": max_upload,
        # JSON and form bodies; views marked `large_body` (uploads) take MAX_UPLOAD_BYTES more.
        "MAX_CONTENT_LENGTH": MIB,
        "MAX_URL_BYTES": _url_bytes(),
        "UPLOAD_RETENTION_HOURS": _between("UPLOAD_RETENTION_HOURS", 24, 0, TEN_YEARS / 3600),
        # An import reading a resumable upload as it arrives gives the queue back to others
        # after this long without a new byte, and goes on when the upload does.
        "UPLOAD_STALL_SECONDS": _between("UPLOAD_STALL_SECONDS", 30, 0, DAY),
        "IMPORT_UNDO_DAYS": _between("IMPORT_UNDO_DAYS", 7, 0, TEN_YEARS / DAY),
        # Off only to measure what the change record costs (bench/import_bench.py).
        "IMPORT_CHANGE_RECORD": _bool("IMPORT_CHANGE_RECORD", default=True),
        # When a bulk import builds its trigram indexes: auto (None) after its switch into an
        # empty catalog, before it into one people read (their substring filters keep their
        # indexes: load_bench.py); true always after (completed sooner), false always before.
        "IMPORT_SEARCH_INDEX_AFTER_SWITCH": _auto_or_bool("IMPORT_SEARCH_INDEX_AFTER_SWITCH"),
        # below a few heartbeats (progress.HEARTBEAT_SECONDS, 0.5 s) every running import
        # would look lost and be started again
        "IMPORT_HEARTBEAT_TIMEOUT_SECONDS": _between(
            "IMPORT_HEARTBEAT_TIMEOUT_SECONDS", 30, 5, DAY
        ),
        # `serve` gives each web process 16 threads: half may follow imports, the rest serve.
        "MAX_EVENT_STREAMS": whole_number("MAX_EVENT_STREAMS", 8, minimum=0),
        "EVENT_STREAM_SECONDS": _between("EVENT_STREAM_SECONDS", 300, 1, DAY),
        "WEBHOOK_TIMEOUT_SECONDS": _between("WEBHOOK_TIMEOUT_SECONDS", 5, 0.1, 3600),
        "WEBHOOK_ALLOW_PRIVATE": _bool("WEBHOOK_ALLOW_PRIVATE"),
        "WEBHOOK_RETRY_BASE_SECONDS": _between("WEBHOOK_RETRY_BASE_SECONDS", 5, 0.01, DAY),
        # An event waits at most this long for the earlier events to its endpoint to leave.
        "WEBHOOK_ORDER_WAIT_SECONDS": _between("WEBHOOK_ORDER_WAIT_SECONDS", 6 * 3600, 0, 30 * DAY),
        "LOG_LEVEL": _log_level(),
        "LOG_FORMAT": _one_of("LOG_FORMAT", "text", ("text", "json")),
        # A bearer token that opens GET /metrics only (admins' tokens and sessions open it too).
        "METRICS_TOKEN": env("METRICS_TOKEN") or "",
        # Where webhook receivers fetch an import's change record (`changes_url`).
        "PUBLIC_URL": _public_url(),
        "WTF_CSRF_TIME_LIMIT": None,
        **_access_settings(env, broker_url),
    }


def _access_settings(env, broker_url: str) -> dict:
    """Sign-in sessions, allowed host names, rate-limit storage and quotas."""
    return {
        # Flask refuses (400) a request whose Host header is not one of these.
        "TRUSTED_HOSTS": allowed_hosts(env("ALLOWED_HOSTS"), env("SERVE_HOST")),
        # The one port a Host header may name for an import's `changes_url` (service.asked_at).
        "SERVE_PORT": env("SERVE_PORT") or "",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Served over HTTPS by `serve` itself (TLS_CERT_FILE): the cookie is never sent in clear.
        "SESSION_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", default=_tls_named()),
        "PERMANENT_SESSION_LIFETIME": 14 * 24 * 3600,
        # Failed sign-ins are counted where every web process sees them: Redis in production.
        "RATELIMIT_STORAGE_URI": broker_url if broker_url.startswith("redis") else "memory://",
        "RATELIMIT_KEY_PREFIX": "product-importer-limits",
        "RATELIMIT_SWALLOW_ERRORS": True,  # Redis down: sign-in still works, unlimited
        # A refused try stops at the first limit it is over, whose callback gives back its
        # counts (accounts/tries.py): every limit counted once, given back once.
        "RATELIMIT_FAIL_ON_FIRST_BREACH": True,
        "MAX_QUEUED_IMPORTS": whole_number("MAX_QUEUED_IMPORTS", 3),
        # Imports one worker process reads at once: the rest of its threads send webhooks.
        "IMPORT_SLOTS": whole_number("IMPORT_SLOTS", 2),
        "MIN_FREE_DISK_BYTES": whole_number("MIN_FREE_DISK_BYTES", 512 * MIB, minimum=0),
        # Below 0, ProxyFix would take an address the client itself sent in X-Forwarded-For.
        "PROXY_COUNT": whole_number("PROXY_COUNT", 0, minimum=0),
    }


def _tls_named() -> bool:
    """Whether TLS_CERT_FILE is set: `serve` answers HTTPS (or refuses to start)."""
    return bool(os.environ.get("TLS_CERT_FILE", "").strip())


LOCAL_HOSTS = ["localhost", "127.0.0.1"]  # Werkzeug cannot match IPv6 literals
WILDCARDS = {"0.0.0.0", "::", ""}


def allowed_hosts(configured: str | None, serve_host: str | None) -> list[str]:
    """The Host header names to answer: ALLOWED_HOSTS, else localhost and the bound address.

    Bound to every address (0.0.0.0), the machine's own names are added; anything else (a
    public DNS name) must be listed in ALLOWED_HOSTS.
    """
    named = [name.strip() for name in (configured or "").split(",") if name.strip()]
    if named:  # only commas or blanks name none: the default, never "any" (Flask's empty list)
        return named
    hosts = list(LOCAL_HOSTS)
    if serve_host in WILDCARDS and serve_host is not None:
        hosts += [socket.gethostname(), socket.getfqdn()]
    elif serve_host:
        hosts.append(serve_host)
    return list(dict.fromkeys(hosts))


def _engine_options(database_url: str) -> dict:
    """Pool settings: pre-ping everywhere, TCP keepalives so a lost peer is noticed. A
    statement's values stay out of its errors (a webhook's secret, logged with a traceback)."""
    if database_url.startswith("sqlite"):
        connect = {"timeout": 30, "check_same_thread": False}
        return {"connect_args": connect, "hide_parameters": True}
    keepalives = {
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "connect_timeout": 10,
    }
    return {
        "pool_pre_ping": True,
        "pool_size": 10,
        "max_overflow": 20,
        "connect_args": keepalives,
        "hide_parameters": True,
    }
