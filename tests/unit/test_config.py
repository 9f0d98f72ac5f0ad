"""Configuration: the environment's settings, SECRET_KEY rules, database URLs."""

import os
import stat
import subprocess
import sys

import pytest
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from config import ConfigError, DevelopmentConfig, ProductionConfig, normalise_database_url

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STRONG_KEY = "k" * 16 + "0123456789abcdef"


def assert_refused(monkeypatch, start, **settings):
    """create_app() in production with these settings stops with one line starting so."""
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", STRONG_KEY)
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    monkeypatch.setenv("SMTP_URL", "smtp://127.0.0.1:9")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        create_app()
    message = str(refused.value)
    assert message.startswith(start) and "\n" not in message, message
    return message


def run_python(code, **env):
    """Run Python code in a fresh process with only the given settings in its environment."""
    base = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


class Production(ProductionConfig):
    """Production with a database and an SMTP server that are never touched."""

    SQLALCHEMY_DATABASE_URI = "sqlite://"
    SMTP_URL = "smtp://127.0.0.1:1"


def test_production_refuses_to_start_without_secret_key():
    Production.SECRET_KEY = None
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        create_app(Production)


def test_production_refuses_a_short_secret_key():
    Production.SECRET_KEY = "x" * 31
    with pytest.raises(ConfigError, match="too short"):
        create_app(Production)


def test_production_refuses_a_low_entropy_key():
    Production.SECRET_KEY = "a" * 64
    with pytest.raises(ConfigError, match="not random enough"):
        create_app(Production)


def test_production_accepts_a_32_byte_key():
    Production.SECRET_KEY = STRONG_KEY
    assert create_app(Production).config["SECRET_KEY"] == STRONG_KEY


def test_wsgi_refuses_with_one_line_reason():
    result = run_python("import wsgi", APP_ENV="production", DATABASE_URL="sqlite://")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == ["lumyri-accounts: refusing to start: " + lines[0].split(": ", 2)[2]]
    assert "SECRET_KEY is not set" in lines[0]


def test_development_generates_and_keeps_a_key(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))

    class Development(DevelopmentConfig):
        SECRET_KEY = None
        SQLALCHEMY_DATABASE_URI = "sqlite://"

    first = create_app(Development).config["SECRET_KEY"]
    second = create_app(Development).config["SECRET_KEY"]
    assert first == second and len(first) >= 32
    key_file = tmp_path / "secret_key"
    assert key_file.read_text() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "SECRET_KEY is not set" in caplog.text
    assert first not in caplog.text


def test_sqlite_in_the_instance_folder_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    app = create_app({"SQLALCHEMY_DATABASE_URI": None})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'lumyri.db'}"


def test_instance_files_are_private_to_the_user(tmp_path, monkeypatch):
    """The development database, its WAL files and the secret key: owner only (0600)."""
    instance = tmp_path / "instance"
    monkeypatch.setenv("INSTANCE_PATH", str(instance))
    monkeypatch.delenv("SECRET_KEY", raising=False)
    Development = type("Development", (DevelopmentConfig,), {"SECRET_KEY": None})
    app = create_app(Development)
    with app.app_context():
        upgrade()  # writes through SQLite: the -wal and -shm files appear
        db.engine.dispose()
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    files = sorted(path.name for path in instance.iterdir())
    assert {"lumyri.db", "secret_key"} <= set(files)
    for path in instance.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_an_existing_world_readable_database_is_narrowed(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    for name in ("lumyri.db", "lumyri.db-wal"):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / name).chmod(0o644)
    create_app({"SQLALCHEMY_DATABASE_URI": None})
    for name in ("lumyri.db", "lumyri.db-wal"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("", None),
    ],
)
def test_database_url_normalisation(given, expected):
    assert normalise_database_url(given) == expected


def test_settings_come_from_the_environment():
    code = (
        "from app import create_app; c = create_app().config; "
        "print(c['SQLALCHEMY_DATABASE_URI'], c['ACCESS_TOKEN_TTL_SECONDS'], "
        "c['ARGON2_TIME_COST'], c['ARGON2_MEMORY_COST'], c['ARGON2_PARALLELISM'], "
        "c['MAX_CONTENT_LENGTH'])"
    )
    result = run_python(
        code,
        APP_ENV="production",
        SECRET_KEY=STRONG_KEY,
        SMTP_URL="smtp://127.0.0.1:1",
        DATABASE_URL="postgres://someone@db.invalid/lumyri",
        ACCESS_TOKEN_TTL_SECONDS="600",
        ARGON2_TIME_COST="2",
        ARGON2_MEMORY_COST="19456",
        ARGON2_PARALLELISM="1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "postgresql+psycopg://someone@db.invalid/lumyri",
        "600",
        "2",
        "19456",
        "1",
        "65536",
    ]


def test_argon2_defaults_are_argon2_cffi_defaults():
    from argon2 import PasswordHasher

    default = PasswordHasher()
    assert (
        ProductionConfig.ARGON2_TIME_COST,
        ProductionConfig.ARGON2_MEMORY_COST,
        ProductionConfig.ARGON2_PARALLELISM,
    ) == (default.time_cost, default.memory_cost, default.parallelism)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ACCESS_TOKEN_TTL_SECONDS", "a day", "ACCESS_TOKEN_TTL_SECONDS must be an integer"),
        ("ACCESS_TOKEN_TTL_SECONDS", "-5", "ACCESS_TOKEN_TTL_SECONDS must be at least 1"),
        ("ARGON2_TIME_COST", "abc", "ARGON2_TIME_COST must be an integer"),
        ("WEB_CONCURRENCY", "many", "WEB_CONCURRENCY must be an integer"),
        ("RATELIMIT_ENABLED", "perhaps", "RATELIMIT_ENABLED must be true or false"),
        ("DATABASE_POOLER", "session", "DATABASE_POOLER must be one of none, transaction"),
    ],
)
def test_a_bad_setting_refuses_to_start_with_one_line(monkeypatch, name, value, message):
    """Read when the app is built: the one-line ConfigError wsgi.py turns into "refusing
    to start" (as test_wsgi_refuses_with_one_line_reason shows), no traceback."""
    assert_refused(monkeypatch, f"{message}, got ", **{name: value})


def test_importing_the_config_reads_no_setting():
    result = run_python("import config", ACCESS_TOKEN_TTL_SECONDS="a day")
    assert result.returncode == 0, result.stderr


def test_unknown_app_env():
    result = run_python("import wsgi", APP_ENV="staging", SECRET_KEY=STRONG_KEY)
    assert result.returncode == 1
    assert "APP_ENV must be one of" in result.stderr


def test_no_cookie_session_even_with_a_secret_key():
    """The API keeps no cookie sessions: nothing can be put in one, no Set-Cookie goes out
    (and no session serializer is built per request)."""
    from flask import session

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "SECRET_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCD",
        }
    )
    with app.test_request_context("/"):
        with pytest.raises(RuntimeError):
            session["user"] = "x"
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


GUNICORN_CONF = os.path.join(ROOT, "gunicorn.conf.py")


def load_gunicorn_conf(monkeypatch):
    """Run gunicorn.conf.py as gunicorn does; the error writer it installs is put back
    after the test (the environment is the caller's to arrange)."""
    import importlib.util

    from gunicorn import util

    monkeypatch.setattr(util, "write_error", util.write_error)
    spec = importlib.util.spec_from_file_location("gunicorn_conf_under_test", GUNICORN_CONF)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("args", "connections"),
    [
        ([], 4),  # the file's default: as many connections as threads
        (["--threads", "8"], 8),  # threads from the command line: connections follow
        (["--threads", "1"], 1),
        (["--threads", "8", "--worker-connections", "50"], 50),  # explicit: left alone
        (["-k", "gevent"], 1000),  # other worker classes: gunicorn's own default
    ],
)
def test_gunicorn_connections_follow_the_threads(args, connections, monkeypatch, tmp_path):
    from gunicorn.app.wsgiapp import WSGIApplication

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("GUNICORN_THREADS", "GUNICORN_WORKER_CONNECTIONS", "GUNICORN_CMD_ARGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "argv", ["gunicorn", "-c", GUNICORN_CONF, *args, "wsgi:app"])
    cfg = WSGIApplication("%(prog)s").cfg
    settings = load_gunicorn_conf(monkeypatch)
    settings.gunicorn_hooks.follow_threads(cfg, default_threads=settings.threads)
    assert cfg.worker_connections == connections


def test_gunicorn_keeps_per_request_files_in_memory_and_cleans_up(monkeypatch):
    """The metrics folder and the worker heartbeat files go to /dev/shm where it exists;
    the folder the file made is removed at exit by the process that made it only."""
    # Unset as far as the file can tell; setenv (unlike a delenv of an absent name)
    # makes sure the folder it sets is forgotten after the test.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.delenv("GUNICORN_WORKER_TMP_DIR", raising=False)
    module = load_gunicorn_conf(monkeypatch)
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert os.path.isdir(folder)
    if os.access("/dev/shm", os.W_OK):
        assert os.path.dirname(folder) == "/dev/shm" and module.worker_tmp_dir == "/dev/shm"
    else:  # gunicorn's and tempfile's own defaults
        assert module.worker_tmp_dir is None
    module.MADE_BY_PID = -1  # as in a forked worker: it leaves the folder alone
    module.remove_metrics_dir()
    assert os.path.isdir(folder)
    module.MADE_BY_PID = os.getpid()  # the master, at exit
    module.remove_metrics_dir()
    assert not os.path.exists(folder)


@pytest.mark.parametrize(
    "value",
    [
        "tickets",  # no secret
        "tickets:short-secret",  # under 32 characters
        "tick ets:" + "s" * 32,  # a space in the id
        "tickets:" + "s" * 31 + " ",  # a space in the secret
        "tickets:" + "s" * 32 + ",tickets:" + "t" * 32,  # one id twice
        "tickets:" + "é" * 32,  # not ASCII
        ":" + "s" * 32,  # no id
    ],
)
def test_a_malformed_introspection_client_refuses_to_start(monkeypatch, value):
    assert_refused(monkeypatch, "INTROSPECTION_CLIENTS ", INTROSPECTION_CLIENTS=value)


def test_introspection_clients_are_read_from_the_environment(monkeypatch):
    secret = "a:b-c_d.e~f!g@h#" + "s" * 20  # a colon inside the secret is fine
    monkeypatch.setenv("INTROSPECTION_CLIENTS", f" tickets:{secret} , live.map_2-x:{'t' * 32}")
    assert ProductionConfig.INTROSPECTION_CLIENTS == {"tickets": secret, "live.map_2-x": "t" * 32}
    monkeypatch.setenv("INTROSPECTION_CLIENTS", "")
    assert ProductionConfig.INTROSPECTION_CLIENTS == {}


def test_production_refuses_to_start_without_smtp(monkeypatch):
    monkeypatch.delenv("SMTP_URL", raising=False)
    assert_refused(monkeypatch, "SMTP_URL is not set", SMTP_URL="")


@pytest.mark.parametrize(
    "value", ["mail.example:25", "http://mail.example", "smtp://", "smtps://user:pw@"]
)
def test_a_malformed_smtp_url_refuses_to_start_without_echoing_it(monkeypatch, value):
    message = assert_refused(monkeypatch, "SMTP_URL must be smtp://", SMTP_URL=value)
    assert "pw@" not in message
