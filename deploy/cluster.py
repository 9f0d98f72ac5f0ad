"""`make cluster`: several instances of the service behind the gateway, on PgBouncer, on
one machine, in the foreground until SIGTERM or Ctrl-C stops all of it.

- PgBouncer (Debian's package) in transaction pooling on 127.0.0.1:$PGBOUNCER_PORT (6432)
  in front of the Postgres of DATABASE_URL (which must be Postgres); its clients log in
  with a password made for this run (SCRAM), so only the instances reach the database
  through it;
- the migrations, once, through PgBouncer, before any instance starts;
- CLUSTER_INSTANCES (3) gunicorn instances on 127.0.0.1:$PORT, $PORT+1, ... (from 8000),
  with DATABASE_URL pointed at PgBouncer, DATABASE_POOLER=transaction, TRUSTED_PROXIES=1
  (the gateway alone reaches them) and every other setting as given (RATELIMIT_STORAGE_URI
  must be Redis: the limits are counted across instances); an instance that exits (a
  crash, a SIGKILL) is started again;
- the gateway (deploy/nginx/gateway.py) on $GATEWAY_PORT (8080), GATEWAY_UPSTREAMS set to
  the instances.

The functions that write PgBouncer's configuration are used by the tests too
(tests/system/test_pgbouncer.py).
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import sqlalchemy as sa  # noqa: E402

from config import normalise_database_url  # noqa: E402

DEFAULTS = {"CLUSTER_INSTANCES": "3", "PORT": "8000", "PGBOUNCER_PORT": "6432"}
GATEWAY_DEFAULT_PORT = "8080"
RESTART_DELAY_SECONDS = 1.0
STOP_SECONDS = 25  # gunicorn's graceful_timeout is 20 s
READY_SECONDS = 60
# Who PgBouncer runs as when started by root (it refuses to run as root).
PGBOUNCER_USER = "nobody"


class Refusal(Exception):
    """A setting the cluster cannot run with; the message is one line."""


def log(message):
    """One line on stderr."""
    print(f"cluster: {message}", file=sys.stderr, flush=True)


# PgBouncer


def postgres_target(database_url):
    """The Postgres server and database DATABASE_URL names (a SQLAlchemy URL)."""
    url = sa.make_url(normalise_database_url(database_url) or "sqlite://")
    if url.get_backend_name() != "postgresql":
        raise Refusal("DATABASE_URL must be a Postgres URL (postgresql://...)")
    if not url.database or not url.username:
        raise Refusal("DATABASE_URL must name the user and the database")
    if set(url.query) - {"sslmode"}:
        raise Refusal(
            "DATABASE_URL's options cannot go through PgBouncer: "
            + ", ".join(sorted(set(url.query) - {"sslmode"}))
        )
    return url


def _connstring_value(name, value):
    """A value of PgBouncer's [databases] line, single-quoted."""
    if any(char in str(value) for char in "'\\\n"):
        raise Refusal(f"DATABASE_URL's {name} cannot be written in PgBouncer's configuration")
    return f"'{value}'"


def pgbouncer_config(runtime_dir, target, port, client_password, pool_size=20):
    """Write pgbouncer.ini and its users file (0600) into runtime_dir; the ini's path.
    `target`: postgres_target's URL. Clients log in as the target's user with
    client_password; PgBouncer logs in to Postgres with the target's own credentials."""
    if '"' in target.username:
        raise Refusal("DATABASE_URL's user cannot be written in PgBouncer's users file")
    entry = {
        "host": target.host or "127.0.0.1",
        "port": target.port or 5432,
        "dbname": target.database,
        "user": target.username,
    }
    if target.password:
        entry["password"] = target.password
    line = " ".join(f"{key}={_connstring_value(key, value)}" for key, value in entry.items())
    users = os.path.join(runtime_dir, "pgbouncer-users.txt")
    ini = os.path.join(runtime_dir, "pgbouncer.ini")
    settings = {
        "listen_addr": "127.0.0.1",
        "listen_port": port,
        "unix_socket_dir": "",
        "auth_type": "scram-sha-256",
        "auth_file": users,
        "pool_mode": "transaction",
        "default_pool_size": pool_size,
        "max_client_conn": 2000,
        # The instances bound every wait themselves (DB_REQUEST_TIMEOUT_MS); these only
        # keep PgBouncer from holding on to a server that went away.
        "server_connect_timeout": 3,
        "server_login_retry": 1,
        "query_wait_timeout": 30,
        "ignore_startup_parameters": "extra_float_digits",
        "log_connections": 0,
        "log_disconnections": 0,
    }
    text = "[databases]\n"
    text += f"{target.database} = {line}\n\n[pgbouncer]\n"
    text += "".join(f"{key} = {value}\n" for key, value in settings.items())
    for path, content in ((users, f'"{target.username}" "{client_password}"\n'), (ini, text)):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
    return ini


def pgbouncer_binary():
    """pgbouncer on PATH, or where Debian puts it."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")


def pgbouncer_command(ini):
    """PgBouncer in the foreground (it will not run as root: then as PGBOUNCER_USER)."""
    binary = pgbouncer_binary()
    if binary is None:
        raise Refusal("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    user = ["-u", PGBOUNCER_USER] if os.geteuid() == 0 else []
    return [binary, *user, ini]


def pgbouncer_url(target, port, client_password):
    """The URL the instances use: the same user and database, through PgBouncer."""
    return target.set(
        drivername="postgresql+psycopg",
        host="127.0.0.1",
        port=port,
        password=client_password,
        query={},
    ).render_as_string(hide_password=False)


def port_free(port):
    """Whether nothing listens on 127.0.0.1:port (nor holds it)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for_port(port, process, seconds, what):
    """Wait until something listens on 127.0.0.1:port (or the process exits)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Refusal(f"{what} exited at start (status {process.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise Refusal(f"{what} is not listening on port {port} after {seconds} s")


# The cluster


def settings(environ):
    """The cluster's own settings, checked: (instances, first port, PgBouncer's port,
    the gateway's port, the Postgres target)."""
    values = {name: environ.get(name) or default for name, default in DEFAULTS.items()}
    numbers = {}
    for name, value in values.items():
        if not value.isdigit() or int(value) < 1:
            raise Refusal(f"{name} must be a positive integer, got {value!r}")
        numbers[name] = int(value)
    gateway_port = environ.get("GATEWAY_PORT") or GATEWAY_DEFAULT_PORT
    if not gateway_port.isdigit():
        raise Refusal(f"GATEWAY_PORT must be a port number, got {gateway_port!r}")
    database_url = environ.get("DATABASE_URL")
    if not database_url:
        raise Refusal("DATABASE_URL must be set to a Postgres URL (postgresql://...)")
    target = postgres_target(database_url)
    storage = (environ.get("RATELIMIT_STORAGE_URI") or "").strip()
    if not storage.startswith(("redis://", "rediss://", "redis+unix://")):
        raise Refusal("RATELIMIT_STORAGE_URI must be a Redis URL (redis://...)")
    last_port = numbers["PORT"] + numbers["CLUSTER_INSTANCES"] - 1
    if last_port > 65535:
        raise Refusal(f"PORT + CLUSTER_INSTANCES - 1 is past 65535 ({last_port})")
    return (
        numbers["CLUSTER_INSTANCES"],
        numbers["PORT"],
        numbers["PGBOUNCER_PORT"],
        int(gateway_port),
        target,
    )


class Cluster:
    """The processes of one `make cluster`, and their supervision."""

    def __init__(self, environ):
        count, first_port, pgbouncer_port, gateway_port, target = settings(environ)
        self.environ = dict(environ)
        self.ports = [first_port + number for number in range(count)]
        self.pgbouncer_port = pgbouncer_port
        self.gateway_port = gateway_port
        self.target = target
        self.runtime = tempfile.mkdtemp(prefix="lumyri-cluster-")
        self.client_password = secrets.token_urlsafe(24)
        self.pgbouncer = None
        self.gateway = None
        self.instances = {}  # port -> Popen
        self.stopping = False

    def instance_env(self, port=None):
        """An instance's environment: what was given, and what the cluster decides."""
        env = {
            key: value
            for key, value in self.environ.items()
            if key not in ("PROMETHEUS_MULTIPROC_DIR", "GATEWAY_UPSTREAMS")
        }
        env.update(
            DATABASE_URL=pgbouncer_url(self.target, self.pgbouncer_port, self.client_password),
            DATABASE_POOLER="transaction",
            HOST="127.0.0.1",
            TRUSTED_PROXIES="1",
        )
        if port is not None:
            env["PORT"] = str(port)
        return env

    def start_pgbouncer(self):
        ini = pgbouncer_config(self.runtime, self.target, self.pgbouncer_port, self.client_password)
        self.pgbouncer = subprocess.Popen(pgbouncer_command(ini), start_new_session=True)
        wait_for_port(self.pgbouncer_port, self.pgbouncer, 20, "pgbouncer")
        log(
            f"pgbouncer (transaction pooling) on 127.0.0.1:{self.pgbouncer_port} in front of "
            f"{self.target.host or '127.0.0.1'}:{self.target.port or 5432}/{self.target.database}"
        )

    def migrate(self):
        log("migrating the database (once, through pgbouncer)")
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=self.instance_env(),
            check=False,
        )
        if done.returncode != 0:
            raise Refusal(f"the migrations failed (status {done.returncode})")

    def start_instance(self, port):
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=self.instance_env(port),
            start_new_session=True,  # its own group: a signal to it reaches its workers
        )
        self.instances[port] = process
        log(f"instance on 127.0.0.1:{port}: pid {process.pid}")

    def start_gateway(self):
        env = dict(self.environ)
        runtime = os.path.join(self.runtime, "gateway")
        os.mkdir(runtime, 0o700)
        env.update(
            GATEWAY_UPSTREAMS=",".join(f"127.0.0.1:{port}" for port in self.ports),
            GATEWAY_PORT=str(self.gateway_port),
            GATEWAY_RUNTIME_DIR=runtime,
        )
        self.gateway = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "nginx", "gateway.py")],
            env=env,
            start_new_session=True,
        )
        wait_for_port(self.gateway_port, self.gateway, 20, "the gateway")
        log(f"gateway on port {self.gateway_port}, over {env['GATEWAY_UPSTREAMS']}")

    def start(self):
        for port in (self.pgbouncer_port, *self.ports, self.gateway_port):
            if not port_free(port):
                raise Refusal(f"port {port} is in use on 127.0.0.1")
        self.start_pgbouncer()
        self.migrate()
        for port in self.ports:
            self.start_instance(port)
        for port in self.ports:
            wait_for_port(port, self.instances[port], READY_SECONDS, f"the instance on {port}")
        self.start_gateway()
        log(f"ready: http://127.0.0.1:{self.gateway_port}/ (SIGTERM or Ctrl-C stops all)")

    def supervise(self):
        """Until stopped: start again an instance that exited; stop all if PgBouncer or
        the gateway did."""
        while not self.stopping:
            for name, process in (("pgbouncer", self.pgbouncer), ("the gateway", self.gateway)):
                if process.poll() is not None:
                    raise Refusal(f"{name} exited (status {process.returncode})")
            for port, process in list(self.instances.items()):
                if process.poll() is not None and not self.stopping:
                    # Its workers were in its process group: none is left serving.
                    _signal_group(process, signal.SIGKILL)
                    log(
                        f"instance on 127.0.0.1:{port} exited (status {process.returncode}); "
                        "starting it again"
                    )
                    time.sleep(RESTART_DELAY_SECONDS)
                    self.start_instance(port)
            time.sleep(0.2)

    def stop(self):
        """Everything down: the gateway, the instances (gracefully), PgBouncer."""
        self.stopping = True
        groups = [[self.gateway], list(self.instances.values()), [self.pgbouncer]]
        for group in groups:
            processes = [process for process in group if process is not None]
            for process in processes:
                if process.poll() is None:
                    _signal_group(process, signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS
            for process in processes:
                try:
                    process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(process, signal.SIGKILL)
                    process.wait()
        shutil.rmtree(self.runtime, ignore_errors=True)


def _signal_group(process, signum):
    """Signal a child's whole process group (each child leads its own)."""
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def main():
    try:
        cluster = Cluster(os.environ)
    except Refusal as refusal:
        raise SystemExit(f"cluster: refusing to start: {refusal}") from None

    def stop_on(signum, _frame):
        cluster.stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on)
    signal.signal(signal.SIGINT, stop_on)
    status = 0
    try:
        cluster.start()
        cluster.supervise()
    except KeyboardInterrupt:
        log("stopping")
    except Refusal as refusal:
        log(f"stopping: {refusal}")
        status = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        cluster.stop()
    log("stopped")
    sys.exit(status)


if __name__ == "__main__":
    main()
