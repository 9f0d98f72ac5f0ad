"""Lumyri accounts: the app factory."""

import logging
import os
from typing import Any, cast

from flask import Flask, Request, Response, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import NullSession, SessionInterface, SessionMixin
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from app import api, identity, mail, observability, passwords, ratelimit
from app.api.verify_fast_path import VerifyFastPath
from app.database import configure_database, install_connection_hooks
from app.error_handlers import register_error_handlers
from app.extensions import db, migrate
from app.http_headers import add_security_headers
from app.postgres_budget import with_request_budget
from app.secret_key import configure_secret_key
from config import CONFIGS, Config, config_from_env

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations")


def create_app(config: type[Config] | str | dict[str, Any] | None = None) -> Flask:
    """Build the app. `config`: a config class, its name, or a mapping of overrides
    applied on top of the testing config; None reads APP_ENV from the environment."""
    # INSTANCE_PATH lets a deployment keep the SQLite file and dev key outside the code.
    app = Flask(__name__, instance_path=os.environ.get("INSTANCE_PATH") or None)
    load_config(app, config)
    app.session_interface = NoCookieSessions()
    configure_logging(app)
    configure_secret_key(app)
    configure_database(app)
    register_extensions(app)
    api.register_blueprints(app)
    register_error_handlers(app)
    register_response_headers(app)
    register_commands(app)
    register_middleware(app)
    return app


class NoCookieSessions(SessionInterface):
    """The API keeps no cookie sessions (a bearer token says who calls): skip Flask's
    signed session cookie, whose serializer would otherwise be built on every request."""

    def open_session(self, app: Flask, request: Request) -> NullSession:
        """Every request gets the null session (writing to it raises)."""
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Nothing to save: no Set-Cookie ever."""


def load_config(app: Flask, config: type[Config] | str | dict[str, Any] | None) -> None:
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
    # Flask's own provider (the app sets no json_provider_class).
    json_provider = cast(DefaultJSONProvider, app.json)
    json_provider.sort_keys = False  # keep the contract's key order
    # "//" in a path is a 404 like any unknown path, not a redirect to an HTML page.
    app.url_map.merge_slashes = False


def configure_logging(app: Flask) -> None:
    """Plain log lines on stderr unless the host (gunicorn, pytest) set up logging already."""
    # No log line names its source file and line, thread or multiprocessing name: skip
    # gathering them for every record (the logging HOWTO's "Optimization" advice).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(observability.JsonFormatter())
        root.addHandler(handler)
        root.setLevel(app.config["LOG_LEVEL"])


def register_extensions(app: Flask) -> None:
    """Bind SQLAlchemy, Flask-Migrate and the password hasher to the app."""
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)
    install_connection_hooks(app)
    passwords.init_app(app)
    identity.init_app(app)
    mail.init_app(app)
    ratelimit.init_app(app)
    observability.init_app(app)
    register_cors(app)


def register_middleware(app: Flask) -> None:
    """WSGI middleware around the app (Flask's documented way to wrap it): the request's
    database time (Postgres), the /verify fast path (which sets its own), then,
    outermost, the proxy fix, so that all of them see the real client."""
    fast_path = VerifyFastPath(app, with_request_budget(app, app.wsgi_app))
    app.wsgi_app = fast_path  # type: ignore[method-assign]  # an attribute, on purpose
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        # Only then is X-Forwarded-For believed: a client could write anything there.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies
        )


def register_cors(app: Flask) -> None:
    """Let the website's origins (CORS_ORIGINS; none by default) call the API."""
    origins = app.config["CORS_ORIGINS"]
    if not origins:
        return
    CORS(
        app,
        resources={r"/api/*": {"origins": origins}},
        methods=["GET", "POST", "PATCH"],
        allow_headers=["Content-Type", "Authorization", "Idempotency-Key", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Retry-After"],
        max_age=600,
    )


def register_response_headers(app: Flask) -> None:
    """Headers every response carries."""

    @app.after_request
    def finish_headers(response: Response) -> Response:
        """The security headers on everything; Flask's automatic OPTIONS answer, an
        empty text/html 200, becomes a 204. (One hook for both: each hook costs every
        request.)"""
        add_security_headers(response.headers)
        if request.method == "OPTIONS" and response.status_code == 200 and not response.data:
            response.status_code = 204
            del response.headers["Content-Type"]
        return response


def register_commands(app: Flask) -> None:
    """Add the operator CLI (`flask accounts ...`)."""
    from app.cli import accounts_cli

    app.cli.add_command(accounts_cli)
