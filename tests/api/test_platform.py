"""For the platform's services: forward authentication (/verify) and RFC 7662
introspection, their per-process cache and its promise about revocations."""

import base64
import contextlib
import functools
import json
import logging
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import sqlalchemy as sa
from flask import request, request_started

from app.api.verify_fast_path import VerifyFastPath
from app.extensions import db
from app.models import SigningCredential, User
from app.tokens import credential_secret
from tests.helpers import ADMIN_LEAVES, Api, account, bearer, error_of, metric_sample

VERIFY = "/api/v1/auth/verify"
INTROSPECT = "/api/v1/auth/introspect"
CLIENT_SECRET = "s3cret-of-the-tickets-service-0123456789"
OTHER_SECRET = "another-client-secret-abcdefghijklmnop"
CLIENTS = {"tickets": CLIENT_SECRET, "live.map-2": OTHER_SECRET}
IDENTITY_HEADERS = (
    "X-User-Id",
    "X-Company-Id",
    "X-User-Role",
    "X-User-Role-Id",
    "X-User-Permissions",
    "X-Session-Id",
    "X-Email-Verified",
)
INTROSPECTION_KEYS = {
    "active",
    "token_type",
    "sub",
    "user_id",
    "company_id",
    "role",
    "role_id",
    "permissions",
    "session_id",
    "email_verified",
    "iss",
    "iat",
    "exp",
}
# The system roles' fixed ids (the contract: the same in every deployment).
ROLE_IDS = {
    "Admin": "6a0f1c1e-2d7b-4c55-9a57-0e3c2b6f0a01",
    "Customer": "6a0f1c1e-2d7b-4c55-9a57-0e3c2b6f0a02",
}
LEAVES = {"Admin": ADMIN_LEAVES, "Customer": []}


@pytest.fixture
def make_app(make_app):
    """The suite's `make_app`, with the two introspection clients unless told otherwise."""
    return functools.partial(make_app, INTROSPECTION_CLIENTS=CLIENTS)


@pytest.fixture
def platform(make_app):
    """An app with the default cache window and two introspection clients."""
    return make_app()


@pytest.fixture
def client(platform):
    """Its test client (overrides the suite's, so `api` uses it too)."""
    return platform.test_client()


def basic(client_id, secret):
    """HTTP Basic credentials."""
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def introspect(client, token, credentials=None, **extra):
    """POST the form to the introspection endpoint."""
    headers = basic("tickets", CLIENT_SECRET) if credentials is None else credentials
    return client.post(INTROSPECT, data={"token": token, **extra}, headers=headers)


def session_of(app, token):
    """The id of the signing credential (the session) that signed a token, from the
    database."""
    key = jwt.decode(token, options={"verify_signature": False})["iss"]
    with app.app_context():
        return db.session.scalar(
            sa.select(SigningCredential.id).where(SigningCredential.key == key)
        )


class TestVerify:
    @pytest.mark.parametrize("kind", ["admin", "customer"])
    def test_a_valid_token_gets_its_identity_in_headers_and_body(self, client, api, platform, kind):
        token, user = account(api, kind)
        session_id = session_of(platform, token)
        response = client.get(VERIFY, headers=bearer(token))
        assert response.status_code == 200
        role = "Admin" if kind == "admin" else "Customer"
        assert response.headers["X-User-Id"] == user["id"]
        assert response.headers["X-Company-Id"] == user["company"]["id"]
        assert response.headers["X-User-Role"] == role
        assert response.headers["X-User-Role-Id"] == ROLE_IDS[role]
        assert response.headers["X-User-Permissions"] == ",".join(LEAVES[role])
        assert response.headers["X-Session-Id"] == session_id
        assert response.headers["X-Email-Verified"] == "false"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.get_json() == {
            "error": None,
            "data": {
                "user_id": user["id"],
                "company_id": user["company"]["id"],
                "role": role,
                "role_id": ROLE_IDS[role],
                "permissions": LEAVES[role],
                "session_id": session_id,
                "email_verified": False,
            },
        }
        if kind == "customer":
            assert response.headers["X-Company-Id"] == ""
            assert response.headers["X-User-Permissions"] == ""  # present, empty
        else:
            assert len(ADMIN_LEAVES) == 20 == len(set(ADMIN_LEAVES))

    def test_identity_headers_the_client_sent_are_ignored(self, client, api):
        token, user = account(api)
        forged = {name: "forged" for name in IDENTITY_HEADERS}
        response = client.get(VERIFY, headers={**bearer(token), **forged})
        assert response.headers["X-User-Id"] == user["id"]
        assert "forged" not in response.headers.values()

    def test_head_answers_the_same_without_a_body(self, client, api):
        token, user = account(api)
        response = client.head(VERIFY, headers=bearer(token))
        assert response.status_code == 200 and response.get_data() == b""
        assert response.headers["X-User-Id"] == user["id"]

    @pytest.mark.parametrize(
        "authorization",
        ["", "Bearer", "Bearer x.y.z", "Basic dTpw", "Bearer eyJhbGciOiJub25lIn0.e30."],
    )
    def test_anything_else_is_401_without_identity_headers(self, client, authorization):
        response = client.get(VERIFY, headers={"Authorization": authorization})
        assert response.status_code == 401
        assert error_of(response)["code"] == "INVALID_TOKEN"
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert not set(IDENTITY_HEADERS) & set(response.headers.keys())

    def test_an_expired_token_is_401(self, client, api, platform):
        token, _ = account(api)
        claims = jwt.decode(token, options={"verify_signature": False})
        past = datetime.now(UTC) - timedelta(hours=1)
        claims.update(iat=past - timedelta(days=1), exp=past)
        with platform.app_context():
            expired = jwt.encode(claims, credential_secret(claims["iss"]), algorithm="HS256")
        assert client.get(VERIFY, headers=bearer(expired)).status_code == 401

    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
    def test_other_methods_are_405_with_allow(self, client, method):
        response = client.open(VERIFY, method=method)
        assert response.status_code == 405
        assert error_of(response)["code"] == "METHOD_NOT_ALLOWED"
        assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def statements_during(app, action):
    """How many SQL statements `action()` sends to the database."""
    with app.app_context():
        engine = db.engine
    seen = []

    def count(*_args):
        seen.append(1)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        action()
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    return len(seen)


class TestCache:
    def test_a_cached_token_costs_no_query(self, client, api, platform):
        token, _ = account(api)
        assert statements_during(platform, lambda: client.get(VERIFY, headers=bearer(token))) > 0
        again = statements_during(platform, lambda: client.get(VERIFY, headers=bearer(token)))
        assert again == 0
        assert statements_during(platform, lambda: introspect(client, token)) == 0

    def test_a_revocation_is_seen_within_the_window_and_at_once_elsewhere(
        self, make_app, cache_window
    ):
        app = make_app(TOKEN_CACHE_SECONDS=1)
        client = app.test_client()
        token, _ = account(Api(client))
        assert client.get(VERIFY, headers=bearer(token)).status_code == 200
        assert client.post("/api/v1/auth/logout", headers=bearer(token)).status_code == 204
        assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401
        cache_window.advance(1.1)
        assert client.get(VERIFY, headers=bearer(token)).status_code == 401
        assert introspect(client, token).get_json() == {"active": False}

    def test_without_a_cache_a_revocation_is_seen_at_once(self, make_app):
        app = make_app(TOKEN_CACHE_SECONDS=0)
        client = app.test_client()
        token, _ = account(Api(client))
        assert client.get(VERIFY, headers=bearer(token)).status_code == 200
        client.post("/api/v1/auth/logout", headers=bearer(token))
        assert client.get(VERIFY, headers=bearer(token)).status_code == 401

    def test_a_verified_address_shows_within_the_window(self, make_app, cache_window):
        app = make_app(TOKEN_CACHE_SECONDS=1)
        client = app.test_client()
        token, user = account(Api(client))
        assert client.get(VERIFY, headers=bearer(token)).headers["X-Email-Verified"] == "false"
        with app.app_context():
            db.session.execute(
                sa.update(User).where(User.id == user["id"]).values(email_verified_at=sa.func.now())
            )
            db.session.commit()
        cache_window.advance(1.1)
        response = client.get(VERIFY, headers=bearer(token))
        assert response.headers["X-Email-Verified"] == "true"
        assert response.get_json()["data"]["email_verified"] is True
        assert introspect(client, token).get_json()["email_verified"] is True


class TestIntrospection:
    @pytest.mark.parametrize("kind", ["admin", "customer"])
    def test_an_active_token(self, client, api, platform, kind):
        token, user = account(api, kind)
        response = introspect(client, token, token_type_hint="access_token")
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        answer = response.get_json()
        claims = jwt.decode(token, options={"verify_signature": False})
        role = "Admin" if kind == "admin" else "Customer"
        assert answer == {
            "active": True,
            "token_type": "access_token",
            "sub": user["id"],
            "user_id": user["id"],
            "company_id": user["company"]["id"],
            "role": role,
            "role_id": ROLE_IDS[role],
            "permissions": LEAVES[role],
            "session_id": session_of(platform, token),
            "email_verified": False,
            "iss": claims["iss"],
            "iat": claims["iat"],
            "exp": claims["exp"],
        }
        assert set(answer) == INTROSPECTION_KEYS

    def test_the_other_client_may_introspect_too(self, client, api):
        token, _ = account(api)
        response = introspect(client, token, basic("live.map-2", OTHER_SECRET))
        assert response.get_json()["active"] is True

    @pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 5000])
    def test_an_invalid_token_is_exactly_inactive(self, client, token):
        response = introspect(client, token)
        assert response.status_code == 200
        assert response.get_data(as_text=True).strip() == '{"active":false}'
        assert response.headers["Cache-Control"] == "no-store"

    @pytest.mark.parametrize("seconds_past", [0, 1, 5])
    def test_a_token_past_its_exp_is_inactive_no_leeway(self, client, api, platform, seconds_past):
        token, _ = account(api)
        assert introspect(client, token).get_json()["active"] is True  # cached now
        claims = jwt.decode(token, options={"verify_signature": False})
        exp = datetime.now(UTC) - timedelta(seconds=seconds_past)
        claims.update(iat=exp - timedelta(days=1), exp=exp)
        with platform.app_context():
            expired = jwt.encode(claims, credential_secret(claims["iss"]), algorithm="HS256")
        assert introspect(client, expired).get_json() == {"active": False}
        assert client.get(VERIFY, headers=bearer(expired)).status_code == 401

    @pytest.mark.parametrize("where", [0, 1])
    def test_a_token_nested_deep_is_inactive_not_a_5xx(self, client, api, where):
        token, _ = account(api)
        segments = token.split(".")
        nested = '{"x":' + "[" * 1000 + "]" * 1000 + "}"
        segments[where] = base64.urlsafe_b64encode(nested.encode()).rstrip(b"=").decode()
        response = introspect(client, ".".join(segments))
        assert (response.status_code, response.get_json()) == (200, {"active": False})

    def test_a_revoked_token_is_inactive(self, make_app):
        app = make_app(TOKEN_CACHE_SECONDS=0)
        client = app.test_client()
        token, _ = account(Api(client))
        client.post("/api/v1/auth/logout", headers=bearer(token))
        assert introspect(client, token).get_json() == {"active": False}

    @pytest.mark.parametrize(
        "credentials",
        [
            {},
            basic("tickets", "wrong-secret-wrong-secret-wrong-secret"),
            basic("tickets", CLIENT_SECRET[:-1]),
            basic("nobody", CLIENT_SECRET),
            basic("live.map-2", CLIENT_SECRET),
            {"Authorization": f"Bearer {CLIENT_SECRET}"},
            {"Authorization": "Basic !!!not-base64"},
        ],
        ids=["none", "wrong", "prefix", "unknown", "other-clients", "bearer", "garbled"],
    )
    def test_the_client_is_checked_first(self, client, api, credentials):
        token, _ = account(api)
        for data in ({"token": token}, {}, {"token": ""}):
            response = client.post(INTROSPECT, data=data, headers=credentials)
            assert response.status_code == 401
            assert error_of(response)["code"] == "INVALID_CLIENT"
            assert response.headers["WWW-Authenticate"] == 'Basic realm="introspection"'
        wrong_type = client.post(INTROSPECT, json={"token": token}, headers=credentials)
        assert wrong_type.status_code == 401

    def test_no_clients_configured_refuses_everyone(self, make_app, api):
        app = make_app(INTROSPECTION_CLIENTS={})
        token, _ = account(api)
        response = introspect(app.test_client(), token)
        assert response.status_code == 401 and error_of(response)["code"] == "INVALID_CLIENT"

    @pytest.mark.parametrize("data", [{}, {"token": ""}, {"token_type_hint": "access_token"}])
    def test_a_missing_or_empty_token_is_a_validation_error(self, client, data):
        response = client.post(INTROSPECT, data=data, headers=basic("tickets", CLIENT_SECRET))
        assert response.status_code == 400
        error = error_of(response)
        assert error["code"] == "VALIDATION_ERROR" and "token" in error["fields"]

    def test_a_repeated_token_is_a_validation_error(self, client, api):
        token, _ = account(api)
        response = client.post(
            INTROSPECT,
            data=f"token={token}&token=x",
            content_type="application/x-www-form-urlencoded",
            headers=basic("tickets", CLIENT_SECRET),
        )
        assert response.status_code == 400 and error_of(response)["code"] == "VALIDATION_ERROR"

    def test_a_json_body_is_415(self, client, api):
        token, _ = account(api)
        response = client.post(
            INTROSPECT, json={"token": token}, headers=basic("tickets", CLIENT_SECRET)
        )
        assert response.status_code == 415
        assert error_of(response)["code"] == "UNSUPPORTED_MEDIA_TYPE"

    def test_a_body_over_the_limit_is_413(self, client):
        response = client.post(
            INTROSPECT,
            data={"token": "x" * (70 * 1024)},
            headers=basic("tickets", CLIENT_SECRET),
        )
        assert response.status_code == 413
        assert error_of(response)["code"] == "PAYLOAD_TOO_LARGE"

    @pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
    def test_other_methods_are_405(self, client, method):
        response = client.open(INTROSPECT, method=method)
        assert response.status_code == 405 and "POST" in response.headers["Allow"]


def token_checks(client, endpoint, outcome):
    """lumyri_token_checks_total for one endpoint and outcome."""
    return metric_sample(client, "lumyri_token_checks_total", endpoint=endpoint, outcome=outcome)


def test_outcomes_are_counted(client, api):
    token, _ = account(api)
    wanted = [
        ("verify", "valid"),
        ("verify", "invalid"),
        ("introspect", "valid"),
        ("introspect", "invalid"),
        ("introspect", "invalid_client"),
    ]
    before = {key: token_checks(client, *key) for key in wanted}
    client.get(VERIFY, headers=bearer(token))
    client.get(VERIFY, headers=bearer(token))
    client.get(VERIFY)
    introspect(client, token)
    introspect(client, "nope")
    introspect(client, token, {})
    after = {key: token_checks(client, *key) for key in wanted}
    assert {key: after[key] - before[key] for key in wanted} == {
        ("verify", "valid"): 2,
        ("verify", "invalid"): 1,
        ("introspect", "valid"): 1,
        ("introspect", "invalid"): 1,
        ("introspect", "invalid_client"): 1,
    }


@pytest.mark.parametrize("logged", [True, False])
def test_the_verify_log_line_may_be_turned_off(make_app, caplog, logged):
    app = make_app(LOG_VERIFY_REQUESTS=logged)
    client = app.test_client()
    token, _ = account(Api(client))
    with caplog.at_level(logging.INFO, logger="app.access"):
        client.get(VERIFY, headers=bearer(token))
        client.get(VERIFY)  # a refusal is always logged
    lines = [r for r in caplog.records if r.name == "app.access" and r.path == VERIFY]
    assert [r.status for r in lines] == ([200, 401] if logged else [401])


def test_the_openapi_document_describes_both(client):
    document = client.get("/api/v1/openapi.json").get_json()
    verify = document["paths"][VERIFY]["get"]
    headers = verify["responses"]["200"]["headers"]
    assert set(IDENTITY_HEADERS) <= set(headers)
    assert "enum" not in headers["X-User-Role"]["schema"]  # custom roles have any name
    schemas = document["components"]["schemas"]
    reported = {"role", "role_id", "permissions", "session_id"}
    assert reported <= set(schemas["Identity"]["required"])
    assert schemas["Identity"]["properties"]["permissions"]["type"] == "array"
    assert "enum" not in schemas["Identity"]["properties"]["role"]
    assert set(schemas["Introspection"]["properties"]) == INTROSPECTION_KEYS
    introspection = document["paths"][INTROSPECT]["post"]
    assert "application/x-www-form-urlencoded" in introspection["requestBody"]["content"]
    assert introspection["responses"]["401"]["headers"]["WWW-Authenticate"]
    assert json.dumps(document["components"]["securitySchemes"]["introspectionClient"]) == (
        '{"type": "http", "scheme": "basic"}'
    )


@contextlib.contextmanager
def dispatches(app):
    """The requests Flask dispatches to a view meanwhile (the fast path dispatches none)."""
    seen = []

    def record(_sender, **_extra):
        seen.append(request.endpoint)

    request_started.connect(record, app, weak=False)
    try:
        yield seen
    finally:
        request_started.disconnect(record, app)


class TestFastPath:
    """A cached token's /verify is answered before Flask: the same answer as the view's."""

    def test_the_cached_answer_is_the_views_answer(self, client, api, platform):
        token, _ = account(api)
        fast_path = platform.wsgi_app
        assert isinstance(fast_path, VerifyFastPath)
        platform.wsgi_app = fast_path.next  # Flask's dispatch and the view alone answer
        try:
            with dispatches(platform) as dispatched:
                viewed = client.get(VERIFY, headers={**bearer(token), "X-Request-ID": "first-1"})
                view_head = client.head(VERIFY, headers=bearer(token))
        finally:
            platform.wsgi_app = fast_path
        assert len(dispatched) == 2 and viewed.status_code == 200
        with dispatches(platform) as dispatched:
            cached = client.get(VERIFY, headers={**bearer(token), "X-Request-ID": "second-2"})
            head = client.head(VERIFY, headers=bearer(token))
            queries = statements_during(platform, lambda: client.get(VERIFY, headers=bearer(token)))
        assert dispatched == [] and queries == 0  # answered by the fast path, from the cache
        assert (viewed.status_code, viewed.get_data()) == (cached.status_code, cached.get_data())
        ignore = {"X-Request-ID"}
        assert {k: v for k, v in viewed.headers.items() if k not in ignore} == {
            k: v for k, v in cached.headers.items() if k not in ignore
        }
        assert (viewed.headers["X-Request-ID"], cached.headers["X-Request-ID"]) == (
            "first-1",
            "second-2",
        )
        assert head.get_data() == b"" == view_head.get_data()
        assert {k: v for k, v in head.headers.items() if k not in ignore} == {
            k: v for k, v in view_head.headers.items() if k not in ignore
        }

    def test_a_cached_answer_is_logged_and_counted(self, client, api, caplog):
        token, _ = account(api)
        client.get(VERIFY, headers=bearer(token))
        before = token_checks(client, "verify", "valid")
        with caplog.at_level(logging.INFO, logger="app.access"):
            client.get(VERIFY, headers={**bearer(token), "X-Request-ID": "fast-log-1"})
        (line,) = [r for r in caplog.records if r.name == "app.access" and r.path == VERIFY]
        assert (line.status, line.request_id, line.method) == (200, "fast-log-1", "GET")
        assert token_checks(client, "verify", "valid") == before + 1

    def test_a_cross_origin_call_goes_through_flask_cors(self, make_app):
        app = make_app(CORS_ORIGINS=["https://app.lumyri.example"])
        client = app.test_client()
        token, _ = account(Api(client))
        client.get(VERIFY, headers=bearer(token))  # now cached
        response = client.get(
            VERIFY, headers={**bearer(token), "Origin": "https://app.lumyri.example"}
        )
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.lumyri.example"
