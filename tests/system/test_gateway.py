"""The shipped nginx gateway (deploy/nginx/), run for real in front of a real gunicorn and
a stand-in platform service: buffering, limits, forwarded addresses, forward
authentication and its own errors in the envelope."""

import contextlib
import http.client
import http.server
import importlib.util
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from tests.conftest import postgres_schema, running_in_ci
from tests.gunicorn_rig import free_port, run_server
from tests.helpers import LOGIN_PATH, LOGOUT_PATH, ROOT, SIGNUP_PATHS, fresh_email, signup_body

pytestmark = pytest.mark.e2e

VERIFY_PATH = "/api/v1/auth/verify"
IDENTITY_HEADERS = ("X-User-Id", "X-Company-Id", "X-User-Role", "X-Email-Verified")


def gateway_module():
    """deploy/nginx/gateway.py, loaded as `make gateway` runs it."""
    path = os.path.join(ROOT, "deploy", "nginx", "gateway.py")
    spec = importlib.util.spec_from_file_location("lumyri_gateway", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PlatformStandIn(http.server.BaseHTTPRequestHandler):
    """A platform service: answers what it was sent (path and headers) as JSON; a path
    with `slow` in it answers only after 3 s."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        if "slow" in self.path:
            time.sleep(3)
        body = json.dumps({"path": self.path, "headers": dict(self.headers.items())}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        """Quiet."""


@contextlib.contextmanager
def platform_stand_in():
    """The stand-in on a free loopback port, in a thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PlatformStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def run_gateway(tmp_path, service_port, platform_port):
    """nginx with the shipped configuration, in the foreground, until the block ends."""
    module = gateway_module()
    if module.nginx_binary() is None:
        reason = "nginx is not installed (.ci/run installs it: apt-get install nginx)"
        if running_in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    runtime = tmp_path / "gateway"
    runtime.mkdir()
    port = free_port()
    environ = {
        "GATEWAY_PORT": str(port),
        "HOST": "127.0.0.1",
        "PORT": str(service_port),
        "PLATFORM_UPSTREAM": f"http://127.0.0.1:{platform_port}",
        "GATEWAY_UPSTREAM_TIMEOUT": "1s",
    }
    config = module.render(environ, str(runtime))
    log = open(runtime / "nginx.log", "w")
    process = subprocess.Popen(
        module.command(config, str(runtime)), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"nginx did not start: {(runtime / 'nginx.log').read_text()}")
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(request, tmp_path_factory):
    """gunicorn (behind one proxy) + the stand-in + nginx; yields (gateway port, service)."""
    tmp = tmp_path_factory.mktemp("gateway")
    if request.param == "sqlite":
        database = contextlib.nullcontext(f"sqlite:///{tmp / 'lumyri.db'}")
    else:
        database = postgres_schema(request.getfixturevalue("postgres_server"))
    settings = {
        "TRUSTED_PROXIES": "1",
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_LOGIN_PER_IP": "4/minute",
        "RATELIMIT_SIGNUP": "1000/minute",
        "TOKEN_CACHE_SECONDS": "1",
        "WEB_CONCURRENCY": "1",  # one worker: the per-worker limit is then exact
    }
    with database as url, run_server(url, tmp, **settings) as service:
        with platform_stand_in() as platform_port:
            with run_gateway(tmp, service.port, platform_port) as port:
                yield port, service


def call(port, method, path, body=None, headers=None, source="127.0.0.1"):
    """One request to the gateway from a given loopback address: (status, headers, body)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(source, 0)
    )
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
        return response.status, response.headers, raw
    finally:
        connection.close()


def call_json(port, method, path, payload=None, headers=None, source="127.0.0.1"):
    """A JSON request; the answer parsed."""
    body = None if payload is None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    status, reply_headers, raw = call(port, method, path, body, headers, source)
    return status, reply_headers, json.loads(raw) if raw else None


def assert_envelope(headers, body, code):
    """The gateway's own error, in the service's envelope."""
    assert headers["Content-Type"].startswith("application/json")
    assert body["data"] is None and body["error"]["code"] == code


def signed_up(port, kind="customer"):
    """A new account through the gateway: (token, user)."""
    status, _, body = call_json(port, "POST", SIGNUP_PATHS[kind], signup_body())
    assert status == 201, body
    return body["data"]["access_token"], body["data"]["user"]


def test_the_service_is_reached_through_the_gateway(stack):
    port, _ = stack
    for path in ("/healthz", "/readyz"):
        assert call(port, "GET", path)[0] == 200
    token, user = signed_up(port, "admin")
    status, _, me = call_json(
        port, "GET", "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200 and me["data"]["user"]["id"] == user["id"]


def test_metrics_are_not_reachable(stack):
    port, service = stack
    status, headers, raw = call(port, "GET", "/metrics")
    assert status == 404
    assert_envelope(headers, json.loads(raw), "NOT_FOUND")
    assert b"lumyri_http_requests" not in raw
    assert call(service.port, "GET", "/metrics")[0] == 200  # still there, straight


def test_bodies_over_64_kib_are_refused_by_the_gateway(stack):
    port, _ = stack
    body = b'{"x": "' + b"a" * (65 * 1024) + b'"}'
    status, headers, raw = call(
        port, "POST", SIGNUP_PATHS["admin"], body, {"Content-Type": "application/json"}
    )
    assert status == 413
    assert_envelope(headers, json.loads(raw), "PAYLOAD_TOO_LARGE")


def access_lines(service, path):
    """The service's access log lines for a path."""
    lines = [json.loads(line) for line in service.log_path.read_text().splitlines()]
    return [line for line in lines if line.get("path") == path and "status" in line]


def test_the_service_sees_the_real_client_address_and_cannot_be_fooled(stack):
    port, service = stack
    marker = f"/api/v1/auth/no-such-{time.monotonic_ns()}"
    call(port, "GET", marker, headers={"X-Forwarded-For": "203.0.113.9"}, source="127.0.0.7")
    time.sleep(0.2)
    (line,) = access_lines(service, marker)
    assert line["client_ip"] == "127.0.0.7"


def test_limits_count_each_real_client(stack):
    port, _ = stack
    wrong = {"email": fresh_email("gw-limit"), "password": "Wrong@12345"}
    forged = {"X-Forwarded-For": "198.51.100.1"}
    first = [
        call_json(port, "POST", LOGIN_PATH, wrong, forged, source="127.0.0.8")[0] for _ in range(5)
    ]
    assert first == [401, 401, 401, 401, 429]
    # Another client is not limited by the first one's attempts, whatever it claims.
    other = call_json(port, "POST", LOGIN_PATH, wrong, forged, source="127.0.0.9")[0]
    assert other == 401


def test_platform_needs_a_valid_token(stack):
    port, _ = stack
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        status, reply_headers, raw = call(port, "GET", "/platform/tickets", headers=headers)
        assert status == 401
        assert reply_headers["WWW-Authenticate"] == "Bearer"
        assert_envelope(reply_headers, json.loads(raw), "INVALID_TOKEN")


@pytest.mark.parametrize("kind", ["admin", "customer"])
def test_platform_gets_the_identity_from_verify_and_never_the_clients(stack, kind):
    port, _ = stack
    token, user = signed_up(port, kind)
    forged = {header: "forged" for header in IDENTITY_HEADERS}
    status, _, raw = call(
        port,
        "GET",
        "/platform/tickets/7?view=all",
        headers={"Authorization": f"Bearer {token}", **forged},
    )
    assert status == 200
    seen = json.loads(raw)
    headers = {name.lower(): value for name, value in seen["headers"].items()}
    assert seen["path"] == "/platform/tickets/7?view=all"
    assert headers["authorization"] == f"Bearer {token}"
    assert headers["x-user-id"] == user["id"]
    assert headers["x-user-role"] == ("Admin" if kind == "admin" else "Customer")
    assert headers["x-email-verified"] == "false"
    assert headers.get("x-company-id", "") == user["company"]["id"]
    assert "forged" not in headers.values()


def test_a_revoked_token_is_refused_within_the_cache_window(stack):
    port, _ = stack
    token, _ = signed_up(port)
    auth = {"Authorization": f"Bearer {token}"}
    assert call(port, "GET", "/platform/x", headers=auth)[0] == 200
    assert call(port, "POST", LOGOUT_PATH, headers=auth)[0] == 204
    time.sleep(1.2)  # TOKEN_CACHE_SECONDS=1 in this stack
    assert call(port, "GET", "/platform/x", headers=auth)[0] == 401


def test_a_slow_platform_is_a_504_in_the_envelope(stack):
    port, _ = stack
    token, _ = signed_up(port)
    status, headers, raw = call(
        port, "GET", "/platform/slow", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 504
    assert_envelope(headers, json.loads(raw), "SERVICE_UNAVAILABLE")


def test_an_unreachable_platform_is_a_502_in_the_envelope(tmp_path):
    with platform_stand_in() as platform_port:
        pass  # closed again: nothing listens on that port now
    service_port = free_port()  # nothing listens there either
    with run_gateway(tmp_path, service_port, platform_port) as port:
        status, headers, raw = call(port, "GET", "/api/v1/auth/me")
        assert status == 502
        assert_envelope(headers, json.loads(raw), "SERVICE_UNAVAILABLE")
        status, headers, raw = call(
            port, "GET", "/platform/x", headers={"Authorization": "Bearer x"}
        )
        assert status == 502
        assert_envelope(headers, json.loads(raw), "SERVICE_UNAVAILABLE")


def trickle(port, stop):
    """A client that sends a sign-up one byte a second until told to stop."""
    request = (
        f"POST {SIGNUP_PATHS['customer']} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    ).encode()
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as sock:
        for byte in request:
            if stop.wait(1):
                return
            sock.send(bytes([byte]))


def test_slow_clients_do_not_delay_others(stack):
    """30 clients sending a byte a second hold nginx connections, not gunicorn threads
    (straight at gunicorn, 8 such clients keep /healthz from answering for a minute)."""
    port, _ = stack
    stop = threading.Event()
    slow = [threading.Thread(target=trickle, args=(port, stop)) for _ in range(30)]
    for thread in slow:
        thread.start()
    try:
        time.sleep(2)  # every slow client has a connection and is trickling
        started = time.monotonic()
        signed_up(port)
        assert call(port, "GET", "/healthz")[0] == 200
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        for thread in slow:
            thread.join()
