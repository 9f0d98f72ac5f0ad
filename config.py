"""Configuration classes, read from the environment (and a `.env` file, if present).

`APP_ENV` picks the class: `production` (the default), `development` or `testing`.
Each setting is declared once, below, with its environment variable, its type and its
default. It is read when the app is built (`create_app` asks the class for it), not when
this module is imported: a bad value stops the service with the one-line "refusing to
start" (wsgi.py), like a missing SECRET_KEY. A subclass or a test may set any setting to
a plain value instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from dotenv import load_dotenv

load_dotenv()

MIN_SECRET_KEY_BYTES = 32
MIN_SECRET_KEY_DISTINCT = 10

T = TypeVar("T")


class ConfigError(RuntimeError):
    """A setting is missing or unusable; the message is one line meant for the operator."""


def _raw(name: str) -> str | None:
    """The variable's text, or None when it is unset or blank."""
    raw = os.environ.get(name)
    return None if raw is None or raw.strip() == "" else raw


def parse_int(name: str, default: int, minimum: int = 0) -> int:
    """An integer setting, with a readable error."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def parse_bool(name: str, default: bool) -> bool:
    """A true/false setting."""
    raw = _raw(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


class Setting(Generic[T]):
    """A class attribute that reads its environment variable each time it is asked for
    (once per app, when the config is built)."""

    def __init__(self, read: Callable[[], T]) -> None:
        self.read = read

    def __get__(self, instance: object, owner: type | None = None) -> T:
        return self.read()


def env_int(name: str, default: int | Callable[[], int], minimum: int = 0) -> Setting[int]:
    """An integer setting (the default may be computed when the setting is read)."""

    def read() -> int:
        fallback = default() if callable(default) else default
        return parse_int(name, fallback, minimum)

    return Setting(read)


def env_bool(name: str, default: bool) -> Setting[bool]:
    """A true/false setting."""
    return Setting(lambda: parse_bool(name, default))


def env_str(name: str, default: str | None, transform: Callable[[str], Any] = str) -> Setting[Any]:
    """A text setting, optionally transformed (e.g. upper-cased)."""

    def read() -> Any:
        raw = os.environ.get(name)
        value = default if raw is None else raw
        return None if value is None else transform(value)

    return Setting(read)


def env_list(name: str) -> Setting[list[str]]:
    """A comma-separated list (blank items dropped)."""
    return Setting(
        lambda: [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]
    )


def normalise_database_url(url: str | None) -> str | None:
    """Make `postgres://` and `postgresql://` URLs use the psycopg 3 driver."""
    if not url:
        return None
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def parse_float(name: str, default: float, minimum: float = 0.0) -> float:
    """A number setting (fractions allowed), with a readable error."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum:  # also refuses NaN
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def parse_link(name: str, default: str) -> str:
    """A link setting: an http(s) URL with one `{token}` placeholder."""
    value = _raw(name) or default
    if not value.startswith(("http://", "https://")) or value.count("{token}") != 1:
        raise ConfigError(f"{name} must be an http(s) URL with one {{token}}, got {value!r}")
    return value


def parse_smtp_url(name: str) -> str | None:
    """smtp://, smtp+starttls:// or smtps:// [user:password@]host[:port], or None."""
    value = _raw(name)
    if value is None:
        return None
    scheme, _, rest = value.partition("://")
    if scheme not in ("smtp", "smtp+starttls", "smtps") or not rest.rpartition("@")[2]:
        # The value may hold a password: name only what is wrong.
        raise ConfigError(
            f"{name} must be smtp://, smtp+starttls:// or smtps://[user:password@]host[:port]"
        )
    return value


def parse_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of a few words (lower-cased), with a readable error."""
    value = (_raw(name) or default).strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


DATABASE_POOLERS = ("none", "transaction")


def default_hash_slots() -> int:
    """Hashes in flight per process: cores / worker processes (at least 1)."""
    cores = os.cpu_count() or 1
    return max(1, cores // parse_int("WEB_CONCURRENCY", cores, minimum=1))


CLIENT_ID = re.compile(r"[A-Za-z0-9._-]+")
CLIENT_SECRET = re.compile(r"[\x21-\x2b\x2d-\x7e]{32,}")  # printable ASCII, no comma or space


def parse_clients(name: str) -> dict[str, str]:
    """`id:secret,...` (introspection clients): ids of letters, digits, `.`, `_`, `-`;
    secrets of at least 32 printable ASCII characters without comma or space."""
    raw = _raw(name)
    clients: dict[str, str] = {}
    if raw is None:
        return clients
    for number, entry in enumerate(raw.split(","), start=1):
        client_id, _, secret = entry.strip().partition(":")
        if not CLIENT_ID.fullmatch(client_id) or not CLIENT_SECRET.fullmatch(secret):
            raise ConfigError(
                f"{name} entry {number} must be id:secret (id of letters, digits, '.', '_', "
                "'-'; secret of 32+ printable ASCII characters without comma or space)"
            )
        if client_id in clients:
            raise ConfigError(f"{name} names the client {client_id!r} twice")
        clients[client_id] = secret
    return clients


class Config:
    """Settings shared by every environment."""

    ENV_NAME = "base"
    SECRET_KEY = env_str("SECRET_KEY", None, lambda key: key or None)
    # None means "SQLite in the instance folder"; create_app fills it in.
    SQLALCHEMY_DATABASE_URI = env_str("DATABASE_URL", None, normalise_database_url)
    SQLALCHEMY_ENGINE_OPTIONS = {
        "pool_pre_ping": True,
        # Parameters may include password hashes: keep them out of error messages and logs.
        "hide_parameters": True,
    }
    # Every wait on the database is bounded, so a 503 comes within the contract's 5 s.
    DB_CONNECT_TIMEOUT_SECONDS = env_int("DB_CONNECT_TIMEOUT_SECONDS", 3, minimum=1)
    DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 3000, minimum=1)
    DB_LOCK_TIMEOUT_MS = env_int("DB_LOCK_TIMEOUT_MS", 2000, minimum=1)
    # What stands between the service and Postgres: `none`, or `transaction` for a pooler
    # in transaction pooling (PgBouncer's pool_mode = transaction), whose server
    # connections change hands between transactions: then no server-side prepared
    # statements and no session-level state (app/database.py).
    DATABASE_POOLER = Setting(lambda: parse_choice("DATABASE_POOLER", "none", DATABASE_POOLERS))
    # All the waits of one request on Postgres together (connecting, a connection's
    # check, statements, the commit), bounded by the client: a silent network is never
    # seen by the server's timeouts (app/database.py). The mail sender's rounds too.
    DB_REQUEST_TIMEOUT_MS = env_int("DB_REQUEST_TIMEOUT_MS", 3000, minimum=100)
    SQLITE_BUSY_TIMEOUT_MS = env_int("SQLITE_BUSY_TIMEOUT_MS", 3000, minimum=1)
    # NORMAL, SQLite's advice for WAL mode: no fsync per commit (measured: bench/results/
    # tuning.md); a power cut may lose the last commits, never the database. FULL fsyncs
    # every commit.
    SQLITE_SYNCHRONOUS = env_str("SQLITE_SYNCHRONOUS", "NORMAL", str.upper)
    MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 64 * 1024, minimum=1024)
    ACCESS_TOKEN_TTL_SECONDS = env_int("ACCESS_TOKEN_TTL_SECONDS", 86400, minimum=1)
    # argon2-cffi's defaults (RFC 9106 low-memory profile): t=3, m=64 MiB, p=4.
    ARGON2_TIME_COST = env_int("ARGON2_TIME_COST", 3, minimum=1)
    ARGON2_MEMORY_COST = env_int("ARGON2_MEMORY_COST", 65536, minimum=8)
    ARGON2_PARALLELISM = env_int("ARGON2_PARALLELISM", 4, minimum=1)
    # Hashes (and verifications) in flight per process; more wait their turn. Hashing is
    # CPU-bound: in all, as many as cores (cores / workers per process) came closest to
    # the argon2 limit (bench/results/tuning.md); more only adds memory.
    ARGON2_MAX_CONCURRENT = env_int("ARGON2_MAX_CONCURRENT", default_hash_slots, minimum=1)
    # Abuse limits (Flask-Limiter notation), checked after validation.
    RATELIMIT_ENABLED = env_bool("RATELIMIT_ENABLED", True)
    RATELIMIT_STORAGE_URI = env_str("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_KEY_PREFIX = env_str("RATELIMIT_KEY_PREFIX", "lumyri")
    RATELIMIT_SIGNUP = env_str("RATELIMIT_SIGNUP", "20/minute")
    RATELIMIT_LOGIN = env_str("RATELIMIT_LOGIN", "10/minute")
    RATELIMIT_LOGIN_PER_IP = env_str("RATELIMIT_LOGIN_PER_IP", "60/minute")
    # Idempotency-Key: how long a key is kept, and how long a retry waits for the first.
    IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 86400, minimum=60)
    IDEMPOTENCY_WAIT_SECONDS = env_int("IDEMPOTENCY_WAIT_SECONDS", 10, minimum=0)
    # Origins (comma-separated) whose pages may call the API from a browser: the website.
    CORS_ORIGINS = env_list("CORS_ORIGINS")
    # How many proxies in front may set X-Forwarded-For (0: use the socket's address).
    TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0)
    # /verify and introspection answer from a per-process cache for at most this long:
    # how stale they may be after a revocation (0: no cache).
    TOKEN_CACHE_SECONDS = env_int("TOKEN_CACHE_SECONDS", 5)
    # Clients allowed to introspect tokens (RFC 7662): id -> secret.
    INTROSPECTION_CLIENTS = Setting(lambda: parse_clients("INTROSPECTION_CLIENTS"))
    # The access log line of each successful /verify (the gateway logs the request too).
    LOG_VERIFY_REQUESTS = env_bool("LOG_VERIFY_REQUESTS", True)
    # Mail: SMTP (none: development writes .eml files to instance/mail, production
    # refuses to start), the sender, the links and how long each is good.
    SMTP_URL = Setting(lambda: parse_smtp_url("SMTP_URL"))
    SMTP_TIMEOUT_SECONDS = env_int("SMTP_TIMEOUT_SECONDS", 10, minimum=1)
    MAIL_FROM = env_str("MAIL_FROM", "Lumyri <no-reply@localhost>")
    MAIL_RETRY_MAX_SECONDS = env_int("MAIL_RETRY_MAX_SECONDS", 300, minimum=5)
    MAIL_RETRY_HOURS = Setting(lambda: parse_float("MAIL_RETRY_HOURS", 24.0, minimum=0.0))
    # The sender thread each gunicorn worker runs (tests start theirs themselves).
    MAIL_SENDER_ENABLED = env_bool("MAIL_SENDER_ENABLED", True)
    MAIL_POLL_SECONDS = Setting(lambda: parse_float("MAIL_POLL_SECONDS", 2.0, minimum=0.05))
    VERIFY_EMAIL_URL = Setting(
        lambda: parse_link("VERIFY_EMAIL_URL", "http://localhost:3000/verify-email?token={token}")
    )
    RESET_PASSWORD_URL = Setting(
        lambda: parse_link(
            "RESET_PASSWORD_URL", "http://localhost:3000/reset-password?token={token}"
        )
    )
    CONFIRM_EMAIL_CHANGE_URL = Setting(
        lambda: parse_link(
            "CONFIRM_EMAIL_CHANGE_URL", "http://localhost:3000/confirm-email?token={token}"
        )
    )
    ACCEPT_INVITATION_URL = Setting(
        lambda: parse_link(
            "ACCEPT_INVITATION_URL", "http://localhost:3000/accept-invitation?token={token}"
        )
    )
    EMAIL_VERIFY_TTL_SECONDS = env_int("EMAIL_VERIFY_TTL_SECONDS", 259200, minimum=60)
    PASSWORD_RESET_TTL_SECONDS = env_int("PASSWORD_RESET_TTL_SECONDS", 3600, minimum=60)
    EMAIL_CHANGE_TTL_SECONDS = env_int("EMAIL_CHANGE_TTL_SECONDS", 86400, minimum=60)
    RATELIMIT_PASSWORD_FORGOT = env_str("RATELIMIT_PASSWORD_FORGOT", "10/minute")
    RATELIMIT_MAIL_PER_ADDRESS = env_str("RATELIMIT_MAIL_PER_ADDRESS", "3/hour")
    RATELIMIT_VERIFICATION_MAIL = env_str("RATELIMIT_VERIFICATION_MAIL", "3/hour")
    # Companies and teams: how long an invitation's link is good; invitations per company.
    INVITATION_TTL_SECONDS = env_int("INVITATION_TTL_SECONDS", 604800, minimum=60)
    RATELIMIT_INVITATIONS = env_str("RATELIMIT_INVITATIONS", "100/hour")
    # Sessions and two-factor: live sessions an account keeps (the oldest ends first);
    # two-factor code checks per account.
    MAX_SESSIONS_PER_ACCOUNT = env_int("MAX_SESSIONS_PER_ACCOUNT", 100, minimum=1)
    RATELIMIT_MFA = env_str("RATELIMIT_MFA", "10/minute")
    GENERATE_SECRET_KEY = False
    # Without SMTP_URL, mails are written as .eml files (development) or refused (production).
    MAIL_FILES_ALLOWED = False
    LOG_LEVEL = env_str("LOG_LEVEL", "INFO")


class DevelopmentConfig(Config):
    """Local work: a secret key is generated and kept in the instance folder if none is set."""

    ENV_NAME = "development"
    GENERATE_SECRET_KEY = True
    MAIL_FILES_ALLOWED = True


class TestingConfig(Config):
    """The test suite: cheap argon2 parameters, a fixed secret, no environment database."""

    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "testing-secret-key-that-is-32-bytes-or-more"
    SQLALCHEMY_DATABASE_URI = None
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 8
    ARGON2_PARALLELISM = 1
    # The suite signs up hundreds of accounts from one address; the limit tests turn
    # the limits on themselves.
    RATELIMIT_ENABLED = False
    RATELIMIT_STORAGE_URI = "memory://"
    MAIL_FILES_ALLOWED = True
    MAIL_SENDER_ENABLED = False  # a test that delivers starts a sender itself


class ProductionConfig(Config):
    """Serving real users: refuses to start without a strong SECRET_KEY."""

    ENV_NAME = "production"


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_from_env() -> type[Config]:
    """Return the config class named by APP_ENV (production when unset)."""
    name = os.environ.get("APP_ENV", "production").strip().lower()
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(
            f"APP_ENV must be one of {', '.join(sorted(CONFIGS))}, got {name!r}"
        ) from None
