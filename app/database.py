"""Engine settings: where the database is, and how long anything may wait on it.

The contract promises a 503 within 5 s when the database cannot answer, so every wait
is bounded: connecting, a statement, a lock, and (SQLite) the write lock; on Postgres,
all the waits of one request together (see "Postgres: a budget of database time").
"""

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import psycopg
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from app import postgres_budget
from app.extensions import db
from app.sqlite_gate import gated

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal", "-gate")

# A "connect" event listener: the new DBAPI connection and its pool record.
ConnectHook = Callable[[DBAPIConnection, ConnectionPoolEntry], None]


def make_private(database_path: str) -> None:
    """The instance folder's SQLite file readable by its owner only (like the generated
    secret key): created empty with mode 0600 (SQLite gives its -wal and -shm files the
    database file's mode), and an existing one, or its side files, narrowed to 0600."""
    try:
        os.close(os.open(database_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        pass
    for path in [database_path] + [database_path + side for side in SQLITE_SIDE_FILES]:
        try:
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, PRIVATE_FILE)
        except FileNotFoundError:
            continue


def configure_database(app: Flask) -> None:
    """Default to SQLite in the instance folder; set per-driver connection options."""
    uri = app.config.get("SQLALCHEMY_DATABASE_URI")
    if not uri:
        os.makedirs(app.instance_path, mode=PRIVATE_FOLDER, exist_ok=True)
        path = os.path.join(app.instance_path, "lumyri.db")
        make_private(path)
        uri = "sqlite:///" + path
        app.config["SQLALCHEMY_DATABASE_URI"] = uri
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = dict(options.get("connect_args") or {})
    if uri.startswith("sqlite"):
        # A file has no server that could have dropped the connection: no "SELECT 1"
        # before each use (it cost a statement per transaction).
        options["pool_pre_ping"] = False
        timeout = app.config["SQLITE_BUSY_TIMEOUT_MS"] / 1000
        connect_args.setdefault("timeout", timeout)
        connect_args.setdefault("check_same_thread", False)
        connect_args.setdefault("factory", gated(sqlite_file(uri, app.instance_path), timeout))
    elif uri.startswith("postgresql"):
        connect_args.setdefault("connect_timeout", app.config["DB_CONNECT_TIMEOUT_SECONDS"])
        # Notice a dead peer instead of waiting on it for the kernel's default of hours.
        connect_args.setdefault("keepalives", 1)
        connect_args.setdefault("keepalives_idle", 5)
        connect_args.setdefault("keepalives_interval", 2)
        connect_args.setdefault("keepalives_count", 2)
        connect_args.setdefault("tcp_user_timeout", app.config["DB_STATEMENT_TIMEOUT_MS"])
        if app.config["DATABASE_POOLER"] == "transaction":
            # psycopg prepares a statement on the server after its 5th use: a prepared
            # statement lives in one server session, which a transaction pooler hands to
            # another client after each transaction (PgBouncer 1.18 does not track them).
            connect_args.setdefault("prepare_threshold", None)
        # Every thread takes a connection at once in practice (more in the pool than
        # threads); should none be free, the request gives up within its own time.
        options.setdefault("pool_timeout", app.config["DB_REQUEST_TIMEOUT_MS"] / 1000)
    options["connect_args"] = connect_args
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


SQLITE_SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def sqlite_file(uri: str, instance_path: str) -> str | None:
    """The file a SQLite URL names, a relative one in the instance folder (where
    Flask-SQLAlchemy puts it); None for an in-memory (or URI-named) database."""
    database = sa.engine.make_url(uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.join(instance_path, database)  # an absolute path stays as it is


def _unicode_lower(value: object) -> object:
    """SQLite's lower(), for every script: text lowered, anything else as it is."""
    return value.lower() if isinstance(value, str) else value


def sqlite_connection_hook(busy_timeout_ms: int, synchronous: str = "FULL") -> ConnectHook:
    """WAL, a busy timeout, the fsync policy and foreign keys on every SQLite connection,
    and a `lower()` that lowers every letter (SQLite's own lowers ASCII only, so the
    member search would find `élodie` for `é` but not for `É`; Postgres's is Unicode's)."""
    if synchronous not in SQLITE_SYNCHRONOUS_MODES:
        raise ValueError(f"SQLITE_SYNCHRONOUS must be one of {SQLITE_SYNCHRONOUS_MODES}")

    def on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)

    return on_connect


def postgres_connection_hook(statement_timeout_ms: int, lock_timeout_ms: int) -> ConnectHook:
    """Server-side limits on every Postgres connection: no statement or lock wait may
    outlast the time the contract gives a 503."""

    def on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # The Postgres driver is psycopg, whose cursor is a context manager (SQLAlchemy's
        # DBAPI protocol does not say so).
        with cast(psycopg.Cursor[Any], dbapi_connection.cursor()) as cursor:
            cursor.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
            cursor.execute(f"SET lock_timeout = {int(lock_timeout_ms)}")
            cursor.execute("SET idle_in_transaction_session_timeout = 60000")
        dbapi_connection.commit()

    return on_connect


# A "begin" event listener: the Connection whose transaction begins.
BeginHook = Callable[[sa.Connection], None]


def postgres_transaction_hook(statement_timeout_ms: int, lock_timeout_ms: int) -> BeginHook:
    """The same limits as postgres_connection_hook, for a transaction pooler in front
    (DATABASE_POOLER=transaction), where a session `SET` would stay on a server connection
    that the pooler then hands to another client, and would be missing on the next one
    this client gets. Each transaction sets them for itself (`set_config(..., true)`,
    i.e. `SET LOCAL`: they end with it), in the statement that begins it: one round trip
    more per transaction, on this path only.

    Why not the role's defaults (`ALTER ROLE ... SET statement_timeout`)? They would hold
    for autocommit reads too and cost nothing, but they live in the database, outside the
    service's settings (DB_STATEMENT_TIMEOUT_MS could no longer change them), and bind
    every other client of that role. A read in autocommit (app.repository.core) is one
    statement that takes no lock a transaction of the service holds; it has no server-side
    timeout here, and is bounded by the request's budget (app.postgres_budget), which
    closes the connection when the time is spent."""
    statement = (
        "SELECT set_config('statement_timeout', %s, true), "
        "set_config('lock_timeout', %s, true), "
        "set_config('idle_in_transaction_session_timeout', '60000', true)"
    )
    params = (str(int(statement_timeout_ms)), str(int(lock_timeout_ms)))

    def on_begin(connection: sa.Connection) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        if dbapi_connection is None or getattr(dbapi_connection, "autocommit", False):
            return  # no transaction to set anything in: a read in autocommit
        with cast(psycopg.Cursor[Any], dbapi_connection.cursor()) as cursor:
            cursor.execute(statement, params)

    return on_begin


def rollback_after_request(error: BaseException | None = None) -> None:
    """Teardown: whatever the request left open in its transaction (an error midway) is
    rolled back before the session goes back to the pool. Nothing is open after a
    request that committed, and then this costs one attribute look-up."""
    session = db.session
    if session.registry.has() and session().in_transaction():
        try:
            session.rollback()
        except Exception:  # noqa: BLE001 - a dead connection must not hide the answer
            pass


def install_connection_hooks(app: Flask) -> None:
    """Attach the per-connection settings to the app's engine (after db.init_app)."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    hook: ConnectHook | None
    if uri.startswith("sqlite"):
        hook = sqlite_connection_hook(
            app.config["SQLITE_BUSY_TIMEOUT_MS"], app.config["SQLITE_SYNCHRONOUS"]
        )
    elif uri.startswith("postgresql"):
        limits = app.config["DB_STATEMENT_TIMEOUT_MS"], app.config["DB_LOCK_TIMEOUT_MS"]
        if app.config["DATABASE_POOLER"] == "transaction":
            hook = None  # no session state: each transaction sets its own limits
            with app.app_context():
                sa.event.listen(db.engine, "begin", postgres_transaction_hook(*limits))
        else:
            hook = postgres_connection_hook(*limits)
        postgres_budget.install(app)
    else:
        hook = None
    app.teardown_request(rollback_after_request)
    if hook is not None:
        with app.app_context():
            sa.event.listen(db.engine, "connect", hook)
