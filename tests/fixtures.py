"""Fixtures: the app on SQLite and on Postgres, its test client and CLI runner.

Every HTTP test runs twice, once per database. Postgres comes from TEST_DATABASE_URL
(default: the local server); in CI (CI=true) it is required and its absence fails the
run, elsewhere its absence skips those tests with the reason.

A plugin that conftest.py loads in each process that runs tests (not in pytest-xdist's
controller, which runs none: importing the app there cost every run 2 s before the
workers started).
"""

import contextlib
import os
import secrets
import sqlite3
import time

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from app import create_app, identity
from app.extensions import db
from app.mail import EXTENSION_KEY
from app.models import (
    AuditEvent,
    Company,
    IdempotencyKey,
    Invitation,
    OutboxMail,
    Role,
    SigningCredential,
    User,
)
from config import TestingConfig
from tests import compiled_statements, route_builders
from tests.helpers import Api

route_builders.install()

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def running_in_ci():
    """True when the CI runner started us."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def migrate_database(url):
    """Create the schema (and seed the roles) with the project's real migrations."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        db.engine.dispose()


def unreachable(service, url, error, variable):
    """A service the tests need is down: fail in CI, skip (with the reason) elsewhere."""
    reason = f"{service} at {url!r} is not reachable ({type(error).__name__})"
    if running_in_ci():
        pytest.fail(f"{reason}; CI requires it (set {variable})", pytrace=False)
    pytest.skip(f"{reason}; set {variable} to run the {service} tests")


def postgres_server_url():
    """The Postgres server to test against, or skip (fail in CI) when it cannot be reached."""
    url = os.environ.get("TEST_DATABASE_URL") or DEFAULT_POSTGRES_URL
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        unreachable("Postgres", sa.make_url(url), error, "TEST_DATABASE_URL")
    finally:
        engine.dispose()
    return url


def redis_server_url():
    """The Redis server for the shared-limit tests, or skip (fail in CI) when unreachable."""
    import redis

    url = os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        unreachable("Redis", url, error, "TEST_REDIS_URL")
    finally:
        client.close()
    return url


def with_search_path(url, schema):
    """The same server URL, with every connection's search_path set to `schema`."""
    scoped = sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory):
    """A migrated SQLite file for the whole session. A connection of the session's own
    keeps its write-ahead log open: otherwise each test's engine, closing the file's last
    connection, checkpointed the log and synced the file (about 3 ms a test)."""
    path = tmp_path_factory.mktemp("sqlite") / "lumyri.db"
    migrate_database(f"sqlite:///{path}")
    keeper = sqlite3.connect(path)
    keeper.execute("SELECT count(*) FROM sqlite_master").fetchall()  # opens the log
    yield f"sqlite:///{path}"
    keeper.close()


@pytest.fixture(scope="session")
def redis_server():
    """The Redis server URL (skips, or fails in CI, when unreachable)."""
    return redis_server_url()


@pytest.fixture(scope="session")
def postgres_server():
    """The Postgres server URL (skips, or fails in CI, when unreachable)."""
    return postgres_server_url()


@contextlib.contextmanager
def postgres_schema(server_url):
    """A schema of its own on the Postgres server (dropped afterwards); yields its URL."""
    schema = f"lumyri_test_{secrets.token_hex(4)}"
    engine = sa.create_engine(server_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield with_search_path(server_url, schema)
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@contextlib.contextmanager
def proxied_postgres(server_url):
    """A migrated schema of its own, reached through a TcpProxy that a test can cut or
    silence; yields (direct URL, proxied URL, proxy). The proxy is closed afterwards."""
    from tests.tcp_proxy import TcpProxy

    with postgres_schema(server_url) as direct_url:
        migrate_database(direct_url)
        url = sa.make_url(direct_url)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        proxied_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        try:
            yield direct_url, proxied_url, proxy
        finally:
            proxy.close()


@pytest.fixture(scope="session")
def postgres_database(postgres_server):
    """A migrated schema of its own on the Postgres server, for the whole session."""
    with postgres_schema(postgres_server) as url:
        migrate_database(url)
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request):
    """Each test that uses the database runs on SQLite and on Postgres."""
    return request.getfixturevalue(f"{request.param}_database")


EMPTYING = (
    [f"DELETE FROM {model.__tablename__}" for model in (Invitation, SigningCredential, User)]
    + [f"DELETE FROM {Role.__tablename__} WHERE company_id IS NOT NULL"]
    + [
        f"DELETE FROM {model.__tablename__}"
        for model in (Company, AuditEvent, IdempotencyKey, OutboxMail)
    ]
)


def empty_account_tables():
    """Delete every account (the seeded roles stay). Plain SQL, which is never compiled:
    some callers' engines (tests/system, tests/unit/test_member_page_queries.py) do not
    share the compiled statements of `make_app`'s."""
    connection = db.session.connection()
    for statement in EMPTYING:
        connection.exec_driver_sql(statement)
    db.session.commit()


@pytest.fixture
def make_app(database_url):
    """Apps with settings of their own on the test's database, which is emptied after
    the test. (An app costs about 10 ms to build: a test builds only those it uses. Its
    engine shares the compiled SQL of the apps before it: tests/compiled_statements.py.)"""
    built = []

    def build(**settings):
        options = settings.pop("SQLALCHEMY_ENGINE_OPTIONS", TestingConfig.SQLALCHEMY_ENGINE_OPTIONS)
        settings["SQLALCHEMY_ENGINE_OPTIONS"] = compiled_statements.engine_options(options)
        built.append(create_app({"SQLALCHEMY_DATABASE_URI": database_url, **settings}))
        return built[-1]

    yield build
    if not built:
        build()  # no app was asked for, yet the test may have written through another
    try:
        for each in built:
            each.extensions[EXTENSION_KEY].stop()
    finally:
        try:
            with built[0].app_context():
                empty_account_tables()
        finally:
            for each in built:
                with each.app_context():
                    db.engine.dispose()


@pytest.fixture
def app(make_app):
    """The app, built by the factory with the testing config, on a migrated database."""
    return make_app()


@pytest.fixture
def mail_app(make_app, smtp_server):
    """An app that sends to the test's SMTP server."""
    return make_app(SMTP_URL=smtp_server.url)


@pytest.fixture
def client(app):
    """Flask's test client."""
    return app.test_client()


@pytest.fixture
def api(client):
    """Small helper for the requests the tests repeat."""
    return Api(client)


@pytest.fixture
def runner(app):
    """Flask's CLI runner."""
    return app.test_cli_runner()


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on loopback for one test."""
    from tests.smtp_server import SmtpServer

    server = SmtpServer()
    server.start()
    yield server
    server.stop()


class MovingClock:
    """A monotonic clock that `advance(seconds)` moves forward, on top of the real one."""

    def __init__(self):
        self.offset = 0.0

    def __call__(self):
        return time.monotonic() + self.offset

    def advance(self, seconds):
        """As if `seconds` had passed."""
        self.offset += seconds


@pytest.fixture
def cache_window(monkeypatch):
    """The identity cache's clock: `cache_window.advance(1.1)` ends a one-second
    TOKEN_CACHE_SECONDS window without waiting it out."""
    clock = MovingClock()
    monkeypatch.setattr(identity, "window_clock", clock)
    return clock
