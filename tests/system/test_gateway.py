"""The shipped nginx gateway (deploy/nginx/), run for real in front of a real gunicorn and
a stand-in platform service (and in front of stand-ins only, to see every request it
passes on): buffering, limits, forwarded addresses, forward authentication and every
answer it makes itself in the envelope."""

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
import typing
import uuid

import pytest
import sqlalchemy as sa

from app.api.platform import IDENTITY_HEADERS as VERIFY_IDENTITY_HEADERS
from app.errors import ERRORS
from app.models import Role, User
from app.permissions import tree_of
from tests.fixtures import postgres_schema, running_in_ci
from tests.gunicorn_rig import run_server
from tests.helpers import (
    ADMIN_LEAVES,
    LOGIN_PATH,
    LOGOUT_PATH,
    ROOT,
    SIGNUP_PATHS,
    free_port,
    fresh_email,
    signup_body,
)

pytestmark = pytest.mark.e2e

VERIFY_PATH = "/api/v1/auth/verify"
IDENTITY_HEADERS = (
    "X-User-Id",
    "X-Company-Id",
    "X-User-Role",
    "X-User-Role-Id",
    "X-User-Permissions",
    "X-Session-Id",
    "X-Email-Verified",
)
ROLE_IDS = {
    "admin": "6a0f1c1e-2d7b-4c55-9a57-0e3c2b6f0a01",
    "customer": "6a0f1c1e-2d7b-4c55-9a57-0e3c2b6f0a02",
}
ADMIN_PERMISSIONS = ",".join(ADMIN_LEAVES)
# What a client may send to pass for another address, scheme or host: none of it may reach
# the service or a platform service (X_Forwarded_For is X-Forwarded-For to Werkzeug).
FORGED_FORWARDING = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "Forwarded": "for=203.0.113.9;proto=https;host=evil.example",
    "X-Real-IP": "203.0.113.9",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Prefix": "/evil",
    "X_Forwarded_For": "203.0.113.9",
}
DROPPED_HEADERS = (
    "forwarded",
    "x-real-ip",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x_forwarded_for",
)


def gateway_module():
    """deploy/nginx/gateway.py, loaded as `make gateway` runs it."""
    path = os.path.join(ROOT, "deploy", "nginx", "gateway.py")
    spec = importlib.util.spec_from_file_location("lumyri_gateway", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PlatformStandIn(http.server.BaseHTTPRequestHandler):
    """A platform service (or the service, whose /verify it then accepts every token for):
    answers what it was sent (path and headers) as JSON and keeps it in the server's
    `seen`; a path with `slow` in it answers only after 3 s."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.seen.append(Seen(self.command, self.path, self.headers.items()))
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


class Seen(typing.NamedTuple):
    """A request a stand-in got; headers as (name, value) pairs, repeated ones included."""

    method: str
    path: str
    headers: list

    def header(self, name):
        """Every value of one header, in order."""
        return [value for key, value in self.headers if key.lower() == name.lower()]


@contextlib.contextmanager
def stand_in():
    """A stand-in on a free loopback port, in a thread; yields its server."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PlatformStandIn)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def platform_stand_in():
    """The platform's stand-in; yields its port."""
    with stand_in() as server:
        yield server.server_address[1]


@contextlib.contextmanager
def run_gateway(tmp_path, service_port, platform_port, **settings):
    """nginx with the shipped configuration, in the foreground, until the block ends
    (`settings`: more of its environment, e.g. GATEWAY_UPSTREAMS)."""
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
        **settings,
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


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """nginx in front of a stand-in for the service and one for the platform; yields
    (gateway port, service stand-in, platform stand-in)."""
    tmp = tmp_path_factory.mktemp("stand-ins")
    with stand_in() as service, stand_in() as platform:
        service_port, platform_port = service.server_address[1], platform.server_address[1]
        with run_gateway(tmp, service_port, platform_port) as port:
            yield port, service, platform


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
    call(port, "GET", marker, headers=FORGED_FORWARDING, source="127.0.0.7")
    time.sleep(0.2)
    (line,) = access_lines(service, marker)
    assert line["client_ip"] == "127.0.0.7"


def test_the_verify_check_sees_the_real_client_address(stack):
    port, service = stack
    token, _ = signed_up(port)
    before = len(access_lines(service, VERIFY_PATH))
    auth = {"Authorization": f"Bearer {token}", **FORGED_FORWARDING}
    for headers in (auth, {**auth, "Authorization": "Bearer not-a-token"}):  # 200, then 401
        call(port, "GET", "/platform/x", headers=headers, source="127.0.0.10")
    time.sleep(0.2)
    checks = access_lines(service, VERIFY_PATH)[before:]
    assert [(line["status"], line["client_ip"]) for line in checks] == [
        (200, "127.0.0.10"),
        (401, "127.0.0.10"),
    ]


def assert_forwarded_by_the_gateway(seen, client):
    """The request carries the gateway's X-Forwarded-For and -Proto, once each, and no
    other forwarding header."""
    assert seen.header("X-Forwarded-For") == [client], seen
    assert seen.header("X-Forwarded-Proto") == ["http"], seen
    assert not [name for name, _ in seen.headers if name.lower() in DROPPED_HEADERS], seen


@pytest.mark.parametrize("path", ["/api/v1/auth/me", "/healthz", "/readyz", "/platform/tickets"])
def test_every_request_passed_on_carries_the_gateways_forwarding_only(stand_ins, path):
    port, service, platform = stand_ins
    marker = f"m{time.monotonic_ns()}"
    headers = {"Authorization": f"Bearer {marker}", **FORGED_FORWARDING}
    status, _, _ = call(port, "GET", f"{path}?{marker}", headers=headers, source="127.0.0.5")
    assert status == 200
    seen = [
        request
        for stand_in_server in (service, platform)
        for request in stand_in_server.seen
        if request.header("Authorization") == [f"Bearer {marker}"]
    ]
    expected = [f"{path}?{marker}"]
    if path.startswith("/platform/"):  # the verify check, then the platform service
        expected = [VERIFY_PATH, *expected]
    assert [request.path for request in seen] == expected
    for request in seen:
        assert_forwarded_by_the_gateway(request, "127.0.0.5")


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
    status, verified, _ = call(
        port, "GET", VERIFY_PATH, headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200
    forged = {header: "forged" for header in IDENTITY_HEADERS}
    status, _, raw = call(
        port,
        "GET",
        "/platform/tickets/7?view=all",
        headers={"Authorization": f"Bearer {token}", **forged, **FORGED_FORWARDING},
        source="127.0.0.11",
    )
    assert status == 200
    seen = json.loads(raw)
    headers = {name.lower(): value for name, value in seen["headers"].items()}
    assert seen["path"] == "/platform/tickets/7?view=all"
    assert headers["authorization"] == f"Bearer {token}"
    assert headers["x-user-id"] == user["id"]
    assert headers["x-user-role"] == ("Admin" if kind == "admin" else "Customer")
    assert headers["x-user-role-id"] == ROLE_IDS[kind]
    assert headers["x-session-id"] == verified["X-Session-Id"]
    assert len(headers["x-session-id"]) == 36
    assert headers["x-email-verified"] == "false"
    assert headers.get("x-company-id", "") == user["company"]["id"]  # absent or empty
    assert len(ADMIN_PERMISSIONS.split(",")) == 20
    expected = ADMIN_PERMISSIONS if kind == "admin" else ""
    assert headers.get("x-user-permissions", "") == expected  # absent or empty: none
    assert "forged" not in headers.values()
    assert headers["x-forwarded-for"] == "127.0.0.11"
    assert headers["x-forwarded-proto"] == "http"
    assert not set(DROPPED_HEADERS) & set(headers)


def test_platform_gets_a_custom_roles_name_percent_encoded(stack):
    """A custom role (written with SQL: a row of `roles` for the company, the account's
    `role_id` pointed at it): its name goes upstream as /verify wrote it."""
    port, service = stack
    token, user = signed_up(port, "admin")
    role_id = str(uuid.uuid4())
    name = "Équipe 100% 日本"
    leaves = ["application.tickets.view", "platform.admins.view"]
    engine = sa.create_engine(service.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.insert(Role).values(
                    id=role_id,
                    name=name,
                    description="",
                    category="CUSTOM ROLE",
                    permission=tree_of(leaves),
                    company_id=user["company"]["id"],
                    name_key=name.casefold(),
                )
            )
            connection.execute(sa.update(User).where(User.id == user["id"]).values(role_id=role_id))
        forged = {header: "forged" for header in IDENTITY_HEADERS}
        status, _, raw = call(
            port,
            "GET",
            "/platform/roles",
            headers={"Authorization": f"Bearer {token}", **forged},
        )
    finally:
        with engine.begin() as connection:
            connection.execute(
                sa.update(User).where(User.id == user["id"]).values(role_id=ROLE_IDS["admin"])
            )
            connection.execute(sa.delete(Role).where(Role.id == role_id))
        engine.dispose()
    assert status == 200
    headers = {key.lower(): value for key, value in json.loads(raw)["headers"].items()}
    assert headers["x-user-role"] == "%C3%89quipe 100%25 %E6%97%A5%E6%9C%AC"
    assert headers["x-user-role-id"] == role_id
    assert headers["x-user-permissions"] == ",".join(leaves)
    assert "forged" not in headers.values()


def test_identity_headers_a_client_sends_reach_neither_the_check_nor_the_platform(stand_ins):
    """The service's stand-in answers the check 200 without identity headers: whatever
    the client sent in them must reach neither it nor the platform's stand-in."""
    port, service, platform = stand_ins
    marker = f"m{time.monotonic_ns()}"
    forged = {header: "forged" for header in IDENTITY_HEADERS}
    lower = {header.lower(): "forged" for header in IDENTITY_HEADERS}  # any case
    for sent in (forged, lower):
        headers = {"Authorization": f"Bearer {marker}", **sent}
        assert call(port, "GET", f"/platform/x?{marker}", headers=headers)[0] == 200
    seen = [
        request
        for stand_in_server in (service, platform)
        for request in stand_in_server.seen
        if request.header("Authorization") == [f"Bearer {marker}"]
    ]
    assert [request.path for request in seen] == [VERIFY_PATH] * 2 + [f"/platform/x?{marker}"] * 2
    for request in seen:
        assert not [header for header in IDENTITY_HEADERS if request.header(header)], request


def test_the_template_passes_and_blanks_every_identity_header_of_verify():
    """Each header /verify answers with (app.api.platform) is taken from the check's
    answer and passed to /platform/, and blanked on the check's own request."""
    with open(gateway_module().TEMPLATE, encoding="utf-8") as handle:
        lines = [line.split() for line in handle.read().splitlines()]
    assert set(VERIFY_IDENTITY_HEADERS) == set(IDENTITY_HEADERS)
    for header in VERIFY_IDENTITY_HEADERS:
        upstream = "$upstream_http_" + header.lower().replace("-", "_") + ";"
        (taken,) = [
            words[1]
            for words in lines
            if words[:1] == ["auth_request_set"] and words[2] == upstream
        ]
        assert ["proxy_set_header", header, taken + ";"] in lines
        assert ["proxy_set_header", header, '"";'] in lines


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


def test_an_unreachable_service_is_a_502_and_its_failed_check_a_503(tmp_path):
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
        assert status == 503  # the verify check failed: never a 500, nor nginx's page
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


def raw_call(port, request):
    """Send bytes as they are (what http.client would refuse to send); the answer parsed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.headers, response.read()


LONG = b"a" * 9000
# Requests nginx answers itself: (request, the contract's status and code).
NGINX_ANSWERS = {
    "a 9,000-byte header": (
        b"GET /api/v1/auth/me HTTP/1.1\r\nHost: x\r\nX-Long: " + LONG + b"\r\n\r\n",
        431,
        "REQUEST_HEADER_FIELDS_TOO_LARGE",
    ),
    "a 9,000-byte URI": (
        b"GET /api/" + LONG + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        414,
        "URI_TOO_LONG",
    ),
    "a coding before chunked": (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
        "NOT_IMPLEMENTED",
    ),
    "an unknown transfer coding": (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n",
        501,
        "NOT_IMPLEMENTED",
    ),
    "HTTP/2.0 on a request line": (
        b"GET /api/v1/auth/me HTTP/2.0\r\nHost: x\r\n\r\n",
        505,
        "HTTP_VERSION_NOT_SUPPORTED",
    ),
    "HTTP/3.0 on a request line": (
        b"GET /api/v1/auth/me HTTP/3.0\r\nHost: x\r\n\r\n",
        505,
        "HTTP_VERSION_NOT_SUPPORTED",
    ),
    "TRACE": (b"TRACE /api/v1/auth/me HTTP/1.1\r\nHost: x\r\n\r\n", 405, "METHOD_NOT_ALLOWED"),
    "/api without its slash": (
        b"GET /api HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        404,
        "NOT_FOUND",
    ),
    "/platform without its slash": (
        b"GET /platform?x=1 HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        404,
        "NOT_FOUND",
    ),
    "the internal verify path": (
        b"GET /_lumyri_verify HTTP/1.1\r\nHost: x\r\n\r\n",
        404,
        "NOT_FOUND",
    ),
    "an internal error page": (
        b"GET /_lumyri_errors/502 HTTP/1.1\r\nHost: x\r\n\r\n",
        404,
        "NOT_FOUND",
    ),
    "a path with an extension nginx knows": (
        b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n",
        404,
        "NOT_FOUND",
    ),
    "a broken request line": (b"GET / HTTP/1.1 x\r\nHost: x\r\n\r\n", 400, "BAD_REQUEST"),
    "bytes that are not HTTP": (b"\x16\x03\x01\x00\xa5\x01\r\n\r\n", 400, "BAD_REQUEST"),
    "a request line with a control character": (
        b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        "BAD_REQUEST",
    ),
    "no Host": (b"GET /api/v1/auth/me HTTP/1.1\r\n\r\n", 400, "BAD_REQUEST"),
    "two Hosts": (
        b"GET /api/v1/auth/me HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
        "BAD_REQUEST",
    ),
    "Content-Length and chunked": (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "BAD_REQUEST",
    ),
    "a broken chunked body": (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
        400,
        "BAD_REQUEST",
    ),
}


@pytest.mark.parametrize("case", NGINX_ANSWERS)
def test_every_answer_nginx_makes_itself_is_the_envelope(stand_ins, case):
    port, service, _ = stand_ins
    request, status, code = NGINX_ANSWERS[case]
    passed_on = len(service.seen)
    answer_status, headers, raw = raw_call(port, request)
    assert answer_status == status
    assert_envelope(headers, json.loads(raw), code)
    assert json.loads(raw) == json.loads(ERRORS[code]().body())  # app.errors' own words
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "Location" not in headers
    if status == 405:
        assert headers["Allow"] == "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
    assert len(service.seen) == passed_on  # answered by nginx, not passed on


@pytest.mark.parametrize(
    "directive",
    [
        "error_page 404 /not-found.json;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header x-real-ip $remote_addr;",
    ],
)
def test_the_template_cannot_set_what_gateway_py_sets_everywhere(directive):
    template = f"server {{\n    location /x/ {{\n        {directive}\n    }}\n}}\n"
    with pytest.raises(ValueError, match="must not set"):
        gateway_module().check_template(template)


def test_each_proxy_pass_is_followed_by_the_forwarding_headers():
    module = gateway_module()
    rendered = module.with_forwarded_headers("location /a/ {\n    proxy_pass http://a;\n}\n")
    lines = [line.strip() for line in rendered.splitlines()]
    start = lines.index("proxy_pass http://a;") + 1
    headers = [f"proxy_set_header {name} {value};" for name, value in module.FORWARDED_HEADERS]
    assert lines[start : start + len(headers)] == headers
    assert "X-Forwarded-For $remote_addr" in rendered
