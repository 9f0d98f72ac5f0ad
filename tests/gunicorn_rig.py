"""Running the real service under gunicorn for end-to-end tests: migrate, serve, talk."""

import contextlib
import http.client
import json
import os
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, free_port

SECRET_KEY = "e2e-secret-key-that-is-long-enough-0123456789"
WORKERS = 3  # several worker processes, so races cross process boundaries


def server_env(database_url, port, **extra):
    """The environment an operator would give the service."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env.update(
        APP_ENV="production",
        # Nothing listens there: mails stay in the outbox (the mail tests bring a server).
        SMTP_URL="smtp://127.0.0.1:9",
        DATABASE_URL=database_url,
        SECRET_KEY=SECRET_KEY,
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY=str(WORKERS),
        # A test rig: bursts from one address (the limits have their own tests).
        RATELIMIT_ENABLED="false",
        # The OWASP profile keeps the bursts quick; the defaults are tested elsewhere.
        ARGON2_TIME_COST="2",
        ARGON2_MEMORY_COST="19456",
        ARGON2_PARALLELISM="1",
    )
    env.update(extra)
    return env


class Server:
    """A gunicorn server on loopback, and a few ways to talk to it."""

    def __init__(self, port, database_url, log_path):
        self.port = port
        self.database_url = database_url
        self.log_path = log_path
        self.base_url = f"http://127.0.0.1:{port}"

    def request(self, method, path, body=None, headers=None):
        """Send one request on a new connection; return (status, headers, parsed JSON)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
            return response.status, response.headers, json.loads(raw) if raw else None
        finally:
            connection.close()

    def post_json(self, path, payload):
        """POST a JSON body."""
        return self.request(
            "POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"}
        )


def wait_until_ready(process, server, seconds=30):
    """Poll /readyz until the server answers 200 (or fail with its output)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited: {server.log_path.read_text()}")
        try:
            if server.request("GET", "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail("gunicorn did not become ready in time")


def migrate(env):
    """`flask db upgrade`, as an operator runs it before starting gunicorn."""
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


@contextlib.contextmanager
def run_server(database_url, log_folder, migrate_first=True, **settings):
    """Serve the database with gunicorn on a free loopback port until the block ends."""
    port = free_port()
    env = server_env(database_url, port, **settings)
    if migrate_first:
        migrate(env)
    log_path = log_folder / f"gunicorn-{port}.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    server = Server(port, database_url, log_path)
    try:
        wait_until_ready(process, server)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
