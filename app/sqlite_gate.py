"""SQLite's write gate: one writer at a time at a SQLite file, queued instead of polled.

A speed device with one small interface: `gated(path, timeout)` gives the connection
class (sqlite3's `factory`) whose writes pass the gate first; app.database installs it.
Why it exists, and what it measured: bench/README.md ("SQLite's write gate"); it is one
of the departures from Flask idiom listed in docs/design.md.
"""

import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

LOCK_FILE_MODE = 0o600  # the lock file beside the database: its owner's only

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
    holder needs. Under load the service's threads slept there more than they worked
    (bench/README.md, "Figures behind the code's choices"). The
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
                    self._file = os.open(self.lock_path, flags, LOCK_FILE_MODE)
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


def gated(database_path: str | None, timeout_seconds: float) -> type[GatedConnection]:
    """The connection class for one SQLite database: its gate's lock file sits beside the
    database file (None for an in-memory database: the process's lock alone)."""
    lock_path = None if database_path is None else database_path + "-gate"
    gate = WriteGate(lock_path, timeout_seconds)
    return type("GatedConnection", (GatedConnection,), {"gate": gate})
