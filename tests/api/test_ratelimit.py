"""Abuse limits: sign-up per IP and endpoint, log-in per IP and per IP and e-mail;
checked after validation; memory storage per process, Redis shared."""

import secrets

import pytest

from tests.helpers import LOGIN_PATH, Api, error_of, fresh_email, signup_body


@pytest.fixture
def limited_app(make_app):
    """Build apps with the limits on (small ones, so a test can exhaust them) with
    `make_app`, on the test's database; an Api on each."""

    def build(**settings):
        return Api(make_app(**{**limit_settings(), **settings}).test_client())

    return build


def limit_settings():
    """The limits on, small, under a key prefix of their own."""
    return {
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_SIGNUP": "3/minute",
        "RATELIMIT_LOGIN": "2/minute",
        "RATELIMIT_LOGIN_PER_IP": "4/minute",
        "RATELIMIT_KEY_PREFIX": f"lumyri-test-{secrets.token_hex(4)}",
    }


@pytest.fixture
def limited(limited_app):
    """An Api on an app whose limits are on."""
    return limited_app()


def assert_rate_limited(response):
    """429 RATE_LIMITED with a whole-second Retry-After."""
    assert response.status_code == 429
    assert error_of(response)["code"] == "RATE_LIMITED"
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_signup_limit_per_ip(limited):
    for _ in range(3):
        assert limited.signup("admin").status_code == 201
    assert_rate_limited(limited.signup("admin"))


def test_each_signup_endpoint_has_its_own_budget(limited):
    for _ in range(3):
        limited.signup("admin")
    assert_rate_limited(limited.signup("admin"))
    assert limited.signup("customer").status_code == 201


def test_refused_requests_spend_nothing_and_keep_their_answer(limited):
    for _ in range(5):
        assert limited.signup("admin", {"email": "x"}).status_code == 400
        assert limited.post_raw("admin", b"{", "application/json").status_code == 400
        assert limited.post_raw("admin", b"{}", "text/plain").status_code == 415
        assert limited.signup("admin", signup_body(first_name="x" * 70000)).status_code == 413
    for _ in range(3):
        assert limited.signup("admin").status_code == 201
    assert_rate_limited(limited.signup("admin"))
    # Over the limit, a bad request still gets its own answer, not 429.
    assert limited.signup("admin", {"email": "x"}).status_code == 400
    assert limited.post_raw("admin", b"{}", "text/plain").status_code == 415


def test_login_limit_per_ip_and_email(limited):
    body = signup_body()
    limited.signup("customer", body)
    assert limited.login(body["email"], "Wrong@12345").status_code == 401
    assert limited.login(body["email"].upper()).status_code == 200
    assert_rate_limited(limited.login(body["email"]))
    # another e-mail from the same address still has its own budget
    assert limited.login(fresh_email(), "Wrong@12345").status_code == 401


def test_login_limit_per_ip(limited):
    for _ in range(4):
        assert limited.login(fresh_email()).status_code == 401
    assert_rate_limited(limited.login(fresh_email()))


def test_invalid_login_spends_nothing(limited):
    for _ in range(6):
        assert limited.client.post(LOGIN_PATH, json={"email": ""}).status_code == 400
    assert limited.login(fresh_email()).status_code == 401


def test_limits_can_be_turned_off(limited_app):
    api = limited_app(RATELIMIT_ENABLED=False)
    for _ in range(5):
        assert api.signup("customer").status_code == 201


def test_forwarded_for_is_ignored_without_trusted_proxies(limited):
    for i in range(3):
        limited.signup("admin", headers={"X-Forwarded-For": f"10.0.0.{i}"})
    assert_rate_limited(limited.signup("admin", headers={"X-Forwarded-For": "10.0.0.99"}))


def test_forwarded_for_is_used_behind_a_trusted_proxy(limited_app):
    api = limited_app(TRUSTED_PROXIES=1)
    for _ in range(3):
        api.signup("admin", headers={"X-Forwarded-For": "203.0.113.1"})
    assert_rate_limited(api.signup("admin", headers={"X-Forwarded-For": "203.0.113.1"}))
    assert api.signup("admin", headers={"X-Forwarded-For": "203.0.113.2"}).status_code == 201


def test_memory_storage_is_per_process(limited_app):
    first, second = limited_app(), limited_app()
    for _ in range(3):
        first.signup("customer")
    assert_rate_limited(first.signup("customer"))
    assert second.signup("customer").status_code == 201


def test_redis_storage_is_shared(limited_app, redis_server):
    prefix = f"lumyri-test-{secrets.token_hex(4)}"
    shared = {"RATELIMIT_STORAGE_URI": redis_server, "RATELIMIT_KEY_PREFIX": prefix}
    first, second = limited_app(**shared), limited_app(**shared)
    for api in (first, second, first):
        assert api.signup("customer").status_code == 201
    assert_rate_limited(second.signup("customer"))


def test_unreachable_limit_storage_lets_requests_through(limited_app, caplog):
    api = limited_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    assert api.signup("customer").status_code == 201
    assert "rate-limit storage unavailable" in caplog.text
