"""Postgres: a budget of database time per request, and the outage that answers at once.

A reliability device with one small interface: `install(app)` puts the bounded
connection class and its connect hook on the app's engine, `with_request_budget(app,
wsgi_app)` gives each request its time, `budget(seconds)` does the same for work outside
a request (the mail sender's rounds). app.database calls the first two.
"""

import contextlib
import logging
import math
import os
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


def with_request_budget(app: Flask, wsgi_app: "WSGIApplication") -> "WSGIApplication":
    """The app's WSGI callable, each request given its database time on Postgres (SQLite,
    a local file, needs none: its own busy timeout bounds its one wait)."""
    if not uses_psycopg(app.config["SQLALCHEMY_DATABASE_URI"]):
        return wsgi_app
    return RequestBudget(wsgi_app, app.config["DB_REQUEST_TIMEOUT_MS"] / 1000)


def install(app: Flask) -> None:
    """Every connection of the app's engine (psycopg 3 only) bounded by the budget, with
    one Outage per app and process."""
    if not uses_psycopg(app.config["SQLALCHEMY_DATABASE_URI"]):
        return
    outage = Outage(app.config["DB_REQUEST_TIMEOUT_MS"] / 1000)
    connection_class = type("BoundedConnection", (BoundedConnection,), {"outage": outage})
    connect_timeout = app.config["DB_CONNECT_TIMEOUT_SECONDS"]
    with app.app_context():
        sa.event.listen(
            db.engine, "do_connect", connect_within_budget(connection_class, connect_timeout)
        )
