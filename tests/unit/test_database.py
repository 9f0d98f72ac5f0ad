"""Per-connection database settings: what keeps writers from failing or waiting forever."""

import errno
import multiprocessing
import os
import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db


@pytest.fixture
def engine_of():
    """Build an app on a URL and hand out its engine (disposed afterwards)."""
    apps = []

    def build(url):
        app = create_app({"SQLALCHEMY_DATABASE_URI": url})
        apps.append(app)
        with app.app_context():
            return app, db.engine

    yield build
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def test_sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys(engine_of, sqlite_database):
    app, engine = engine_of(sqlite_database)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert busy == app.config["SQLITE_BUSY_TIMEOUT_MS"]
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


@pytest.mark.postgres
def test_postgres_connections_bound_every_wait(engine_of, postgres_database):
    app, engine = engine_of(postgres_database)
    with engine.connect() as connection:
        statement = connection.execute(sa.text("SHOW statement_timeout")).scalar()
        lock = connection.execute(sa.text("SHOW lock_timeout")).scalar()
    assert statement == f"{app.config['DB_STATEMENT_TIMEOUT_MS'] // 1000}s"
    assert lock == f"{app.config['DB_LOCK_TIMEOUT_MS'] // 1000}s"


# SQLite's write gate (app/sqlite_gate.py): writers queue in the process, and between
# processes on a lock file, instead of sleeping in SQLite's busy handler.

GATE_SECONDS = 0.3
SQLITE_WAIT_SECONDS = 30  # what a writer would wait in SQLite itself, without the gate


@pytest.fixture
def gated_file(tmp_path):
    """A SQLite file with a table, and a function opening gated connections to it."""
    from app.sqlite_gate import gated

    path = str(tmp_path / "gate.db")
    connection_class = gated(path, GATE_SECONDS)
    opened = []

    def connect():
        connection = sqlite3.connect(
            path, timeout=SQLITE_WAIT_SECONDS, factory=connection_class, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode=WAL")
        opened.append(connection)
        return connection

    setup = connect()
    setup.cursor().execute("CREATE TABLE t (x INTEGER)")
    setup.commit()
    yield path, connect
    for connection in opened:
        connection.close()


def _timed_write(connection, value=1):
    """INSERT a row: the error (or None) and the seconds it took."""
    started = time.monotonic()
    try:
        connection.cursor().execute("INSERT INTO t VALUES (?)", (value,))
    except sqlite3.OperationalError as error:
        return str(error), time.monotonic() - started
    return None, time.monotonic() - started


def test_the_apps_sqlite_connections_pass_the_write_gate(engine_of, sqlite_database):
    from app.sqlite_gate import GatedConnection

    app, engine = engine_of(sqlite_database)
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert isinstance(raw, GatedConnection)
        assert raw.gate.timeout == app.config["SQLITE_BUSY_TIMEOUT_MS"] / 1000
        assert raw.gate.lock_path == sqlite_database.removeprefix("sqlite:///") + "-gate"


def test_a_writer_holds_the_gate_from_its_first_write_to_its_end(gated_file):
    _, connect = gated_file
    connection = connect()
    cursor = connection.cursor()
    cursor.execute("SELECT count(*) FROM t")
    assert connection.held is None  # a read passes freely
    cursor.execute("INSERT INTO t VALUES (1)")
    assert connection.held is not None
    connection.commit()
    assert connection.held is None
    cursor.execute("  update t SET x = 2")  # any spelling of a write
    connection.rollback()
    assert connection.held is None
    cursor.execute("DELETE FROM t")
    connection.close()
    assert connection.held is None


def test_a_second_writer_waits_at_the_gate_and_gets_sqlites_error_in_bounded_time(
    gated_file,
):
    _, connect = gated_file
    first, second = connect(), connect()
    assert _timed_write(first)[0] is None
    assert second.cursor().execute("SELECT count(*) FROM t").fetchone() == (0,)  # reads pass
    error, seconds = _timed_write(second)
    assert error == "database is locked"
    assert GATE_SECONDS <= seconds < SQLITE_WAIT_SECONDS / 2  # the gate's bound, not SQLite's
    first.commit()
    error, _ = _timed_write(second, 2)
    assert error is None
    second.commit()
    assert first.cursor().execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,)]


def test_a_queued_writer_goes_through_as_soon_as_the_holder_commits(gated_file):
    _, connect = gated_file
    first, second = connect(), connect()
    _timed_write(first)
    outcome = []
    waiter = threading.Thread(target=lambda: outcome.append(_timed_write(second, 2)))
    waiter.start()
    time.sleep(GATE_SECONDS / 3)
    first.commit()
    waiter.join(10)
    ((error, _),) = outcome
    assert error is None
    second.commit()


def _write_in_child(path, results):
    """Another process's writer (a gunicorn worker's, say): its error or None."""
    from app.sqlite_gate import gated

    connection = sqlite3.connect(
        path, timeout=SQLITE_WAIT_SECONDS, factory=gated(path, GATE_SECONDS)
    )
    results.put(_timed_write(connection, 3))
    connection.commit()
    connection.close()


def test_writers_of_two_processes_queue_on_the_lock_file(gated_file):
    path, connect = gated_file
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    holder = connect()
    _timed_write(holder)
    child = context.Process(target=_write_in_child, args=(path, results))
    child.start()
    error, seconds = results.get(timeout=SQLITE_WAIT_SECONDS)
    child.join(10)
    assert error == "database is locked"
    assert seconds < SQLITE_WAIT_SECONDS / 2  # it waited at the gate, not in SQLite
    holder.commit()
    child = context.Process(target=_write_in_child, args=(path, results))
    child.start()
    assert results.get(timeout=SQLITE_WAIT_SECONDS)[0] is None
    child.join(10)
    assert os.stat(path + "-gate").st_mode & 0o777 == 0o600


def test_after_a_fork_the_child_has_a_gate_of_its_own(gated_file):
    _, connect = gated_file
    holder = connect()
    _timed_write(holder)  # held at the fork
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def child_writes():
        holder.gate.release(holder.held)  # the parent's pass: nothing to let go here
        other = connect()
        results.put(_timed_write(other, 4))  # the parent still holds the file's lock

    child = context.Process(target=child_writes)
    child.start()
    error, seconds = results.get(timeout=SQLITE_WAIT_SECONDS)
    child.join(10)
    assert error == "database is locked" and seconds < SQLITE_WAIT_SECONDS / 2
    holder.commit()


def test_without_a_lock_file_the_process_lock_still_queues_writers(tmp_path, caplog):
    from app.sqlite_gate import WriteGate

    gate = WriteGate(str(tmp_path / "missing" / "db-gate"), GATE_SECONDS)
    held = gate.acquire()
    assert gate.lock_path is None  # the folder does not exist: no lock file
    assert "no SQLite write gate between processes" in caplog.text
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        gate.acquire()
    gate.release(held)
    gate.release(gate.acquire())


def test_a_passing_shortage_skips_the_lock_file_once(tmp_path, monkeypatch):
    from app.sqlite_gate import WriteGate

    path = str(tmp_path / "db-gate")
    gate = WriteGate(path, GATE_SECONDS)
    real_open = os.open

    def out_of_descriptors(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(os, "open", out_of_descriptors)
    gate.release(gate.acquire())
    assert gate.lock_path == path  # tried again next time
    monkeypatch.setattr(os, "open", real_open)
    gate.release(gate.acquire())
    assert os.path.exists(path)


@pytest.mark.parametrize(
    "statement",
    [
        "/* a comment */ INSERT INTO t VALUES (1)",
        "-- a comment\n  insert into t values (1)",
        "WITH v(x) AS (SELECT 1) INSERT INTO t SELECT x FROM v",
        "REPLACE INTO t VALUES (1)",
    ],
)
def test_every_spelling_of_a_write_passes_the_gate(gated_file, statement):
    _, connect = gated_file
    connection = connect()
    passes = []
    real_acquire = connection.gate.acquire

    def acquire():
        passes.append(statement)
        return real_acquire()

    connection.gate.acquire = acquire
    connection.cursor().execute(statement)
    assert passes == [statement]  # the gate was passed for the write (WITH ... INSERT too)
    # sqlite3 opens no transaction for a statement that begins with WITH: the write ends
    # with its statement and the gate is let go at once; the others hold it until commit.
    assert connection.in_transaction == (connection.held is not None)
    assert connection.in_transaction != statement.startswith("WITH")
    connection.commit()
    assert connection.held is None
    assert connection.execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_a_read_with_a_with_clause_lets_go_of_the_gate_at_once(gated_file):
    _, connect = gated_file
    connection = connect()
    assert connection.cursor().execute("WITH v(x) AS (SELECT 1) SELECT x FROM v").fetchall()
    assert connection.held is None


def test_the_connections_shortcuts_pass_the_gate(gated_file):
    _, connect = gated_file
    connection = connect()
    connection.execute("INSERT INTO t VALUES (1)")
    assert connection.held is not None
    connection.commit()
    connection.executemany("INSERT INTO t VALUES (?)", [(2,), (3,)])
    assert connection.held is not None
    connection.rollback()
    connection.executescript("BEGIN; INSERT INTO t VALUES (4); COMMIT;")
    assert connection.held is None
    assert connection.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (4,)]


def test_the_gate_and_sqlite_share_one_busy_timeout(gated_file):
    """A writer that waited at the gate waits in SQLite only what is left of the busy
    timeout (here a writer that bypassed the gate holds SQLite's lock)."""
    path, connect = gated_file
    budget = 2.0
    from app.sqlite_gate import gated

    writer = sqlite3.connect(path, timeout=budget, factory=gated(path, budget))
    bypass = sqlite3.connect(path, isolation_level=None)
    bypass.execute("BEGIN IMMEDIATE")  # SQLite's write lock, without the gate
    held = writer.gate.acquire()  # and the gate, taken by "another writer"
    threading.Timer(budget * 0.6, writer.gate.release, args=(held,)).start()
    error, seconds = _timed_write(writer)
    assert error == "database is locked"
    assert seconds < budget * 1.35  # not the gate's 1.2 s and then SQLite's whole 2 s
    writer.rollback()
    assert writer.execute("PRAGMA busy_timeout").fetchone() == (int(budget * 1000),)
    bypass.execute("ROLLBACK")
    writer.close()
    bypass.close()


def test_a_relative_sqlite_file_is_in_the_instance_folder():
    from app.database import sqlite_file

    assert sqlite_file("sqlite:///lumyri.db", "/srv/instance") == "/srv/instance/lumyri.db"
    assert sqlite_file("sqlite:////data/lumyri.db", "/srv/instance") == "/data/lumyri.db"
    assert sqlite_file("sqlite://", "/srv/instance") is None
    assert sqlite_file("sqlite:///:memory:", "/srv/instance") is None
