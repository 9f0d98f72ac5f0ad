"""Engine settings: where the database is, and how long anything may wait on it.

The contract promises a 503 within 5 s when the database cannot answer, so every wait
is bounded: connecting, a statement, a lock, and (SQLite) the write lock; on Postgres,
all the waits of one request together (see "Postgres: a budget of database time").
"""

import contextlib
import errno
import fcntl
import logging
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar, cast

import psycopg
import sqlalchemy as sa
from flask import Flask
from psycopg.abc import PQGen
from psycopg.errors import ConnectionTimeout, _WaitTimeout
from psycopg.pq import TransactionStatus
from sqlalchemy.engine.interfaces import DBAPIConnection, Dialect
from sqlalchemy.pool import ConnectionPoolEntry

from app.extensions import db

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

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
        # Every thread takes a connection at once in practice (more in the pool than
        # threads); should none be free, the request gives up within its own time.
        options.setdefault("pool_timeout", app.config["DB_REQUEST_TIMEOUT_MS"] / 1000)
    options["connect_args"] = connect_args
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


SQLITE_SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")

# Statements that take SQLite's write lock (how they begin, upper-cased, past blanks and
# comments). A WITH may end in a write: it passes the gate too (a read with one lets go
# of it at once, no transaction being open).
SQLITE_WRITES = (
    "INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "WITH", "VACUUM",
    "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE",
)  # fmt: skip
# Why a lock file cannot be had at all (not a passing shortage, such as of descriptors).
NO_LOCK_FILE = frozenset(
    (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOENT)
    + (errno.ENOTDIR, errno.ELOOP)
)


def _verb(sql: str) -> str:
    """A statement's start, upper-cased, past blanks and comments."""
    text = sql.lstrip()
    while text.startswith(("--", "/*")):
        closing = "\n" if text.startswith("--") else "*/"
        end = text.find(closing)
        text = "" if end < 0 else text[end + len(closing) :].lstrip()
    return text[:16].upper()


_GATES: "weakref.WeakSet[WriteGate]" = weakref.WeakSet()


class WriteGate:
    """One writer at a time at a SQLite file, queued instead of polled.

    SQLite lets one transaction write at a time; another writer that finds the lock taken
    sleeps in SQLite's busy handler for 1, 2, 5, 10 ms and more between tries, whatever the
    holder needs (a write here holds it well under a millisecond). Under load the
    service's threads spent more time asleep there than working (bench/README.md). The
    gate makes them queue before they write: a thread lock in each process, whose waiter
    wakes as soon as it is released, and a lock on a file beside the database between a
    host's gunicorn workers, tried every 50 us to 1 ms. SQLite's own locking still decides
    what is safe; the gate only spares the sleeps. The busy timeout bounds the gate and
    SQLite's own wait together, past which the writer gets SQLite's own "database is
    locked" (a 503).
    """

    def __init__(self, lock_path: str | None, timeout_seconds: float) -> None:
        self.lock_path = lock_path
        self.timeout = timeout_seconds
        self._lock = threading.Lock()
        self._file = -1  # opened at the first write, by whoever holds self._lock
        self._file_held = False
        _GATES.add(self)

    def _after_fork(self) -> None:
        """A child process gets a lock and a file of its own: a thread lock held at the
        fork would never be let go, and a lock on the file the parent opened is the
        parent's own (the child's copy of it would pass every gate)."""
        self._lock, self._file_held = threading.Lock(), False
        if self._file >= 0:
            os.close(self._file)
            self._file = -1

    def acquire(self) -> threading.Lock:
        """Pass the gate; what to hand back to release()."""
        lock, deadline = self._lock, time.monotonic() + self.timeout
        if not lock.acquire(timeout=self.timeout):
            raise sqlite3.OperationalError("database is locked")
        try:
            self._file_held = self._lock_file(deadline)
        except BaseException:
            lock.release()
            raise
        return lock

    def _lock_file(self, deadline: float) -> bool:
        """The lock on the file, tried every 50 us to 1 ms until the deadline; whether it
        is held. Where no lock file can be had (a read-only folder, a file system without
        locks, another owner's file), SQLite's busy handler alone between processes, said
        once in the log; a passing shortage (of file descriptors) skips it this once."""
        pause = 50e-6
        while self.lock_path is not None:
            try:
                if self._file < 0:
                    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                    self._file = os.open(self.lock_path, flags, PRIVATE_FILE)
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError("database is locked") from None
                time.sleep(pause)
                pause = min(2 * pause, 0.001)
            except OSError as error:
                if error.errno in NO_LOCK_FILE:
                    log.warning(
                        "no SQLite write gate between processes: %s: %s",
                        self.lock_path,
                        os.strerror(error.errno or 0),
                    )
                    self.lock_path = None
                return False
        return False

    def release(self, lock: threading.Lock) -> None:
        """Let the next writer in; nothing for a pass from before a fork (the child's
        gate is another)."""
        if lock is not self._lock:
            return
        try:
            if self._file_held:
                self._file_held = False
                fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            lock.release()


class GatedCursor(sqlite3.Cursor):
    """A cursor that passes the connection's write gate before a statement that writes."""

    connection: "GatedConnection"

    def execute(self, sql: str, parameters: Any = (), /) -> "GatedCursor":
        self.connection.before(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection.after()

    def executemany(self, sql: str, parameters: Any, /) -> "GatedCursor":
        self.connection.before(sql)
        try:
            return super().executemany(sql, parameters)
        finally:
            self.connection.after()


class GatedConnection(sqlite3.Connection):
    """A SQLite connection that holds its gate (`gate`, set per engine by `gated`) from its
    transaction's first write to its end (commit, rollback, close). Its shortcuts
    (execute, executemany, executescript) pass the gate too."""

    gate: WriteGate
    held: "threading.Lock | None" = None
    shortened = False  # the busy timeout, by what the gate took of it

    def cursor(self, factory: Any = GatedCursor) -> Any:  # noqa: D102 - sqlite3's
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:  # noqa: D102 - sqlite3's
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:  # noqa: D102 - sqlite3's
        return self.cursor().executemany(sql, parameters)

    def executescript(self, script: str, /) -> Any:  # noqa: D102 - sqlite3's
        self._pass()
        try:
            return super().executescript(script)
        finally:
            self.after()

    def before(self, sql: str) -> None:
        if self.held is None and _verb(sql).startswith(SQLITE_WRITES):
            self._pass()

    def _pass(self) -> None:
        """Through the gate; SQLite then waits only what is left of the busy timeout."""
        if self.held is not None:
            return
        started = time.monotonic()
        self.held = self.gate.acquire()
        waited = time.monotonic() - started
        if waited > 0.001:
            left = max(1, int((self.gate.timeout - waited) * 1000))
            sqlite3.Connection.execute(self, f"PRAGMA busy_timeout={left}")
            self.shortened = True

    def after(self) -> None:
        """A write outside a transaction (autocommit, DDL) ends with its statement."""
        if self.held is not None and not self.in_transaction:
            self._let_go()

    def _let_go(self, closed: bool = False) -> None:
        held, self.held = self.held, None
        try:
            if self.shortened and not closed:
                self.shortened = False
                timeout = int(self.gate.timeout * 1000)
                sqlite3.Connection.execute(self, f"PRAGMA busy_timeout={timeout}")
        finally:
            if held is not None:
                self.gate.release(held)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.after()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.after()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._let_go(closed=True)

    def __del__(self) -> None:
        """A connection dropped without close() must not keep its process's writers out."""
        self._let_go(closed=True)


def _gates_after_fork() -> None:
    for gate in list(_GATES):
        gate._after_fork()


os.register_at_fork(after_in_child=_gates_after_fork)


def sqlite_file(uri: str, instance_path: str) -> str | None:
    """The file a SQLite URL names, a relative one in the instance folder (where
    Flask-SQLAlchemy puts it); None for an in-memory (or URI-named) database."""
    database = sa.engine.make_url(uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.join(instance_path, database)  # an absolute path stays as it is


def gated(database_path: str | None, timeout_seconds: float) -> type[GatedConnection]:
    """The connection class for one SQLite database: its gate's lock file sits beside the
    database file (None for an in-memory database: the process's lock alone)."""
    lock_path = None if database_path is None else database_path + "-gate"
    gate = WriteGate(lock_path, timeout_seconds)
    return type("GatedConnection", (GatedConnection,), {"gate": gate})


def sqlite_connection_hook(busy_timeout_ms: int, synchronous: str = "FULL") -> ConnectHook:
    """WAL, a busy timeout, the fsync policy and foreign keys on every SQLite connection."""
    if synchronous not in SQLITE_SYNCHRONOUS_MODES:
        raise ValueError(f"SQLITE_SYNCHRONOUS must be one of {SQLITE_SYNCHRONOUS_MODES}")

    def on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

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


# Postgres: a budget of database time.
#
# libpq's connect_timeout bounds connecting, and the server's statement and lock timeouts
# bound what the server sees. When the network goes silent (a partition, a stuck proxy or
# pooler) the server sees nothing, and the client would wait on its socket for ever: TCP
# keepalives and tcp_user_timeout are defeated by anything in between that takes and
# acknowledges the bytes. So the client bounds its own waits. Every statement, fetch,
# commit and rollback of psycopg waits on the socket in Connection.wait, which takes a
# timeout (psycopg 3.3; the one it uses for notifies() and for a cancel): ours gives it
# what is left of the request's database time, DB_REQUEST_TIMEOUT_MS for all its waits
# together (connecting too), however many it makes. A wait that runs out closes its
# connection (it stopped mid-protocol: nothing more can be said on it), so SQLAlchemy
# drops it and the request answers 503; an open transaction ends with the connection,
# unwritten. No thread, no timer, no round trip: two clock readings a wait.
#
# Then the other threads must not each wait the whole budget on a database that went
# silent a moment ago (the requests behind them would queue past the contract's 5 s): an
# Outage answers them at once, and lets one thread at a time try again every second.

PROBE_SECONDS = 1.0  # while the database is silent, how often one thread tries it again
SILENCE_SECONDS = 1.0  # a wait out of time after this long (or half the budget) is silence
WAIT_FLOOR_SECONDS = 0.05  # a wait begun on a spent budget may still be answered this soon

RV = TypeVar("RV")
IDLE = TransactionStatus.IDLE
# A "do_connect" event listener: it makes the DBAPI connection itself.
DoConnectHook = Callable[[Dialect, ConnectionPoolEntry, list[Any], dict[str, Any]], DBAPIConnection]


class Budget(threading.local):
    """The database time the thread's request has left, in seconds; None: no bound (the
    CLI, migrations, tests outside a request)."""

    left: float | None = None


BUDGET = Budget()


@contextlib.contextmanager
def budget(seconds: float) -> Iterator[None]:
    """The block's waits on Postgres together last at most `seconds` (the mail sender's
    round; a request's own comes from RequestBudget)."""
    outer, BUDGET.left = BUDGET.left, seconds
    try:
        yield
    finally:
        BUDGET.left = outer


class RequestBudget:
    """WSGI middleware: each request Flask dispatches gets DB_REQUEST_TIMEOUT_MS of
    database time, from its first wait to its last. (The /verify fast path, in front of
    it, gives its one read the same with `budget`.)"""

    def __init__(self, wsgi_app: "WSGIApplication", seconds: float) -> None:
        self.next = wsgi_app
        self.seconds = seconds

    def __call__(
        self, environ: "WSGIEnvironment", start_response: "StartResponse"
    ) -> Iterable[bytes]:
        BUDGET.left = self.seconds
        try:
            return self.next(environ, start_response)
        finally:
            BUDGET.left = None


class DatabaseTimeout(psycopg.OperationalError):
    """The request's database time ran out while it waited on the server."""


class Unreachable(psycopg.OperationalError):
    """The database went silent moments ago: answered at once, without waiting on it."""


_OUTAGES: "weakref.WeakSet[Outage]" = weakref.WeakSet()


class Outage:
    """What one process knows of its database going silent, shared by its threads.

    After a wait heard nothing for SILENCE_SECONDS (or half the budget, if less) and ran
    out of time, or a connection attempt timed out, a thread that would begin something
    on the database (connect, or a statement outside a transaction) gets Unreachable at
    once; one thread at a time, every PROBE_SECONDS, goes on instead, and the first
    answer it gets ends the outage. Begun transactions finish (or run out) on their own.
    `retry_at` is 0 while the database answers: the one attribute the hot path reads.
    """

    def __init__(self, patience: float) -> None:
        self.patience = patience  # a probe's own time: one request's budget
        self.silence = min(SILENCE_SECONDS, patience / 2)
        self._reset()
        _OUTAGES.add(self)

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.retry_at = 0.0  # when the next probe may go; 0: the database answers
        self.since = 0.0
        self.prober: int | None = None

    def admit(self) -> None:
        """Let this thread begin (it probes), or raise Unreachable."""
        me = threading.get_ident()
        with self.lock:
            if not self.retry_at or self.prober == me:
                return
            now = time.monotonic()
            if now < self.retry_at:
                raise Unreachable("the database went silent; not tried again yet")
            # Should the probe end without a word (neither answer nor failure),
            # another thread takes over once its time is up.
            self.prober, self.retry_at = me, now + self.patience + PROBE_SECONDS

    def failed(self, waited: float) -> None:
        """A wait or a connection attempt ran out after `waited` seconds, or a probe
        failed. A request that merely spent its time on answers is no outage."""
        if waited < self.silence and not self.retry_at:
            return
        with self.lock:
            now = time.monotonic()
            if not self.retry_at:
                self.since = now
                log.warning(
                    "the database did not answer for %.1f s: requests get 503 at once, "
                    "and one tries it again every %.0f s",
                    waited,
                    PROBE_SECONDS,
                )
            self.prober, self.retry_at = None, now + PROBE_SECONDS

    def answered(self) -> None:
        """The database answered: the outage, if any, is over."""
        with self.lock:
            if self.retry_at:
                log.info(
                    "the database answers again, after %.1f s",
                    time.monotonic() - self.since,
                )
                self.prober, self.retry_at = None, 0.0


def _outages_after_fork() -> None:
    for outage in list(_OUTAGES):
        outage._reset()


os.register_at_fork(after_in_child=_outages_after_fork)


class BoundedCursor(psycopg.Cursor[Any]):
    """During an outage, a statement that would begin something (no transaction open:
    an autocommit read, a transaction's first statement, the pool's ping) asks the
    Outage first; nothing has been sent when it is refused."""

    def execute(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        outage: Outage = self._conn.outage  # type: ignore[attr-defined]
        if outage.retry_at and self._conn.pgconn.transaction_status == IDLE:
            outage.admit()
        super().execute(query, params, prepare=prepare, binary=binary)
        if outage.retry_at:
            outage.answered()
        return self

    def executemany(self, query: Any, params_seq: Any, *, returning: bool = False) -> None:
        outage: Outage = self._conn.outage  # type: ignore[attr-defined]
        if outage.retry_at and self._conn.pgconn.transaction_status == IDLE:
            outage.admit()
        super().executemany(query, params_seq, returning=returning)
        if outage.retry_at:
            outage.answered()


_psycopg_wait = psycopg.Connection.wait
_monotonic = time.monotonic


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait on the server ends within what is left of
    the thread's budget (no bound without one). `outage` is set per engine."""

    outage: ClassVar[Outage]

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        """psycopg's wait (interval: its own default), with the budget as timeout. Called
        9 to 19 times a request (most of them need no I/O): kept to a few lookups."""
        left = BUDGET.left
        if left is None:
            return _psycopg_wait(self, gen, interval, timeout)
        bound = left if left > WAIT_FLOOR_SECONDS else WAIT_FLOOR_SECONDS
        own = timeout is not None and timeout < bound  # the caller's (notifies)
        started = _monotonic()
        try:
            return _psycopg_wait(self, gen, interval, timeout if own else bound)
        except _WaitTimeout:
            if own:
                raise
            waited = _monotonic() - started
            self.close()  # mid-protocol; a transaction ends unwritten
            self.outage.failed(waited)
            raise DatabaseTimeout(
                f"no answer from the database within the request's time ({waited:.1f} s)"
            ) from None
        finally:
            BUDGET.left = left - (_monotonic() - started)


def uses_psycopg(uri: str) -> bool:
    """Postgres through psycopg 3 (every Postgres URL from the environment: config.py)."""
    return uri.startswith("postgresql+psycopg://")


def connect_within_budget(
    connection_class: type[BoundedConnection], connect_timeout: int
) -> DoConnectHook:
    """Make each connection a BoundedConnection, asking the Outage first, and wait for it
    at most what is left of the budget (libpq counts whole seconds, 2 at least)."""
    outage = connection_class.outage

    def do_connect(
        _dialect: Dialect,
        _record: ConnectionPoolEntry,
        cargs: list[Any],
        cparams: dict[str, Any],
    ) -> DBAPIConnection:
        left = BUDGET.left
        params = {"cursor_factory": BoundedCursor, **cparams}
        if left is not None:
            if left <= 0:
                raise DatabaseTimeout("the request's database time is spent")
            params["connect_timeout"] = min(connect_timeout, math.ceil(left))
        if outage.retry_at:
            outage.admit()
        started = time.monotonic()
        try:
            connection = connection_class.connect(*cargs, **params)
        except ConnectionTimeout:
            outage.failed(time.monotonic() - started)
            raise
        except psycopg.OperationalError:
            if outage.retry_at:  # the probe found the database refusing
                outage.failed(time.monotonic() - started)
            raise
        finally:
            if left is not None:
                BUDGET.left = left - (time.monotonic() - started)
        if outage.retry_at:
            outage.answered()
        return cast(DBAPIConnection, connection)

    return do_connect


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
        hook = postgres_connection_hook(
            app.config["DB_STATEMENT_TIMEOUT_MS"], app.config["DB_LOCK_TIMEOUT_MS"]
        )
        if uses_psycopg(uri):
            outage = Outage(app.config["DB_REQUEST_TIMEOUT_MS"] / 1000)
            connection_class = type("BoundedConnection", (BoundedConnection,), {"outage": outage})
            connect_timeout = app.config["DB_CONNECT_TIMEOUT_SECONDS"]
            with app.app_context():
                sa.event.listen(
                    db.engine,
                    "do_connect",
                    connect_within_budget(connection_class, connect_timeout),
                )
    else:
        hook = None
    app.teardown_request(rollback_after_request)
    if hook is not None:
        with app.app_context():
            sa.event.listen(db.engine, "connect", hook)


def with_request_budget(app: Flask, wsgi_app: "WSGIApplication") -> "WSGIApplication":
    """The app's WSGI callable, each request given its database time on Postgres (SQLite,
    a local file, needs none: its own busy timeout bounds its one wait)."""
    if not uses_psycopg(app.config["SQLALCHEMY_DATABASE_URI"]):
        return wsgi_app
    return RequestBudget(wsgi_app, app.config["DB_REQUEST_TIMEOUT_MS"] / 1000)
