"""Configuration classes, read from the environment (and a `.env` file, if present).

`APP_ENV` picks the class: `production` (the default), `development` or `testing`.
"""

import os

from dotenv import load_dotenv

load_dotenv()

MIN_SECRET_KEY_BYTES = 32
MIN_SECRET_KEY_DISTINCT = 10


def env_int(name, default, minimum=0):
    """Read an integer setting from the environment, with a readable error."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_bool(name, default):
    """Read a true/false setting from the environment."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def normalise_database_url(url):
    """Make `postgres://` and `postgresql://` URLs use the psycopg 3 driver."""
    if not url:
        return None
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class ConfigError(RuntimeError):
    """A setting is missing or unusable; the message is one line meant for the operator."""


class Config:
    """Settings shared by every environment."""

    ENV_NAME = "base"
    SECRET_KEY = os.environ.get("SECRET_KEY") or None
    # None means "SQLite in the instance folder"; create_app fills it in.
    SQLALCHEMY_DATABASE_URI = normalise_database_url(os.environ.get("DATABASE_URL"))
    SQLALCHEMY_ENGINE_OPTIONS = {
        "pool_pre_ping": True,
        # Parameters may include password hashes: keep them out of error messages and logs.
        "hide_parameters": True,
    }
    # Every wait on the database is bounded, so a 503 comes within the contract's 5 s.
    DB_CONNECT_TIMEOUT_SECONDS = env_int("DB_CONNECT_TIMEOUT_SECONDS", 3, minimum=1)
    DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 3000, minimum=1)
    DB_LOCK_TIMEOUT_MS = env_int("DB_LOCK_TIMEOUT_MS", 2000, minimum=1)
    SQLITE_BUSY_TIMEOUT_MS = env_int("SQLITE_BUSY_TIMEOUT_MS", 3000, minimum=1)
    # NORMAL, SQLite's advice for WAL mode: no fsync per commit (measured: bench/results/
    # tuning.md); a power cut may lose the last commits, never the database. FULL fsyncs
    # every commit.
    SQLITE_SYNCHRONOUS = os.environ.get("SQLITE_SYNCHRONOUS", "NORMAL").upper()
    MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 64 * 1024, minimum=1024)
    ACCESS_TOKEN_TTL_SECONDS = env_int("ACCESS_TOKEN_TTL_SECONDS", 86400, minimum=1)
    # argon2-cffi's defaults (RFC 9106 low-memory profile): t=3, m=64 MiB, p=4.
    ARGON2_TIME_COST = env_int("ARGON2_TIME_COST", 3, minimum=1)
    ARGON2_MEMORY_COST = env_int("ARGON2_MEMORY_COST", 65536, minimum=8)
    ARGON2_PARALLELISM = env_int("ARGON2_PARALLELISM", 4, minimum=1)
    # Hashes (and verifications) in flight per process; more wait their turn. Hashing is
    # CPU-bound: in all, as many as cores (cores / workers per process) came closest to
    # the argon2 limit (bench/results/tuning.md); more only adds memory.
    ARGON2_MAX_CONCURRENT = env_int(
        "ARGON2_MAX_CONCURRENT",
        max(1, (os.cpu_count() or 1) // env_int("WEB_CONCURRENCY", os.cpu_count() or 1, minimum=1)),
        minimum=1,
    )
    # Abuse limits (Flask-Limiter notation), checked after validation.
    RATELIMIT_ENABLED = env_bool("RATELIMIT_ENABLED", True)
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "lumyri")
    RATELIMIT_SIGNUP = os.environ.get("RATELIMIT_SIGNUP", "20/minute")
    RATELIMIT_LOGIN = os.environ.get("RATELIMIT_LOGIN", "10/minute")
    RATELIMIT_LOGIN_PER_IP = os.environ.get("RATELIMIT_LOGIN_PER_IP", "60/minute")
    # Idempotency-Key: how long a key is kept, and how long a retry waits for the first.
    IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 86400, minimum=60)
    IDEMPOTENCY_WAIT_SECONDS = env_int("IDEMPOTENCY_WAIT_SECONDS", 10, minimum=0)
    # Origins (comma-separated) whose pages may call the API from a browser: the website.
    CORS_ORIGINS = [o.strip() for o in os.environ.get("CORS_ORIGINS", "").split(",") if o.strip()]
    # How many proxies in front may set X-Forwarded-For (0: use the socket's address).
    TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0)
    GENERATE_SECRET_KEY = False
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")


class DevelopmentConfig(Config):
    """Local work: a secret key is generated and kept in the instance folder if none is set."""

    ENV_NAME = "development"
    GENERATE_SECRET_KEY = True


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


class ProductionConfig(Config):
    """Serving real users: refuses to start without a strong SECRET_KEY."""

    ENV_NAME = "production"


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_from_env():
    """Return the config class named by APP_ENV (production when unset)."""
    name = os.environ.get("APP_ENV", "production").strip().lower()
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(
            f"APP_ENV must be one of {', '.join(sorted(CONFIGS))}, got {name!r}"
        ) from None
