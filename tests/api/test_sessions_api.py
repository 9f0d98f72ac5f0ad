"""Log in, /me and log out, through the test client, on SQLite and Postgres."""

import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import sqlalchemy as sa

from app import passwords, repository
from app.extensions import db
from app.models import SigningCredential, User
from app.tokens import credential_secret, issue_access_token
from tests.helpers import (
    LOGIN_PATH,
    ME_PATH,
    PASSWORD,
    USER_KEYS,
    b64,
    error_of,
    expected_user,
    fresh_email,
    signup_body,
)


@pytest.fixture(params=["admin", "customer"])
def account(request, api):
    """A fresh account of each kind: its e-mail, token and user object."""
    body = signup_body()
    data = api.signup(request.param, body).get_json()["data"]
    return {
        "kind": request.param,
        "email": body["email"],
        "token": data["access_token"],
        "user": data["user"],
    }


def claims_of(token, **changes):
    """A token's claims, some changed."""
    return {**jwt.decode(token, options={"verify_signature": False}), **changes}


class TestLogin:
    def test_returns_the_signup_body(self, api, account):
        response = api.login(account["email"])
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        data = response.get_json()["data"]
        assert list(data) == ["access_token", "user"]
        assert list(data["user"]) == USER_KEYS
        assert data["user"] == account["user"]
        assert response.get_json()["error"] is None

    def test_token_from_login_works_on_me(self, api, account):
        token = api.login(account["email"]).get_json()["data"]["access_token"]
        assert api.me(token).get_json()["data"]["user"]["id"] == account["user"]["id"]

    def test_email_is_matched_case_insensitively(self, api, account):
        response = api.login("  " + account["email"].upper() + " ")
        assert response.status_code == 200
        assert response.get_json()["data"]["user"]["email"] == account["email"]

    def test_password_is_case_sensitive(self, api, account):
        assert api.login(account["email"], PASSWORD.lower()).status_code == 401

    def test_unknown_email_and_wrong_password_answer_the_same(self, api, account):
        wrong_password = api.login(account["email"], "Wrong@12345")
        unknown_email = api.login("nobody-" + account["email"], PASSWORD)
        assert wrong_password.status_code == unknown_email.status_code == 401
        assert wrong_password.get_data() == unknown_email.get_data()
        assert error_of(wrong_password)["code"] == "INVALID_CREDENTIALS"

    def test_unknown_email_still_runs_an_argon2_verification(self, api, monkeypatch):
        calls = []
        real_verify = passwords.verify_password

        def counting_verify(password_hash, password):
            calls.append(password_hash)
            return real_verify(password_hash, password)

        monkeypatch.setattr(passwords, "verify_password", counting_verify)
        assert api.login(fresh_email(), PASSWORD).status_code == 401
        assert len(calls) == 1 and calls[0].startswith("$argon2id$")

    def test_rehash_when_parameters_change(self, app, api, account):
        def stored_hash():
            with app.app_context():
                return db.session.scalar(
                    sa.select(User.password_hash).where(User.email == account["email"])
                )

        old = stored_hash()
        assert ",t=1," in old
        app.config["ARGON2_TIME_COST"] = 2
        passwords.init_app(app)
        assert api.login(account["email"]).status_code == 200
        new = stored_hash()
        assert new != old and ",t=2," in new
        assert api.login(account["email"]).status_code == 200
        assert stored_hash() == new  # no re-hash once it is current

    def test_no_rehash_when_parameters_are_current(self, app, api, account):
        with app.app_context():
            before = db.session.scalar(
                sa.select(User.password_hash).where(User.email == account["email"])
            )
        api.login(account["email"])
        with app.app_context():
            assert (
                db.session.scalar(
                    sa.select(User.password_hash).where(User.email == account["email"])
                )
                == before
            )

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"password": PASSWORD}, "email"),
            ({"email": "a@example.org"}, "password"),
            ({"email": None, "password": PASSWORD}, "email"),
            ({"email": "a@example.org", "password": 123}, "password"),
            ({"email": "", "password": PASSWORD}, "email"),
            ({"email": "a@example.org", "password": ""}, "password"),
            ({"email": "a\x00@example.org", "password": PASSWORD}, "email"),
            ({"email": "a\ud800@example.org", "password": PASSWORD}, "email"),
            ({"email": "a@example.org", "password": "Pass\udfff@123"}, "password"),
            ({"email": "a@example.org", "password": "P@1a" * 40}, "password"),
        ],
    )
    def test_validation(self, client, body, field):
        response = client.post(LOGIN_PATH, json=body)
        assert response.status_code == 400
        error = error_of(response)
        assert error["code"] == "VALIDATION_ERROR" and list(error["fields"]) == [field]

    def test_invalid_json(self, client):
        response = client.post(
            LOGIN_PATH, data=b'{"email": "a", "email": "b"}', content_type="application/json"
        )
        assert error_of(response)["code"] == "INVALID_JSON"

    def test_not_json(self, client):
        response = client.post(
            LOGIN_PATH, data="email=a", content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 415

    def test_wrong_method(self, client):
        response = client.get(LOGIN_PATH)
        assert response.status_code == 405 and "POST" in response.headers["Allow"]


class TestMe:
    def test_returns_the_user(self, api, account):
        response = api.me(account["token"])
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        payload = response.get_json()
        assert payload == {
            "error": None,
            "data": {"user": account["user"], "email_verified": False},
        }
        user = payload["data"]["user"]
        assert user == expected_user(
            account["kind"], user["id"], user["company"]["id"], "Admin", "Test", account["email"]
        )

    def test_scheme_is_case_insensitive(self, api, account):
        assert api.me(authorization=f"bearer {account['token']}").status_code == 200

    def test_wrong_method(self, client):
        assert client.post(ME_PATH).status_code == 405


def assert_invalid_token(response):
    """401 INVALID_TOKEN with WWW-Authenticate: Bearer and the one body for every case."""
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert error_of(response) == {
        "code": "INVALID_TOKEN",
        "message": "The access token is missing, invalid or expired.",
    }


class TestInvalidTokens:
    """Each way a token can be refused, as its own test."""

    def test_missing_header(self, client):
        assert_invalid_token(client.get(ME_PATH))

    def test_wrong_scheme(self, api, account):
        assert_invalid_token(api.me(authorization=f"Basic {account['token']}"))

    def test_token_without_scheme(self, api, account):
        assert_invalid_token(api.me(authorization=account["token"]))

    def test_empty_bearer(self, api):
        assert_invalid_token(api.me(authorization="Bearer "))

    @pytest.mark.parametrize("token", ["garbage", "a.b.c", "...", "eyJ.eyJ.sig", "Bearer x"])
    def test_garbage(self, api, token):
        assert_invalid_token(api.me(token))

    def test_alg_none(self, api, account):
        header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        payload = b64(json.dumps(claims_of(account["token"])).encode())
        assert_invalid_token(api.me(f"{header}.{payload}."))

    @pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
    def test_another_algorithm(self, app, api, account):
        claims = claims_of(account["token"])
        with app.app_context():
            secret = credential_secret(claims["iss"])
        assert_invalid_token(api.me(jwt.encode(claims, secret, algorithm="HS512")))

    def test_forged_signature(self, api, account):
        forged = jwt.encode(claims_of(account["token"]), b"f" * 32, algorithm="HS256")
        assert_invalid_token(api.me(forged))

    def test_tampered_payload(self, api, account):
        header, _, signature = account["token"].split(".")
        other = b64(json.dumps(claims_of(account["token"], user_id="someone-else")).encode())
        assert_invalid_token(api.me(f"{header}.{other}.{signature}"))

    def test_unknown_issuer(self, app, api, account):
        with app.app_context():
            secret = credential_secret("Q" * 32)
        token = jwt.encode(claims_of(account["token"], iss="Q" * 32), secret, algorithm="HS256")
        assert_invalid_token(api.me(token))

    def test_odd_issuer_never_reaches_the_database(self, app, api, account):
        token = jwt.encode(
            claims_of(account["token"], iss="a\x00'; --"), b"k" * 32, algorithm="HS256"
        )
        assert_invalid_token(api.me(token))

    def test_expired(self, app, api, account):
        with app.app_context():
            user = repository.account_by_id(account["user"]["id"])
            credential = repository.find_credential(claims_of(account["token"])["iss"])
            past = datetime.now(UTC) - timedelta(
                seconds=app.config["ACCESS_TOKEN_TTL_SECONDS"] + 60
            )
            token = issue_access_token(user, credential, now=past)
        assert_invalid_token(api.me(token))

    def test_deleted_account(self, app, api, account):
        with app.app_context():
            db.session.execute(
                sa.delete(SigningCredential).where(
                    SigningCredential.user_id == account["user"]["id"]
                )
            )
            db.session.execute(sa.delete(User).where(User.id == account["user"]["id"]))
            db.session.commit()
        assert_invalid_token(api.me(account["token"]))


class TestLogout:
    def test_revokes_every_token_of_the_account(self, api, account):
        login_token = api.login(account["email"]).get_json()["data"]["access_token"]
        response = api.logout(account["token"])
        assert response.status_code == 204 and response.get_data() == b""
        assert "Content-Type" not in response.headers  # a 204 has no body to type
        assert_invalid_token(api.me(account["token"]))
        assert_invalid_token(api.me(login_token))

    def test_log_in_again_after_logout(self, api, account):
        api.logout(account["token"])
        token = api.login(account["email"]).get_json()["data"]["access_token"]
        assert api.me(token).status_code == 200
        assert claims_of(token)["iss"] != claims_of(account["token"])["iss"]

    def test_other_accounts_keep_their_tokens(self, api, account):
        other = api.signup("customer").get_json()["data"]["access_token"]
        api.logout(account["token"])
        assert api.me(other).status_code == 200

    def test_needs_a_valid_token(self, api, client, account):
        assert_invalid_token(client.post("/api/v1/auth/logout"))
        api.logout(account["token"])
        assert_invalid_token(api.logout(account["token"]))
