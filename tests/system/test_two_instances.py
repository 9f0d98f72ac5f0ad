"""Two gunicorn instances, one Postgres, one Redis: what scaling out must keep true."""

import json
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from tests.fixtures import postgres_schema
from tests.gunicorn_rig import run_server
from tests.helpers import LOGIN_PATH, ME_PATH, SIGNUP_PATHS, fresh_email, signup_body

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture(scope="module")
def pair(postgres_server, redis_server, tmp_path_factory):
    """Two instances on different ports, sharing the database, Redis and SECRET_KEY."""
    shared = {
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_STORAGE_URI": redis_server,
        "RATELIMIT_KEY_PREFIX": f"lumyri-pair-{secrets.token_hex(4)}",
        "RATELIMIT_SIGNUP": "1000/minute",
        "RATELIMIT_LOGIN": "3/minute",
        "WEB_CONCURRENCY": "2",
    }
    logs = tmp_path_factory.mktemp("pair")
    with postgres_schema(postgres_server) as url:
        with run_server(url, logs, **shared) as first:
            with run_server(url, logs, migrate_first=False, **shared) as second:
                yield first, second


def count_accounts(server, email):
    """Accounts with this e-mail, counted in the shared database."""
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            return connection.scalar(
                sa.text("SELECT count(*) FROM users WHERE email = :e"), {"e": email}
            )
    finally:
        engine.dispose()


def test_same_email_burst_across_both_gives_one_account(pair):
    email = fresh_email("pair-burst")
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(
            pool.map(
                lambda i: pair[i % 2].post_json(SIGNUP_PATHS["customer"], signup_body(email=email)),
                range(20),
            )
        )
    assert sorted(status for status, _, _ in results) == [201] + [409] * 19
    assert count_accounts(pair[0], email) == 1


def test_rate_limit_is_shared(pair):
    first, second = pair
    email = fresh_email("pair-limit")
    wrong = {"email": email, "password": "Wrong@12345"}
    assert [server.post_json(LOGIN_PATH, wrong)[0] for server in (first, second, first)] == [
        401
    ] * 3
    status, headers, body = second.post_json(LOGIN_PATH, wrong)
    assert status == 429 and body["error"]["code"] == "RATE_LIMITED"
    assert int(headers["Retry-After"]) >= 1


def test_idempotent_retry_to_the_other_instance_gets_the_first_answer(pair):
    first, second = pair
    body = signup_body(email=fresh_email("pair-idem"))
    headers = {"Content-Type": "application/json", "Idempotency-Key": "pair-key-1"}
    raw = json.dumps(body).encode()
    status_one, _, one = first.request("POST", SIGNUP_PATHS["admin"], raw, headers)
    status_two, _, two = second.request("POST", SIGNUP_PATHS["admin"], raw, headers)
    assert status_one == status_two == 201
    assert two["data"]["user"] == one["data"]["user"]
    assert count_accounts(first, body["email"]) == 1


def test_token_from_one_is_accepted_by_the_other(pair):
    first, second = pair
    status, _, payload = first.post_json(SIGNUP_PATHS["customer"], signup_body())
    assert status == 201
    token = payload["data"]["access_token"]
    status, _, me = second.request("GET", ME_PATH, headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and me["data"]["user"] == payload["data"]["user"]
