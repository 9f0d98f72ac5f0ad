"""End to end: migrations through the CLI, gunicorn from wsgi.py, requests over a socket."""

import base64
import contextlib
import http.client
import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from tests.fixtures import postgres_schema
from tests.gunicorn_rig import SECRET_KEY, run_server, server_env
from tests.helpers import (
    PASSWORD,
    ROOT,
    SIGNUP_PATHS,
    expected_user,
    free_port,
    fresh_email,
    run_example,
    run_example_json,
    sample_in,
    signup_body,
)

pytestmark = pytest.mark.e2e
CLIENT_ID, CLIENT_SECRET = "tickets", "e2e-introspection-secret-0123456789abc"


def new_database(request, tmp_path_factory):
    """A new, empty database for one server: a SQLite file or a Postgres schema."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("e2e") / "lumyri.db"
        return contextlib.nullcontext(f"sqlite:///{path}")
    return postgres_schema(request.getfixturevalue("postgres_server"))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(request, tmp_path_factory):
    """Migrate a fresh database with `flask db upgrade`, then serve it with gunicorn."""
    with new_database(request, tmp_path_factory) as database_url:
        with run_server(
            database_url,
            tmp_path_factory.mktemp("gunicorn"),
            INTROSPECTION_CLIENTS=f"{CLIENT_ID}:{CLIENT_SECRET}",
        ) as server:
            yield server


@pytest.mark.parametrize("kind", ["admin", "customer"])
def test_curl_script_gets_the_contract_body(server, kind):
    payload = run_example_json(server, f"{kind}-signup.sh")
    user = payload["data"]["user"]
    assert payload["error"] is None and payload["data"]["access_token"].count(".") == 2
    first = "Admin" if kind == "admin" else "Customer"
    assert user == expected_user(
        kind, user["id"], user["company"]["id"], first, "Test", user["email"]
    )
    assert user["email"].startswith(f"{kind}+") and user["email"].endswith("@example.org")


def test_curl_walk_through_login_me_logout(server):
    email = fresh_email("walk")
    signed_up = json.loads(run_example(server, "customer-signup.sh", EMAIL=email))["data"]
    logged_in = json.loads(run_example(server, "login.sh", EMAIL=email.upper()))
    assert logged_in["data"]["user"] == signed_up["user"]
    token = logged_in["data"]["access_token"]
    assert json.loads(run_example(server, "me.sh", token)) == {
        "error": None,
        "data": {"user": signed_up["user"], "email_verified": False},
    }
    assert run_example(server, "logout.sh", token).strip() == "204"
    refused = json.loads(run_example(server, "me.sh", token))
    assert refused["error"]["code"] == "INVALID_TOKEN"
    again = json.loads(run_example(server, "login.sh", EMAIL=email))["data"]["access_token"]
    assert json.loads(run_example(server, "me.sh", again))["data"]["user"]["email"] == email


def test_curl_walk_through_of_sessions(server):
    """examples/list-sessions.sh, end-session.sh and logout.sh's scopes."""
    email = fresh_email("sessions")
    first = json.loads(run_example(server, "customer-signup.sh", EMAIL=email))["data"]
    second = json.loads(run_example(server, "login.sh", EMAIL=email))["data"]["access_token"]
    third = json.loads(run_example(server, "login.sh", EMAIL=email))["data"]["access_token"]
    listed = json.loads(run_example(server, "list-sessions.sh", third))["data"]["sessions"]
    assert [s["current"] for s in listed] == [True, False, False]
    assert run_example(server, "end-session.sh", third, SESSION_ID=listed[1]["id"]).strip() == "204"
    assert json.loads(run_example(server, "me.sh", second))["error"]["code"] == "INVALID_TOKEN"
    assert run_example(server, "logout.sh", third, SCOPE="others").strip() == "204"
    refused = json.loads(run_example(server, "me.sh", first["access_token"]))
    assert refused["error"]["code"] == "INVALID_TOKEN"
    assert json.loads(run_example(server, "me.sh", third))["error"] is None
    assert run_example(server, "logout.sh", third, SCOPE="current").strip() == "204"
    assert json.loads(run_example(server, "me.sh", third))["error"]["code"] == "INVALID_TOKEN"


def test_curl_scripts_for_the_platform(server):
    """examples/verify.sh and examples/introspect.sh against the real server."""
    data = json.loads(run_example(server, "customer-signup.sh", EMAIL=fresh_email("plat")))
    token, user = data["data"]["access_token"], data["data"]["user"]
    lines = run_example(server, "verify.sh", token).splitlines()
    assert lines[0].startswith("HTTP/1.1 200")
    headers = dict(line.split(": ", 1) for line in lines[1:-1])
    body = json.loads(lines[-1])["data"]
    assert {name.lower(): value for name, value in headers.items()} == {
        "x-user-id": user["id"],
        "x-company-id": "",
        "x-user-role": "Customer",
        "x-user-role-id": body["role_id"],
        "x-user-permissions": "",
        "x-session-id": body["session_id"],
        "x-email-verified": "false",
    }
    assert body["user_id"] == user["id"] and body["permissions"] == []
    answer = json.loads(
        run_example(
            server, "introspect.sh", token, CLIENT_ID=CLIENT_ID, CLIENT_SECRET=CLIENT_SECRET
        )
    )
    assert answer["active"] is True and answer["sub"] == user["id"]
    wrong = json.loads(
        run_example(server, "introspect.sh", token, CLIENT_ID=CLIENT_ID, CLIENT_SECRET="nope")
    )
    assert wrong["error"]["code"] == "INVALID_CLIENT"


def test_same_email_burst_gives_one_201_and_the_rest_409(server):
    email = fresh_email("burst")
    bodies = [signup_body(email=email.upper() if i % 2 else email) for i in range(20)]
    kinds = ["admin", "customer"]
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(
            pool.map(lambda i: server.post_json(SIGNUP_PATHS[kinds[i % 2]], bodies[i]), range(20))
        )
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [201] + [409] * 19
    assert count_users(server, email) == 1
    codes = {body["error"]["code"] for status, _, body in results if status == 409}
    assert codes == {"EMAIL_TAKEN"}


def test_each_answer_closes_its_connection(server):
    """No kept-alive connections: a client asking for keep-alive still gets
    "Connection: close", so waiting requests queue in the kernel and go to the first
    worker with a free thread, in arrival order (gunicorn.conf.py)."""
    answers = [
        server.request("GET", "/healthz", headers={"Connection": "keep-alive"}),
        server.request(
            "POST",
            SIGNUP_PATHS["customer"],
            json.dumps(signup_body()).encode(),
            {"Content-Type": "application/json", "Connection": "keep-alive"},
        ),
    ]
    assert [status for status, _, _ in answers] == [200, 201]
    assert [headers["Connection"] for _, headers, _ in answers] == ["close", "close"]


def count_users(server, prefix):
    """Users whose e-mail starts with the prefix, counted straight in the database."""
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            query = (
                sa.select(sa.func.count())
                .where(sa.text("email LIKE :p"))
                .select_from(sa.table("users"))
            )
            return connection.scalar(query, {"p": f"{prefix}%"})
    finally:
        engine.dispose()


def test_distinct_email_burst_all_created(server):
    """200 concurrent sign-ups with distinct e-mails: 200 x 201, 200 rows, never locked."""
    emails = [fresh_email("distinct") for _ in range(200)]
    kinds = ["admin", "customer"]
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(
            pool.map(
                lambda i: server.post_json(
                    SIGNUP_PATHS[kinds[i % 2]], signup_body(email=emails[i])
                ),
                range(200),
            )
        )
    assert [status for status, _, _ in results] == [201] * 200
    assert count_users(server, "distinct") == 200
    assert "database is locked" not in server.log_path.read_text()


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code"),
    [
        (
            "POST",
            SIGNUP_PATHS["admin"],
            b"{oops",
            {"Content-Type": "application/json"},
            400,
            "INVALID_JSON",
        ),
        (
            "POST",
            SIGNUP_PATHS["admin"],
            b"[" * 5000 + b"]" * 5000,
            {"Content-Type": "application/json"},
            400,
            "INVALID_JSON",
        ),
        (
            "POST",
            SIGNUP_PATHS["admin"],
            b"x" * 70000,
            {"Content-Type": "application/json"},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "POST",
            SIGNUP_PATHS["customer"],
            b"first_name=a",
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        ("GET", SIGNUP_PATHS["customer"], None, {}, 405, "METHOD_NOT_ALLOWED"),
        (
            "POST",
            "/api/v1/auth/nobody",
            b"{}",
            {"Content-Type": "application/json"},
            404,
            "NOT_FOUND",
        ),
    ],
)
def test_hostile_requests_get_contract_errors(server, method, path, body, headers, status, code):
    got_status, got_headers, payload = server.request(method, path, body, headers)
    assert (got_status, payload["error"]["code"]) == (status, code)
    assert got_headers["Content-Type"] == "application/json"
    assert server.request("GET", "/healthz")[0] == 200


def chunked_post(server, path, body):
    """POST a body with Transfer-Encoding: chunked (no Content-Length)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        chunks = (body[i : i + 4096] for i in range(0, len(body), 4096))
        connection.request(
            "POST",
            path,
            body=chunks,
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_chunked_body_over_the_limit_is_413(server):
    status, payload = chunked_post(server, SIGNUP_PATHS["admin"], b" " * 70000 + b"{}")
    assert (status, payload["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")


def test_chunked_body_within_the_limit_is_read_whole(server):
    body = json.dumps(signup_body()).encode()
    status, payload = chunked_post(server, SIGNUP_PATHS["customer"], b" " * 60000 + body)
    assert status == 201, payload


def raw_exchange(server, data):
    """Send raw bytes on a socket; return (status, headers, parsed JSON body)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


SIGNUP_START = f"POST {SIGNUP_PATHS['customer']} HTTP/1.1\r\nHost: x\r\n".encode()
JSON_CHUNKED = b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI_TOO_LONG"),
        (
            b"GET /healthz HTTP/1.1\r\n" + b"X-A: b\r\n" * 60 + b"\r\n",
            431,
            "REQUEST_HEADER_FIELDS_TOO_LARGE",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
            431,
            "REQUEST_HEADER_FIELDS_TOO_LARGE",
        ),
        (b"NOT A REQUEST LINE\r\n\r\n", 400, "BAD_REQUEST"),
        (b"GET /healthz HTTP/9.9\r\n\r\n", 400, "BAD_REQUEST"),
        (SIGNUP_START + JSON_CHUNKED + b"zz\r\n{}\r\n0\r\n\r\n", 400, "BAD_REQUEST"),
        (SIGNUP_START + JSON_CHUNKED + b"2\r\n{}XX0\r\n\r\n", 400, "BAD_REQUEST"),
        (SIGNUP_START + JSON_CHUNKED + b"10\r\n{}", 400, "BAD_REQUEST"),
        (
            SIGNUP_START + b"Expect: 200-ok\r\nContent-Length: 2\r\n\r\n{}",
            417,
            "EXPECTATION_FAILED",
        ),
        (
            SIGNUP_START + b"Transfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n",
            501,
            "NOT_IMPLEMENTED",
        ),
    ],
    ids=[
        "uri-too-long",
        "too-many-headers",
        "header-too-big",
        "bad-line",
        "bad-version",
        "bad-chunk-size",
        "chunk-without-crlf",
        "truncated-chunk",
        "unknown-expect",
        "unknown-transfer-coding",
    ],
)
def test_protocol_errors_get_the_envelope(server, data, status, code):
    """The contract's transport-level codes, each exactly, in the envelope."""
    got_status, headers, payload = raw_exchange(server, data)
    assert (got_status, payload["error"]["code"]) == (status, code)
    assert headers["Content-Type"] == "application/json"
    assert payload["data"] is None and payload["error"]["message"]
    assert server.request("GET", "/healthz")[0] == 200


def test_token_from_the_server_is_a_signed_hs256_jwt(server):
    status, headers, payload = server.post_json(
        SIGNUP_PATHS["admin"], signup_body(password=PASSWORD)
    )
    assert status == 201 and headers["Cache-Control"] == "no-store"
    header = json.loads(_b64decode(payload["data"]["access_token"].split(".")[0]))
    assert header == {"alg": "HS256", "typ": "JWT"}


def _b64decode(segment):
    """Decode an unpadded base64url segment."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_gunicorn_refuses_to_start_without_secret_key(tmp_path):
    env = server_env(f"sqlite:///{tmp_path / 'x.db'}", free_port())
    del env["SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "lumyri-accounts: refusing to start: SECRET_KEY is not set" in result.stderr


def test_no_secret_in_the_server_log(server):
    """Whatever the requests above made gunicorn and the app log, no secret is in it."""
    body = signup_body(password="Log-Secret#12345")
    status, _, payload = server.post_json(SIGNUP_PATHS["admin"], body)
    assert status == 201
    server.post_json("/api/v1/auth/login", {"email": body["email"], "password": "Wrong#123456"})
    log = server.log_path.read_text()
    assert "Booting worker" in log  # the log is really being written
    for secret in ("Log-Secret#12345", "Wrong#123456", payload["data"]["access_token"], SECRET_KEY):
        assert secret not in log
    assert "$argon2id$" not in log


def metric_value(server, name, **labels):
    """One sample of /metrics as gunicorn serves it (0 when absent)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return sample_in(text, name, **labels)


def test_metrics_add_up_across_worker_processes(server):
    labels = {"method": "GET", "endpoint": "health.healthz", "status": "200"}
    before = metric_value(server, "lumyri_http_requests_total", **labels)
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda _: server.request("GET", "/healthz"), range(60)))
    # Whichever worker answers /metrics, it reports all 60, whichever workers served them.
    for _ in range(5):
        assert metric_value(server, "lumyri_http_requests_total", **labels) == before + 60


def test_request_log_lines_are_json_with_the_request_id(server):
    server.request("GET", "/healthz", headers={"X-Request-ID": "e2e-log-check"})
    lines = [
        json.loads(line)
        for line in server.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    mine = [line for line in lines if line.get("request_id") == "e2e-log-check"]
    assert len(mine) == 1
    assert (mine[0]["method"], mine[0]["path"], mine[0]["status"]) == ("GET", "/healthz", 200)
    assert "duration_ms" in mine[0]


def test_every_log_line_is_json_gunicorns_own_too(server):
    server.request("GET", "/healthz")
    lines = server.log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # fails on any plain line
    loggers = {record["logger"] for record in records}
    assert "gunicorn.error" in loggers and "app.access" in loggers
    assert any(r["message"].startswith("Booting worker") for r in records)
    assert "gunicorn.access" not in loggers  # the app's line is the access log


def test_a_malformed_header_line_never_puts_its_token_in_the_log(server):
    token = server.post_json(SIGNUP_PATHS["customer"], signup_body())[2]["data"]["access_token"]
    secret_part = token.split(".")[2]
    request = (
        b"GET /api/v1/auth/me HTTP/1.1\r\nHost: x\r\nAuthorization Bearer "
        + token.encode()
        + b"\r\n\r\n"
    )
    status, _, payload = raw_exchange(server, request)
    assert (status, payload["error"]["code"]) == (400, "BAD_REQUEST")
    deadline = time.monotonic() + 5
    while "Invalid HTTP Header" not in server.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log_path.read_text()
    assert "Invalid HTTP Header" in log  # gunicorn did log the line, redacted
    assert token not in log and secret_part not in log
