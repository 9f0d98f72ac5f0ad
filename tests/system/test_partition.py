"""A network partition under the real gunicorn: Postgres behind a proxy that stops
forwarding, the pooled connections left open and hearing nothing, new ones accepted and
never answered. Every request answers 503 in the envelope well within the contract's
5 s, more requests at once than the server has threads too, /healthz keeps answering,
the mail senders say so once, and the service serves again when the network is back."""

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures import proxied_postgres
from tests.gunicorn_rig import run_server
from tests.helpers import PASSWORD, signup_body

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
MEASURED_BOUND_SECONDS = 4.5  # the contract says 5 s; the test times each answer itself
HANG_SECONDS = 10  # the client's own timeout: a request still unanswered by then hung
RECOVERY_SECONDS = 8
WORKERS, THREADS = 2, 2  # 4 threads in all: the bursts below are larger


@pytest.fixture(scope="module")
def served(postgres_server, tmp_path_factory):
    """(server, proxy): gunicorn reaching a fresh schema through the proxy, /verify with
    no cache (each check asks the database), the mail senders polling every 0.2 s."""
    with proxied_postgres(postgres_server) as (_direct_url, proxied_url, proxy):
        with run_server(
            proxied_url,
            tmp_path_factory.mktemp("partition"),
            migrate_first=False,
            WEB_CONCURRENCY=str(WORKERS),
            GUNICORN_THREADS=str(THREADS),
            TOKEN_CACHE_SECONDS="0",
            MAIL_POLL_SECONDS="0.2",
        ) as server:
            yield server, proxy


def timed(server, method, path, body=None, headers=None):
    """(status, JSON body, seconds) of one request on a new connection; the client gives
    up after HANG_SECONDS."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=HANG_SECONDS)
    started = time.monotonic()
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
    except TimeoutError:
        pytest.fail(f"{method} {path}: no answer within {HANG_SECONDS} s")
    finally:
        connection.close()
    return response.status, json.loads(raw) if raw else None, time.monotonic() - started


def post(server, path, payload):
    """A JSON POST, timed."""
    body = json.dumps(payload).encode()
    return timed(server, "POST", path, body, {"Content-Type": "application/json"})


def requests_of(server, email, token):
    """The requests a partition must not hang, by name."""
    auth = {"Authorization": f"Bearer {token}"}
    return {
        "me": lambda: timed(server, "GET", "/api/v1/auth/me", headers=auth),
        "verify": lambda: timed(server, "GET", "/api/v1/auth/verify", headers=auth),
        "signup": lambda: post(server, "/api/v1/auth/customer/signup", signup_body()),
        "login": lambda: post(server, "/api/v1/auth/login", {"email": email, "password": PASSWORD}),
        "readyz": lambda: timed(server, "GET", "/readyz"),
    }


def assert_unavailable(name, answer):
    """503 SERVICE_UNAVAILABLE in the envelope, within the bound."""
    status, payload, seconds = answer
    assert status == 503, (name, status)
    assert payload == {
        "error": {"code": "SERVICE_UNAVAILABLE", "message": payload["error"]["message"]},
        "data": None,
    }
    assert seconds < MEASURED_BOUND_SECONDS, (name, seconds)


def account(server):
    """(e-mail, token) of a new customer, and every request answered once, so that each
    worker's pool holds connections the partition keeps open."""
    body = signup_body()
    status, payload, _ = post(server, "/api/v1/auth/customer/signup", body)
    assert status == 201
    email, token = body["email"], payload["data"]["access_token"]
    for _ in range(2 * WORKERS):
        for name, call in requests_of(server, email, token).items():
            assert call()[0] in (200, 201), name
    return email, token


def recovers(server, proxy, email, token):
    """Once the network is back, /readyz and the requests answer again."""
    proxy.restore()
    deadline = time.monotonic() + RECOVERY_SECONDS
    while timed(server, "GET", "/readyz")[0] != 200:
        assert time.monotonic() < deadline, "not ready again after the network came back"
        time.sleep(0.1)
    # Each worker ends its own outage, at its first request or its sender's poll after
    # its next probe time (up to a second away): done once every request has answered
    # in 2 x WORKERS rounds in a row (the next test starts from a service that serves).
    rounds = 0
    while rounds < 2 * WORKERS:
        answers = {name: call()[0] for name, call in requests_of(server, email, token).items()}
        failed = {name: status for name, status in answers.items() if status not in (200, 201)}
        assert set(failed.values()) <= {503}, failed
        assert not failed or time.monotonic() < deadline, ("not every worker is back", failed)
        rounds = 0 if failed else rounds + 1
        if failed:
            time.sleep(0.1)


def test_each_request_answers_503_in_time_then_the_service_recovers(served):
    server, proxy = served
    email, token = account(server)
    proxy.partition()
    for name, call in requests_of(server, email, token).items():
        assert_unavailable(name, call())
    status, _, seconds = timed(server, "GET", "/healthz")
    assert status == 200 and seconds < MEASURED_BOUND_SECONDS
    recovers(server, proxy, email, token)


def test_more_requests_than_threads_all_answer_in_time(served):
    """Twelve requests at once on four threads: the first ones wait out their time, the
    others are answered at once behind them, not one time-out after another."""
    server, proxy = served
    email, token = account(server)
    calls = list(requests_of(server, email, token).items())
    burst = [calls[index % len(calls)] for index in range(3 * WORKERS * THREADS)]
    proxy.partition()
    with ThreadPoolExecutor(len(burst) + 1) as pool:
        answers = [(name, pool.submit(call)) for name, call in burst]
        time.sleep(0.2)
        health = pool.submit(timed, server, "GET", "/healthz")
        for name, answer in answers:
            assert_unavailable(name, answer.result())
        status, _, seconds = health.result()
    assert status == 200 and seconds < MEASURED_BOUND_SECONDS
    recovers(server, proxy, email, token)


def test_mail_senders_say_it_once(served):
    """Polling every 0.2 s through a partition of several seconds, each worker's sender
    logs one line about it (and one when it works again), not one a poll."""
    server, proxy = served
    email, token = account(server)
    before = len(server.log_path.read_text().splitlines())
    proxy.partition()
    time.sleep(5)
    lines = server.log_path.read_text().splitlines()[before:]
    recovers(server, proxy, email, token)
    messages = [json.loads(line)["message"] for line in lines]
    failing = [message for message in messages if message.startswith("mail sender:")]
    assert 1 <= len(failing) <= WORKERS, failing
