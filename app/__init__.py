"""Lumyri accounts: the app factory."""

import logging
import os
import secrets

import sqlalchemy as sa
from flask import Flask

from app import passwords
from app.errors import register_error_handlers
from app.extensions import db, migrate
from config import CONFIGS, MIN_SECRET_KEY_BYTES, ConfigError, config_from_env

log = logging.getLogger(__name__)

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations")
SECRET_KEY_FILE = "secret_key"


def create_app(config=None):
    """Build the app. `config`: a config class, its name, or a mapping of overrides
    applied on top of the testing config; None reads APP_ENV from the environment."""
    # INSTANCE_PATH lets a deployment keep the SQLite file and dev key outside the code.
    app = Flask(__name__, instance_path=os.environ.get("INSTANCE_PATH") or None)
    load_config(app, config)
    configure_logging(app)
    configure_secret_key(app)
    configure_database(app)
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_response_headers(app)
    register_commands(app)
    return app


def load_config(app, config):
    """Apply the chosen config class (and overrides, when a mapping is given)."""
    if config is None:
        app.config.from_object(config_from_env())
    elif isinstance(config, str):
        app.config.from_object(CONFIGS[config])
    elif isinstance(config, dict):
        app.config.from_object(CONFIGS["testing"])
        app.config.update(config)
    else:
        app.config.from_object(config)
    app.json.sort_keys = False  # keep the contract's key order


def configure_logging(app):
    """Plain log lines on stderr unless the host (gunicorn, pytest) set up logging already."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=app.config["LOG_LEVEL"],
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )


def configure_secret_key(app):
    """Require a strong SECRET_KEY; development may generate one in the instance folder."""
    key = app.config.get("SECRET_KEY")
    if not key and app.config["GENERATE_SECRET_KEY"]:
        key = app.config["SECRET_KEY"] = load_or_create_instance_secret(app.instance_path)
        log.warning("SECRET_KEY is not set: using the generated key kept in the instance folder")
    if not key:
        raise ConfigError("SECRET_KEY is not set; set it to a random string of 32+ bytes")
    if len(key.encode()) < MIN_SECRET_KEY_BYTES:
        raise ConfigError(
            f"SECRET_KEY is too short ({len(key.encode())} bytes); use at least "
            f"{MIN_SECRET_KEY_BYTES} random bytes, e.g. python -c "
            "'import secrets; print(secrets.token_urlsafe(48))'"
        )


def load_or_create_instance_secret(instance_path):
    """Read the instance folder's secret key, creating it atomically the first time."""
    os.makedirs(instance_path, exist_ok=True)
    path = os.path.join(instance_path, SECRET_KEY_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, encoding="ascii") as existing:
            return existing.read().strip()
    with os.fdopen(fd, "w", encoding="ascii") as created:
        key = secrets.token_urlsafe(48)
        created.write(key)
    return key


def configure_database(app):
    """Default to SQLite in the instance folder; set per-driver connection options."""
    uri = app.config.get("SQLALCHEMY_DATABASE_URI")
    if not uri:
        os.makedirs(app.instance_path, exist_ok=True)
        uri = "sqlite:///" + os.path.join(app.instance_path, "lumyri.db")
        app.config["SQLALCHEMY_DATABASE_URI"] = uri
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = dict(options.get("connect_args") or {})
    if uri.startswith("sqlite"):
        connect_args.setdefault("timeout", app.config["SQLITE_BUSY_TIMEOUT_MS"] / 1000)
        connect_args.setdefault("check_same_thread", False)
    elif uri.startswith("postgresql"):
        connect_args.setdefault("connect_timeout", app.config["DB_CONNECT_TIMEOUT_SECONDS"])
    options["connect_args"] = connect_args
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def set_sqlite_pragmas(busy_timeout_ms):
    """Build a connect hook: WAL, a busy timeout and foreign keys on every SQLite connection."""

    def on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def register_extensions(app):
    """Bind SQLAlchemy, Flask-Migrate and the password hasher to the app."""
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)
    passwords.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            hook = set_sqlite_pragmas(app.config["SQLITE_BUSY_TIMEOUT_MS"])
            sa.event.listen(db.engine, "connect", hook)


def register_blueprints(app):
    """Mount the HTTP endpoints."""
    from app.health import bp as health_bp
    from app.openapi import bp as openapi_bp
    from app.sessions import bp as sessions_bp
    from app.signup import bp as signup_bp

    app.register_blueprint(signup_bp)
    app.register_blueprint(sessions_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(openapi_bp)


def register_response_headers(app):
    """Headers every response carries."""

    @app.after_request
    def add_security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


def register_commands(app):
    """Add the operator CLI (`flask accounts ...`)."""
    from app.cli import accounts_cli

    app.cli.add_command(accounts_cli)
