"""Losing an instance loses nothing: `make cluster`'s script (deploy/cluster.py) runs three
instances of two workers behind the gateway, on PgBouncer, Postgres and Redis, mailing to
an SMTP sink. Clients sign up through the gateway, each retrying with its own
Idempotency-Key until it has its answer; one instance is killed (SIGKILL, its whole
process group) mid-run and the cluster starts it again. Afterwards every client has
exactly one account and one verification mail, the only 5xx answers were the gateway's
502/504 for requests in flight on the killed instance, and a limit counted in Redis
stayed exact across the loss and the restart.

One failure is not a 502: an instance killed after it sent its answer's header and before
its body reached nginx leaves the client a cut answer (nginx has passed the header on and
cannot send a 502 any more). The clients count it, like a 502, as no answer, and the test
checks that it too was in flight on the killed instance."""

import collections
import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import sqlalchemy as sa

from tests.fixtures import running_in_ci
from tests.helpers import ROOT, SIGNUP_PATHS, fresh_email, signup_body
from tests.smtp_server import SmtpServer
from tests.system.test_gateway import gateway_module
from tests.system.test_pgbouncer import CLUSTER, fresh_database, require_pgbouncer

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

INSTANCES = 3
WORKERS = 2  # per instance
CLIENTS = 20  # concurrent clients
ACCOUNTS_PER_CLIENT = 12  # sign-ups each client makes in turn, each with its own key
KILL_AFTER = 60  # accounts answered before the kill
# The limit checked for exactness: one client address signs up LIMIT - 5 times before
# the loss and 10 times after the restart: exactly 5 of those get 429.
LIMIT = 25
PROBE_ADDRESS = "127.0.0.250"
MAIL_SECONDS = 60  # the contract: every committed change's mail within a minute
INSTANCE_LINE = re.compile(r"cluster: instance on 127\.0\.0\.1:(\d+): pid (\d+)")
VERIFY_URL = "http://verify.test/verify-email?token={token}"


def require_nginx():
    """nginx's binary: CI fails without it, elsewhere skip."""
    if gateway_module().nginx_binary() is None:
        reason = "nginx is not installed (.ci/run installs it: apt-get install nginx)"
        if running_in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def free_ports(count):
    """The first of `count` consecutive free loopback ports, below the kernel's ephemeral
    range (a port from that range may be taken meanwhile as the source port of one of the
    many connections this test makes, before the cluster listens on it)."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
        ephemeral = int(handle.read().split()[0])
    for _ in range(200):
        first = random.randrange(10000, ephemeral - count)
        if all(CLUSTER.port_free(first + n) for n in range(count)):
            return first
    pytest.fail("no run of free ports")


class Cluster:
    """deploy/cluster.py running in a subprocess, its output in a file."""

    def __init__(self, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "deploy", "cluster.py")],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self):
        return self.log_path.read_text(errors="replace")

    def instance_pids(self):
        """port -> the pid of the instance's gunicorn master, the latest started."""
        return {int(port): int(pid) for port, pid in INSTANCE_LINE.findall(self.output())}

    def wait_ready(self, seconds=90):
        deadline = time.monotonic() + seconds
        while "cluster: ready" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the cluster did not start:\n{self.output()[-5000:]}")
            time.sleep(0.2)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def post(port, path, body, headers, source):
    """One request to the gateway from a loopback address: (status, headers, body)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=60, source_address=(source, 0)
    )
    try:
        connection.request(
            "POST", path, json.dumps(body).encode(), {"Content-Type": "application/json", **headers}
        )
        response = connection.getresponse()
        raw = response.read()
        return response.status, response.headers, json.loads(raw) if raw else None
    finally:
        connection.close()


Attempt = collections.namedtuple("Attempt", "status code started ended")


def sign_up_until_answered(port, kind, body, source):
    """Sign up with one Idempotency-Key until the answer is the account (201), retrying
    the gateway's 502/504, a connection cut mid-answer and a key still in progress (after
    its Retry-After, at most 2 s); every attempt made."""
    key = str(uuid.uuid4())
    attempts = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            status, headers, answer = post(
                port, SIGNUP_PATHS[kind], body, {"Idempotency-Key": key}, source
            )
        except (OSError, http.client.HTTPException) as error:
            # The instance died while nginx was passing its answer on (the header was
            # sent, the body cut): no answer, as for a 502; retried the same way.
            attempts.append(Attempt(None, type(error).__name__, started, time.monotonic()))
            time.sleep(0.2)
            continue
        code = (answer or {}).get("error") and answer["error"]["code"]
        attempts.append(Attempt(status, code, started, time.monotonic()))
        if status == 201:
            assert answer["data"]["user"]["email"] == body["email"]
            return attempts
        if status in (502, 504):
            assert code == "SERVICE_UNAVAILABLE", answer
            time.sleep(0.2)
        elif status == 409 and code == "IDEMPOTENCY_KEY_IN_PROGRESS":
            time.sleep(min(2.0, float(headers.get("Retry-After") or 1)))
        else:
            return attempts  # any other answer is final (and the checks below fail)
    return attempts


class Received:
    """When the SMTP sink accepted each mail, and for whom."""

    def __init__(self, smtp):
        self.mails = []  # (monotonic time, recipients)
        accept = smtp.recorder.handle_DATA

        async def timed(server, session, envelope):
            answer = await accept(server, session, envelope)
            if answer.startswith("250"):
                self.mails.append((time.monotonic(), list(envelope.rcpt_tos)))
            return answer

        smtp.recorder.handle_DATA = timed

    def recipients(self):
        return [recipient for _, to in list(self.mails) for recipient in to]

    def times(self, email):
        return sorted(when for when, to in list(self.mails) if email in to)


def gone(processes, port, seconds=10):
    """Wait until every process has exited and its listening socket is closed; when. A
    leader shown as a zombie may still have threads exiting, which hold its sockets open
    for some milliseconds more: the port refusing a connection is what says they closed
    (the cluster starts the instance again only a second later)."""
    deadline = time.monotonic() + seconds
    for process in processes:
        while time.monotonic() < deadline:
            try:
                if process.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            break
        except OSError:
            pass
        time.sleep(0.005)
    return time.monotonic()


def client_address(number):
    """A loopback address of each account's own (its own sign-up limit)."""
    return f"127.0.{1 + number // 200}.{1 + number % 200}"


def test_losing_an_instance_loses_nothing(postgres_server, redis_server, tmp_path):
    require_pgbouncer()
    require_nginx()
    smtp = SmtpServer()
    received = Received(smtp)
    smtp.start()
    first_port = free_ports(INSTANCES + 2)  # the instances, PgBouncer, the gateway
    pgbouncer_port, gateway_port = first_port + INSTANCES, first_port + INSTANCES + 1
    with fresh_database(postgres_server) as target:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DATABASE_", "RATELIMIT_", "GATEWAY_", "PROMETHEUS_"))
        }
        env.update(
            APP_ENV="production",
            SECRET_KEY="cluster-loss-secret-key-0123456789abcdef",
            SMTP_URL=smtp.url,
            VERIFY_EMAIL_URL=VERIFY_URL,
            MAIL_POLL_SECONDS="0.5",
            DATABASE_URL=target.render_as_string(hide_password=False),
            RATELIMIT_ENABLED="true",
            RATELIMIT_STORAGE_URI=redis_server,
            RATELIMIT_KEY_PREFIX=f"lumyri-loss-{secrets.token_hex(4)}",
            RATELIMIT_SIGNUP=f"{LIMIT}/hour",
            CLUSTER_INSTANCES=str(INSTANCES),
            WEB_CONCURRENCY=str(WORKERS),
            PORT=str(first_port),
            PGBOUNCER_PORT=str(pgbouncer_port),
            GATEWAY_PORT=str(gateway_port),
            ARGON2_TIME_COST="1",
            ARGON2_MEMORY_COST="4096",
            ARGON2_PARALLELISM="1",
            LOG_LEVEL="WARNING",
        )
        cluster = Cluster(env, tmp_path / "cluster.log")
        begun = time.monotonic()
        try:
            cluster.wait_ready()
            print(f"cluster ready after {time.monotonic() - begun:.1f} s")
            run_the_loss(cluster, gateway_port, smtp, received, target)
        finally:
            stopping = time.monotonic()
            cluster.stop()
            smtp.stop()
            print(f"cluster stopped in {time.monotonic() - stopping:.1f} s")
        assert "cluster: stopped" in cluster.output()


def run_the_loss(cluster, port, smtp, received, target):
    probe = [signup_body(email=fresh_email("probe")) for _ in range(LIMIT + 5)]
    before = [sign_up_until_answered(port, "admin", body, PROBE_ADDRESS) for body in probe[:-10]]
    assert [attempts[-1].status for attempts in before] == [201] * (LIMIT - 5)

    bodies = [signup_body(email=fresh_email("loss")) for _ in range(CLIENTS * ACCOUNTS_PER_CLIENT)]
    results = [None] * len(bodies)
    answered = threading.Semaphore(0)

    def client(number):
        for index in range(number, len(bodies), CLIENTS):
            kind = "admin" if index % 2 else "customer"
            results[index] = sign_up_until_answered(
                port, kind, bodies[index], client_address(index)
            )
            answered.release()

    pids = cluster.instance_pids()
    assert len(pids) == INSTANCES
    victim_port = sorted(pids)[1]
    with ThreadPoolExecutor(CLIENTS) as pool:
        running = [pool.submit(client, number) for number in range(CLIENTS)]
        for _ in range(KILL_AFTER):
            assert answered.acquire(timeout=60), "the clients stalled before the kill"
        master = psutil.Process(pids[victim_port])
        processes = [master, *master.children()]
        killed_at = time.monotonic()
        os.killpg(pids[victim_port], signal.SIGKILL)  # the master and its workers
        dead_at = gone(processes, victim_port)
        for future in running:
            future.result()
    finished_at = time.monotonic()
    print(
        f"killed: gone after {dead_at - killed_at:.2f} s, last answer after "
        f"{finished_at - killed_at:.1f} s"
    )

    # The cluster started the lost instance again, and it serves.
    restarted = cluster.instance_pids()[victim_port]
    assert restarted != pids[victim_port]
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", victim_port), timeout=2) as sock:
                sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the killed instance did not come back"
        time.sleep(0.5)

    # The limit, counted in Redis, stayed exact across the loss and the restart: 10 more
    # sign-ups from the probe's address, of which exactly 5 fit.
    after = [sign_up_until_answered(port, "admin", body, PROBE_ADDRESS) for body in probe[-10:]]
    statuses = [attempts[-1].status for attempts in after]
    assert sorted(statuses) == [201] * 5 + [429] * 5, statuses
    created = [
        body
        for body, attempts in zip(probe[-10:], after, strict=True)
        if attempts[-1].status == 201
    ]

    # Every client got its account, and the only 5xx were the gateway's 502/504 for
    # requests in flight on the killed instance (begun before its processes were gone,
    # ended after the kill).
    attempts = [attempt for each in results for attempt in each]
    unanswered = {
        index: [(a.status, a.code, round(a.started - killed_at, 1)) for a in each]
        for index, each in enumerate(results)
        if each[-1].status != 201
    }
    assert not unanswered
    failures = [attempt for attempt in attempts if attempt.status is None or attempt.status >= 500]
    for failure in failures:
        if failure.status is not None:
            assert failure.status in (502, 504) and failure.code == "SERVICE_UNAVAILABLE"
        assert failure.started <= dead_at and failure.ended >= killed_at, failure
    lost = len(failures)

    accounts = [body["email"] for body in probe[:-10] + created + bodies]
    engine = sa.create_engine(target)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT email, count(*) FROM users GROUP BY email")
            ).all()
    finally:
        engine.dispose()
    assert dict(rows) == {email: 1 for email in accounts}

    print(f"checked the accounts {time.monotonic() - killed_at:.1f} s after the kill")
    # One verification mail per account, within a minute of the loss; none twice.
    deadline = killed_at + MAIL_SECONDS
    while not set(accounts) <= set(received.recipients()) and time.monotonic() < deadline:
        time.sleep(0.5)
    print(f"every mail {time.monotonic() - killed_at:.1f} s after the kill")
    time.sleep(1)  # a duplicate would come now
    recipients = collections.Counter(received.recipients())
    assert set(recipients) == set(accounts), set(accounts) - set(recipients)
    # Twice only a mail whose sending the loss interrupted (the contract): its first copy
    # reached the sink before the killed instance was gone, which had not recorded it
    # sent; at most one per sender (worker) of that instance.
    twice = {email: count for email, count in recipients.items() if count != 1}
    assert set(twice.values()) <= {2} and len(twice) <= WORKERS, twice
    for email in twice:
        first, second = received.times(email)
        assert first <= dead_at < second, (email, first - killed_at, second - killed_at)
    for _, _, message in smtp.messages:
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert "http://verify.test/verify-email?token=" in text
    print(
        f"{len(twice)} mails sent twice (their sending interrupted by the kill); "
        f"{len(bodies)} sign-ups from {CLIENTS} clients, {lost} in flight on the killed "
        f"instance answered 502/504 or cut, {len(attempts)} attempts, "
        f"{finished_at - killed_at:.1f} s from the kill to the last answer"
    )
