"""The service through a real PgBouncer (Debian's binary) in transaction pooling, as
`make cluster` runs it (its configuration comes from deploy/cluster.py): sign-up, log-in,
a race the contract lets one request win, the migrations of several instances starting at
once, no session state left on the server connections, and the 503 within 5 s while
PgBouncer is up and Postgres is not. PgBouncer's pool is kept small, so that the app's
connections share few server connections and trade them between transactions."""

import concurrent.futures
import contextlib
import importlib.util
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import time

import psycopg
import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from tests.api.test_races import (  # noqa: F401 - run here again, through PgBouncer
    owner,
    test_two_deletions_at_once_one_204_one_401_one_mail,
)
from tests.fixtures import empty_account_tables, migrate_database, running_in_ci
from tests.helpers import LOGIN_PATH, ME_PATH, ROOT, Api, at_once, bearer, free_port, signup_body
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

POOL_SIZE = 3  # server connections per PgBouncer: fewer than the app's threads below
CONTRACT_SECONDS = 5
ROUNDS = 8  # log-ins per thread: past psycopg's prepare_threshold (5) on each connection


def cluster_module():
    """deploy/cluster.py, loaded as `make cluster` runs it."""
    path = os.path.join(ROOT, "deploy", "cluster.py")
    spec = importlib.util.spec_from_file_location("lumyri_cluster", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CLUSTER = cluster_module()


def require_pgbouncer():
    """PgBouncer's binary: CI fails without it (.ci/run installs it), elsewhere skip."""
    if CLUSTER.pgbouncer_binary() is None:
        reason = "pgbouncer is not installed (.ci/run installs it: apt-get install pgbouncer)"
        if running_in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@contextlib.contextmanager
def fresh_database(server_url):
    """A database of its own on the test server (dropped afterwards); yields its URL."""
    name = f"lumyri_pgb_{secrets.token_hex(4)}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(server_url).set(database=name)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextlib.contextmanager
def pgbouncer(folder, target):
    """PgBouncer in transaction pooling in front of `target` (a database URL) on a free
    port, configured by deploy/cluster.py; yields the URL the service uses."""
    require_pgbouncer()
    folder.mkdir(exist_ok=True)
    port, password = free_port(), secrets.token_urlsafe(16)
    ini = CLUSTER.pgbouncer_config(str(folder), target, port, password, pool_size=POOL_SIZE)
    with open(folder / "pgbouncer.log", "w") as log:
        process = subprocess.Popen(CLUSTER.pgbouncer_command(ini), stdout=log, stderr=log)
    try:
        try:
            CLUSTER.wait_for_port(port, process, 20, "pgbouncer")
        except CLUSTER.Refusal as refusal:
            pytest.fail(f"{refusal}: {(folder / 'pgbouncer.log').read_text()}")
        yield CLUSTER.pgbouncer_url(target, port, password)
    finally:
        process.terminate()
        process.wait(timeout=20)


def pooled_app(url, **settings):
    """The app on a database behind PgBouncer, told so."""
    return create_app(
        {"SQLALCHEMY_DATABASE_URI": url, "DATABASE_POOLER": "transaction", **settings}
    )


def flask_env(url):
    """The environment of `flask db upgrade` run by an instance behind PgBouncer."""
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(
        APP_ENV="production",
        SECRET_KEY="pgbouncer-test-secret-key-0123456789abcdef",
        SMTP_URL="smtp://127.0.0.1:9",
        DATABASE_URL=url,
        DATABASE_POOLER="transaction",
    )
    return env


def migrate_through(url):
    """The app's migrations, through PgBouncer, as an instance behind it runs them."""
    app = pooled_app(url)
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="module")
def bounced(postgres_server, tmp_path_factory):
    """A migrated database of its own behind PgBouncer; yields the service's URL."""
    with fresh_database(postgres_server) as target:
        with pgbouncer(tmp_path_factory.mktemp("pgbouncer"), target) as url:
            migrate_through(url)
            yield url


@pytest.fixture
def app(bounced):
    """The app through PgBouncer (the suite's `app`, for the tests imported here)."""
    app = pooled_app(bounced)
    yield app
    with app.app_context():
        empty_account_tables()
        db.engine.dispose()


@pytest.fixture
def api(app):
    """The helper for the requests the tests repeat."""
    return Api(app.test_client())


def test_the_app_turns_off_prepared_statements_behind_a_transaction_pooler(app):
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]["prepare_threshold"] is None
    direct = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})
    assert "prepare_threshold" not in direct.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]


def test_sign_up_log_in_and_me_through_pgbouncer(app, api):
    """Many threads at once, each statement run more often than psycopg's threshold for
    preparing it (5), on fewer server connections than threads."""
    bodies = [signup_body() for _ in range(8)]
    signed = at_once(8, lambda i: api.signup("admin" if i % 2 else "customer", bodies[i]))
    assert [response.status_code for response in signed] == [201] * 8
    duplicate = api.signup("customer", bodies[0])
    assert duplicate.status_code == 409

    def log_in_and_read(index):
        client = app.test_client()
        body = bodies[index % 8]
        answers = []
        for _ in range(ROUNDS):
            login = client.post(
                LOGIN_PATH, json={"email": body["email"], "password": body["password"]}
            )
            answers.append(login.status_code)
            token = login.get_json()["data"]["access_token"]
            me = client.get(ME_PATH, headers=bearer(token))
            answers.append(me.status_code)
            assert me.get_json()["data"]["user"]["email"] == body["email"]
        return answers

    assert at_once(8, log_in_and_read) == [[200] * 2 * ROUNDS] * 8


def test_the_service_leaves_no_session_state_on_the_server_connections(app, api, bounced):
    """Each transaction sets its own limits (SET LOCAL); none is left on the server
    connections PgBouncer hands to the next client, and none holds a prepared statement."""
    at_once(6, lambda i: api.signup("customer", signup_body()))
    with app.app_context():
        with db.engine.begin() as connection:
            inside = [
                connection.exec_driver_sql(f"SHOW {name}").scalar()
                for name in ("statement_timeout", "lock_timeout")
            ]
    assert inside == ["3s", "2s"]
    plain = sa.make_url(bounced)
    seen = set()
    for _ in range(POOL_SIZE * 3):  # a plain client, over each server connection in turn
        with psycopg.connect(
            host=plain.host,
            port=plain.port,
            dbname=plain.database,
            user=plain.username,
            password=plain.password,
            autocommit=True,
        ) as connection:
            row = connection.execute(
                "SELECT current_setting('statement_timeout'), "
                "current_setting('lock_timeout'), "
                "(SELECT count(*) FROM pg_prepared_statements), pg_backend_pid()"
            ).fetchone()
        seen.add(row[3])
        assert row[:3] == ("0", "0", 0)
    assert seen  # at least one of the server connections the app used


def test_several_instances_migrating_at_once_through_pgbouncer(postgres_server, tmp_path):
    """Three `flask db upgrade` at once, through PgBouncer: all succeed, one migrates
    (a transaction-level advisory lock orders them), the others find nothing to do."""
    with fresh_database(postgres_server) as target, pgbouncer(tmp_path, target) as url:
        command = [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"]
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            runs = list(
                pool.map(
                    lambda _: subprocess.run(
                        command, cwd=ROOT, env=flask_env(url), capture_output=True, timeout=120
                    ),
                    range(3),
                )
            )
        for run in runs:
            assert run.returncode == 0, run.stderr.decode()[-2000:]
        engine = sa.create_engine(target)
        try:
            with engine.connect() as connection:
                versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
                assert len(versions.all()) == 1
                roles = connection.exec_driver_sql("SELECT count(*) FROM roles").scalar()
        finally:
            engine.dispose()
        assert roles == 2  # the system roles, seeded once


def timed(send):
    """(the answer, the seconds it took)."""
    started = time.monotonic()
    answer = send()
    return answer, time.monotonic() - started


def test_a_503_within_5_s_while_pgbouncer_is_up_and_postgres_is_not(postgres_server, tmp_path):
    """PgBouncer in front of a TCP proxy to Postgres; the proxy is cut (Postgres
    unreachable: refused), then silenced (a partition): every request, on pooled
    connections and on new ones, is a 503 SERVICE_UNAVAILABLE within the contract's 5 s."""
    with fresh_database(postgres_server) as target:
        migrate_database(target.render_as_string(hide_password=False))
        proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
        try:
            behind = target.set(host="127.0.0.1", port=proxy.port)
            with pgbouncer(tmp_path, behind) as url:
                app = pooled_app(url)
                client = app.test_client()
                assert Api(client).signup("customer", signup_body()).status_code == 201
                for outage in (proxy.cut, proxy.partition):
                    outage()
                    for send in (
                        lambda: client.get("/readyz"),
                        lambda: Api(client).signup("customer", signup_body()),
                        lambda: pooled_app(url).test_client().get("/readyz"),  # a new pool
                    ):
                        answer, seconds = timed(send)
                        assert answer.status_code == 503, answer.get_data(as_text=True)
                        assert answer.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE"
                        assert seconds < CONTRACT_SECONDS
                    proxy.restore()
                    deadline = time.monotonic() + 15
                    while client.get("/readyz").status_code != 200:
                        assert time.monotonic() < deadline, "no recovery after the outage"
                        time.sleep(0.5)
                with app.app_context():
                    db.engine.dispose()
        finally:
            proxy.close()


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({}, "DATABASE_URL must be set to a Postgres URL"),
        ({"DATABASE_URL": "sqlite:///x.db"}, "DATABASE_URL must be a Postgres URL"),
        ({"DATABASE_URL": "postgresql://u@h/d"}, "RATELIMIT_STORAGE_URI must be a Redis URL"),
        (
            {"DATABASE_URL": "postgresql://u@h/d", "RATELIMIT_STORAGE_URI": "memory://"},
            "RATELIMIT_STORAGE_URI must be a Redis URL",
        ),
        (
            {
                "DATABASE_URL": "postgresql://u@h/d",
                "RATELIMIT_STORAGE_URI": "redis://r",
                "CLUSTER_INSTANCES": "0",
            },
            "CLUSTER_INSTANCES must be a positive integer",
        ),
    ],
)
def test_make_cluster_refuses_with_one_line(settings, reason):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "RATELIMIT_STORAGE_URI", "CLUSTER_INSTANCES")
    }
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "deploy", "cluster.py")],
        env={**env, **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"cluster: refusing to start: {reason}"), line


def test_pgbouncers_configuration():
    """Transaction pooling, loopback only, no unix socket, SCRAM against a file of one
    user with the run's password, the server's own credentials in the database line."""
    target = CLUSTER.postgres_target("postgres://lumyri:s3cret@db.internal:5433/accounts")
    with pytest.raises(CLUSTER.Refusal, match="options cannot go through PgBouncer"):
        CLUSTER.postgres_target("postgresql://u@h/d?options=-csearch_path%3Dx")
    with tempfile.TemporaryDirectory() as folder:
        ini = CLUSTER.pgbouncer_config(folder, target, 6543, "client-pass", pool_size=7)
        text = pathlib.Path(ini).read_text()
        users = (pathlib.Path(folder) / "pgbouncer-users.txt").read_text()
        modes = {os.stat(os.path.join(folder, name)).st_mode & 0o777 for name in os.listdir(folder)}
    assert (
        "accounts = host='db.internal' port='5433' dbname='accounts' user='lumyri' "
        "password='s3cret'\n" in text
    )
    for line in (
        "pool_mode = transaction",
        "listen_addr = 127.0.0.1",
        "listen_port = 6543",
        "unix_socket_dir = ",
        "auth_type = scram-sha-256",
        "default_pool_size = 7",
    ):
        assert line + "\n" in text, line
    assert users == '"lumyri" "client-pass"\n'
    assert modes == {0o600}
    url = sa.make_url(CLUSTER.pgbouncer_url(target, 6543, "client-pass"))
    assert (url.drivername, url.host, url.port, url.database, url.username, url.password) == (
        "postgresql+psycopg",
        "127.0.0.1",
        6543,
        "accounts",
        "lumyri",
        "client-pass",
    )
