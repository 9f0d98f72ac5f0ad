"""The gateway's pool of instances (GATEWAY_UPSTREAMS), with the real nginx in front of
stand-ins: requests are shared out, an instance that refuses connections is skipped, and a
request that may have reached an instance is never sent to another."""

import contextlib
import http.server
import json
import socket
import threading

import pytest

from tests.helpers import free_port
from tests.system.test_gateway import assert_envelope, call, gateway_module, run_gateway

pytestmark = pytest.mark.e2e


class Recorder(http.server.BaseHTTPRequestHandler):
    """An instance's stand-in: answers every method 200 with its own name, and keeps
    (method, path) of each request it got in the server's `seen`."""

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.seen.append((self.command, self.path))
        body = json.dumps({"instance": self.server.name}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_OPTIONS = answer  # noqa: N815

    def log_message(self, *args):
        """Quiet."""


@contextlib.contextmanager
def recorder(name):
    """A stand-in instance on a free port, in a thread; yields its server."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen, server.name = [], name
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def dropper():
    """An instance that dies with each request: it accepts the connection, reads the
    request whole and resets the connection without answering (as a SIGKILLed worker
    does). Yields (port, the request lines it read)."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen = []

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                seen.append(data.split(b"\r\n", 1)[0].decode())
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        listener.close()


def refusing_port():
    """A loopback port where nothing listens: connections to it are refused."""
    return free_port()


def pool(*ports):
    """GATEWAY_UPSTREAMS for these loopback ports."""
    return ",".join(f"127.0.0.1:{port}" for port in ports)


def test_requests_are_shared_out_among_the_instances(tmp_path):
    with recorder("a") as first, recorder("b") as second, recorder("platform") as platform:
        upstreams = pool(first.server_address[1], second.server_address[1])
        with run_gateway(
            tmp_path, 1, platform.server_address[1], GATEWAY_UPSTREAMS=upstreams
        ) as port:
            answers = [json.loads(call(port, "GET", "/healthz")[2]) for _ in range(10)]
            for _ in range(4):  # the check goes to the pool too
                status, _, _ = call(port, "GET", "/platform/x", headers={"Authorization": "B x"})
                assert status == 200
    assert sorted(answer["instance"] for answer in answers) == ["a"] * 5 + ["b"] * 5
    checks = [seen for seen in first.seen + second.seen if seen[1] == "/api/v1/auth/verify"]
    assert len(checks) == 4


REQUESTS = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/api/v1/auth/customer/signup"),
    ("PATCH", "/api/v1/auth/me"),
    ("GET", "/api/v1/auth/me?x=%2F1"),
    ("OPTIONS", "/api/v1/auth/me"),
    ("DELETE", "/api/v1/auth/sessions/1"),
]


@pytest.mark.parametrize("max_fails", ["0", "2"])
def test_an_instance_that_refuses_connections_is_skipped(tmp_path, max_fails):
    """Every request is answered by the live instance: one sent to the dead instance
    first could not have reached it, and goes on to the live one. With max_fails=0 the
    dead one is never marked down, so every other request meets the refusal first; a
    DELETE is then left out: it is sent to one instance only, whatever happened there
    (the template's comment), and gets a 502 when that is the dead one. With the default
    passive checks the dead instance is skipped once marked down: DELETE included."""
    with recorder("live") as live, recorder("platform") as platform:
        upstreams = pool(refusing_port(), live.server_address[1])
        with run_gateway(
            tmp_path,
            1,
            platform.server_address[1],
            GATEWAY_UPSTREAMS=upstreams,
            GATEWAY_MAX_FAILS=max_fails,
        ) as port:
            requests = REQUESTS * 3
            if max_fails == "0":
                requests = [request for request in requests if request[0] != "DELETE"]
            else:
                requests = [("GET", "/healthz")] * 2 + requests  # marks it down
            for method, path in requests:
                body = b"{}" if method in ("POST", "PATCH") else None
                status, _, raw = call(port, method, path, body=body)
                assert status == 200, (method, path, raw)
                assert json.loads(raw) == {"instance": "live"}
            for _ in range(6):
                headers = {"Authorization": "Bearer x"}
                assert call(port, "GET", "/platform/x", headers=headers)[0] == 200
    passed = [seen for seen in live.seen if seen[1] != "/api/v1/auth/verify"]
    assert passed == requests  # each once, in order
    assert len(live.seen) - len(passed) == 6


def test_a_request_that_reached_an_instance_is_not_sent_to_another(tmp_path):
    """An instance that takes a request and drops the connection: a POST, a PATCH and a
    DELETE sent to it get the gateway's 502 in the envelope, and the other instance never
    sees them (the client retries, with its Idempotency-Key for a sign-up)."""
    with dropper() as (dead_port, dead_seen), recorder("live") as live:
        upstreams = pool(dead_port, live.server_address[1])
        with run_gateway(
            tmp_path, 1, free_port(), GATEWAY_UPSTREAMS=upstreams, GATEWAY_MAX_FAILS="0"
        ) as port:
            answers = []
            for number in range(8):
                for method in ("POST", "PATCH", "DELETE"):
                    path = f"/api/v1/auth/{method.lower()}-{number}"
                    body = b"{}" if method != "DELETE" else None
                    status, headers, raw = call(port, method, path, body=body)
                    answers.append((method, path, status))
                    if status == 502:
                        assert_envelope(headers, json.loads(raw), "SERVICE_UNAVAILABLE")
    refused = {(method, path) for method, path, status in answers if status == 502}
    served = {(method, path) for method, path, status in answers if status == 200}
    assert len(refused) + len(served) == len(answers)
    assert {method for method, _ in refused} == {"POST", "PATCH", "DELETE"}
    assert served == set(live.seen)  # no request the dead instance took reached the other
    assert sorted(f"{method} {path} HTTP/1.1" for method, path in refused) == sorted(dead_seen)


def test_the_pool_is_host_and_port_only():
    module = gateway_module()
    values = dict(module.DEFAULTS)
    for bad in ("127.0.0.1", "127.0.0.1:0", "http://127.0.0.1:80", "a:1;b:2", "a:1,a:1"):
        with pytest.raises(ValueError, match="GATEWAY_UPSTREAMS"):
            module.upstream_servers({"GATEWAY_UPSTREAMS": bad}, values)
    lines = module.upstream_servers({"GATEWAY_UPSTREAMS": " h1:1, [::1]:2 "}, values)
    assert [line.strip() for line in lines.splitlines()] == [
        "server h1:1 max_fails=2 fail_timeout=5s;",
        "server [::1]:2 max_fails=2 fail_timeout=5s;",
    ]
    alone = module.upstream_servers({"HOST": "10.0.0.5", "PORT": "8123"}, values)
    assert alone.strip() == "server 10.0.0.5:8123 max_fails=2 fail_timeout=5s;"
