"""The sign-up endpoints through the app factory's test client, on SQLite and Postgres."""

import json
import re
import uuid

import jwt
import pytest
import sqlalchemy as sa

from app import passwords
from app.extensions import db
from app.models import Company, SigningCredential, User
from tests.helpers import (
    COMPANY_KEYS,
    PASSWORD,
    SIGNUP_PATHS,
    USER_KEYS,
    error_of,
    expected_user,
    fresh_email,
    signup_body,
)

KINDS = ["admin", "customer"]


def count_rows(app, model):
    """How many rows a table holds."""
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def stored_user(app, email):
    """The stored user row for an e-mail, or None."""
    with app.app_context():
        return db.session.scalar(sa.select(User).where(User.email == email))


def assert_uuid4(value):
    """The value is a canonical uuid4 string."""
    assert str(uuid.UUID(value, version=4)) == value


class TestCreated:
    """201 bodies, key for key at every level."""

    @pytest.mark.parametrize("kind", KINDS)
    def test_body_matches_the_contract_exactly(self, api, kind):
        body = signup_body(first_name="Admin", last_name="Test")
        response = api.signup(kind, body)
        assert response.status_code == 201
        assert response.mimetype == "application/json"
        payload = response.get_json()
        assert list(payload) == ["error", "data"]
        assert payload["error"] is None
        assert list(payload["data"]) == ["access_token", "user"]
        user = payload["data"]["user"]
        assert list(user) == USER_KEYS
        assert list(user["company"]) == COMPANY_KEYS
        assert_uuid4(user["id"])
        if kind == "admin":
            assert_uuid4(user["company"]["id"])
        assert user == expected_user(
            kind, user["id"], user["company"]["id"], "Admin", "Test", body["email"]
        )

    @pytest.mark.parametrize("kind", KINDS)
    def test_token_responses_are_not_cached(self, api, kind):
        response = api.signup(kind)
        assert response.headers["Cache-Control"] == "no-store"

    def test_admin_gets_a_new_company_each(self, app, api):
        first = api.signup("admin").get_json()["data"]["user"]["company"]["id"]
        second = api.signup("admin").get_json()["data"]["user"]["company"]["id"]
        assert first != second
        assert count_rows(app, Company) == 2

    def test_customer_gets_no_company(self, app, api):
        body = signup_body()
        api.signup("customer", body)
        assert stored_user(app, body["email"]).company_id is None
        assert count_rows(app, Company) == 0

    @pytest.mark.parametrize("kind", KINDS)
    def test_token_claims(self, app, api, kind):
        data = api.signup(kind).get_json()["data"]
        token, user = data["access_token"], data["user"]
        header = jwt.get_unverified_header(token)
        assert header == {"alg": "HS256", "typ": "JWT"}
        claims = jwt.decode(token, options={"verify_signature": False})
        assert set(claims) == {"company_id", "iss", "user_id", "iat", "exp"}
        assert claims["user_id"] == user["id"]
        assert claims["company_id"] == user["company"]["id"]
        assert re.fullmatch(r"[A-Za-z0-9]{32}", claims["iss"])
        assert claims["exp"] - claims["iat"] == app.config["ACCESS_TOKEN_TTL_SECONDS"]
        with app.app_context():
            credential = db.session.scalar(
                sa.select(SigningCredential).where(SigningCredential.user_id == user["id"])
            )
            assert credential.key == claims["iss"]

    @pytest.mark.parametrize("kind", KINDS)
    def test_password_is_stored_only_as_an_argon2id_hash(self, app, api, kind):
        body = signup_body()
        response = api.signup(kind, body)
        assert PASSWORD not in response.get_data(as_text=True)
        assert "argon2" not in response.get_data(as_text=True)
        stored = stored_user(app, body["email"])
        assert stored.password_hash.startswith("$argon2id$")
        with app.app_context():
            assert passwords.verify_password(stored.password_hash, PASSWORD)


class TestNormalisation:
    """What is stored and returned for the fields."""

    @pytest.mark.parametrize("kind", KINDS)
    def test_email_is_trimmed_and_lower_cased(self, app, api, kind):
        response = api.signup(kind, signup_body(email="  Mixed.Case@Example.ORG \t"))
        assert response.status_code == 201
        assert response.get_json()["data"]["user"]["email"] == "mixed.case@example.org"
        assert stored_user(app, "mixed.case@example.org") is not None

    def test_names_are_trimmed(self, api):
        response = api.signup("customer", signup_body(first_name="  Ada ", last_name="\tLove "))
        user = response.get_json()["data"]["user"]
        assert (user["first_name"], user["last_name"]) == ("Ada", "Love")

    def test_sql_injection_strings_are_stored_verbatim(self, app, api):
        name = "Robert'); DROP TABLE users;--"
        response = api.signup("customer", signup_body(first_name=name))
        assert response.status_code == 201
        assert response.get_json()["data"]["user"]["first_name"] == name
        assert count_rows(app, User) == 1

    def test_idn_domain_is_accepted(self, api):
        response = api.signup("customer", signup_body(email="jürgen@bücher.example"))
        assert response.status_code == 201
        assert response.get_json()["data"]["user"]["email"] == "jürgen@bücher.example"

    @pytest.mark.parametrize("kind", KINDS)
    def test_extra_fields_cannot_choose_role_company_state_or_id(self, app, api, kind):
        chosen = str(uuid.uuid4())
        body = signup_body(
            id=chosen,
            role="Admin" if kind == "customer" else "Customer",
            role_id=chosen,
            company={"id": chosen, "name": "Evil"},
            company_id=chosen,
            state="ACTIVED" if kind == "admin" else "CARD_NOT_FOUND",
            password_hash="$argon2id$v=19$forged",
            access_token="forged",
        )
        response = api.signup(kind, body)
        assert response.status_code == 201
        user = response.get_json()["data"]["user"]
        assert chosen not in (user["id"], user["company"]["id"])
        assert user == expected_user(
            kind, user["id"], user["company"]["id"], "Admin", "Test", body["email"]
        )
        assert stored_user(app, body["email"]).password_hash.startswith("$argon2id$v=19$m=")


class TestDuplicates:
    """409 EMAIL_TAKEN, whatever the case, on either endpoint, with nothing half-written."""

    @pytest.mark.parametrize("first", KINDS)
    @pytest.mark.parametrize("second", KINDS)
    def test_same_email_in_another_case_is_taken(self, app, api, first, second):
        email = fresh_email()
        assert api.signup(first, signup_body(email=email)).status_code == 201
        response = api.signup(second, signup_body(email=" " + email.upper()))
        assert response.status_code == 409
        assert error_of(response)["code"] == "EMAIL_TAKEN"
        assert count_rows(app, User) == 1
        assert count_rows(app, SigningCredential) == 1
        assert count_rows(app, Company) == (1 if first == "admin" else 0)

    def test_race_is_settled_by_the_unique_index(self, app, api, monkeypatch):
        """A second sign-up commits while the first is hashing: the first gets 409, not 500."""
        email = fresh_email()
        real_hash = passwords.hash_password
        raced = []

        def hash_while_another_signs_up(password):
            monkeypatch.setattr(passwords, "hash_password", real_hash)
            raced.append(api.signup("customer", signup_body(email=email)).status_code)
            return real_hash(password)

        monkeypatch.setattr(passwords, "hash_password", hash_while_another_signs_up)
        response = api.signup("admin", signup_body(email=email))
        assert raced == [201]
        assert response.status_code == 409
        assert error_of(response)["code"] == "EMAIL_TAKEN"
        assert count_rows(app, User) == 1
        assert count_rows(app, Company) == 0


class TestValidation:
    """400 VALIDATION_ERROR: every broken rule of every field, at once."""

    def test_every_field_reported_at_once(self, app, api):
        response = api.signup(
            "admin", {"first_name": "   ", "last_name": 7, "email": "nope", "password": "short"}
        )
        assert response.status_code == 400
        error = error_of(response)
        assert error["code"] == "VALIDATION_ERROR"
        fields = error["fields"]
        assert set(fields) == {"first_name", "last_name", "email", "password"}
        assert fields["first_name"] == ["Must not be empty."]
        assert fields["last_name"] == ["Not a valid string."]
        assert len(fields["email"]) == 1
        assert fields["password"] == [
            "Must be more than 8 characters.",
            "Must contain at least one upper-case letter.",
            "Must contain at least one digit.",
            "Must contain at least one special character.",
        ]
        assert count_rows(app, User) == 0

    @pytest.mark.parametrize("kind", KINDS)
    def test_missing_fields(self, api, kind):
        response = api.signup(kind, {"unrelated": 1})
        fields = error_of(response)["fields"]
        assert fields == {
            name: ["Missing data for required field."]
            for name in ("first_name", "last_name", "email", "password")
        }

    @pytest.mark.parametrize("value", [None, 12, 1.5, True, [], {}, ["a"]])
    @pytest.mark.parametrize("field", ["first_name", "last_name", "email", "password"])
    def test_wrong_types_and_nulls(self, api, field, value):
        response = api.signup("customer", signup_body(**{field: value}))
        assert response.status_code == 400
        error = error_of(response)
        assert error["code"] == "VALIDATION_ERROR"
        assert list(error["fields"]) == [field]

    def test_huge_integers_are_a_wrong_type_not_invalid_json(self, api):
        digits = "9" * 5000
        body = json.dumps(signup_body(first_name="NUMBER", nickname="OTHER"))
        raw = body.replace('"NUMBER"', digits).replace('"OTHER"', digits).encode()
        response = api.post_raw("customer", raw)
        assert response.status_code == 400
        assert error_of(response)["fields"] == {"first_name": ["Not a valid string."]}

    def test_huge_integer_in_an_ignored_field(self, api):
        raw = json.dumps(signup_body(nickname="OTHER")).replace('"OTHER"', "7" * 5000)
        assert api.post_raw("customer", raw.encode()).status_code == 201

    def test_error_never_echoes_the_password(self, api):
        response = api.signup("customer", signup_body(password="nouppercase1!"))
        assert response.status_code == 400
        assert "nouppercase1!" not in response.get_data(as_text=True)


INVALID_JSON_BODIES = {
    "malformed": b"{not json}",
    "truncated": b'{"first_name": "Admin", "last_na',
    "empty": b"",
    "array": b"[]",
    "string": b'"hello"',
    "number": b"42",
    "null": b"null",
    "duplicate key": b'{"email": "a@example.org", "email": "b@example.org"}',
    "NaN": b'{"first_name": NaN}',
    "Infinity": b'{"first_name": Infinity}',
    "-Infinity": b'{"first_name": -Infinity}',
    "33 levels": b'{"a": ' + b"[" * 32 + b"]" * 32 + b"}",
    "10000-deep array": b"[" * 10000 + b"]" * 10000,
    "10000-deep inside an object": b'{"a": ' + b"[" * 10000 + b"]" * 10000 + b"}",
    "invalid UTF-8": b'{"first_name": "\xff\xfe"}',
    "UTF-16": '{"first_name": "A"}'.encode("utf-16"),
    "trailing garbage": b'{"first_name": "A"} x',
}


class TestInvalidJSON:
    """400 INVALID_JSON for every way a body can fail to be one strict JSON object."""

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("data", INVALID_JSON_BODIES.values(), ids=INVALID_JSON_BODIES)
    def test_refused(self, app, api, kind, data):
        response = api.post_raw(kind, data)
        assert response.status_code == 400
        assert error_of(response)["code"] == "INVALID_JSON"
        assert count_rows(app, User) == 0

    def test_32_levels_are_allowed(self, api):
        body = signup_body()
        nested = "[" * 31 + "]" * 31
        raw = json.dumps({**body, "x": "NESTED"}).replace('"NESTED"', nested)
        response = api.post_raw("customer", raw.encode())
        assert response.status_code == 201


class TestProtocolErrors:
    """404, 405, 413, 415: all in the envelope, with a JSON content type."""

    def test_unknown_path(self, client):
        response = client.post("/api/v1/auth/nobody/signup", json=signup_body())
        assert response.status_code == 404
        assert error_of(response)["code"] == "NOT_FOUND"

    @pytest.mark.parametrize(
        "path",
        ["/api/v1/auth//admin/signup", "//api/v1/auth/admin/signup", "/api/v1/auth/admin/signup/"],
    )
    def test_odd_slashes_are_404_not_a_redirect(self, client, path):
        response = client.post(path, json=signup_body())
        assert response.status_code == 404
        assert error_of(response)["code"] == "NOT_FOUND"

    @pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
    @pytest.mark.parametrize("path", SIGNUP_PATHS.values())
    def test_wrong_method(self, client, method, path):
        response = client.open(path, method=method)
        assert response.status_code == 405
        assert error_of(response)["code"] == "METHOD_NOT_ALLOWED"
        assert "POST" in response.headers["Allow"]

    @pytest.mark.parametrize("path", SIGNUP_PATHS.values())
    def test_options_lists_the_methods(self, client, path):
        response = client.options(path)
        assert response.status_code == 204
        assert "POST" in response.headers["Allow"]
        assert "Content-Type" not in response.headers

    @pytest.mark.parametrize("kind", KINDS)
    def test_body_over_the_limit(self, app, api, kind):
        body = signup_body(first_name="A" * (64 * 1024))
        response = api.signup(kind, body)
        assert response.status_code == 413
        assert error_of(response)["code"] == "PAYLOAD_TOO_LARGE"
        assert count_rows(app, User) == 0

    @pytest.mark.parametrize(
        "content_type",
        [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin-1",
            "application/jsonx",
            None,
        ],
    )
    def test_not_json(self, client, content_type):
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.post(
            SIGNUP_PATHS["customer"], data=b'{"a": 1}', headers=headers, content_type=None
        )
        assert response.status_code == 415
        assert error_of(response)["code"] == "UNSUPPORTED_MEDIA_TYPE"

    def test_json_with_utf8_charset_is_accepted(self, api):
        response = api.post_raw(
            "customer",
            b'{"first_name":"A","last_name":"B","email":"c@example.org","password":"%s"}'
            % PASSWORD.encode(),
            content_type="application/json; charset=UTF-8",
        )
        assert response.status_code == 201

    def test_every_response_says_nosniff(self, client, api):
        assert api.signup("customer").headers["X-Content-Type-Options"] == "nosniff"
        assert client.get("/nowhere").headers["X-Content-Type-Options"] == "nosniff"


class TestServerErrors:
    """500 and 503: the envelope, no stack trace, no SQL, nothing half-written."""

    def test_bug_gives_500_without_details(self, app, api, monkeypatch, caplog):
        from app import accounts

        def broken(**_fields):
            raise RuntimeError("SELECT password_hash FROM users -- secret detail")

        monkeypatch.setattr(accounts.repository, "create_account", broken)
        response = api.signup("admin")
        assert response.status_code == 500
        assert error_of(response)["code"] == "INTERNAL_ERROR"
        text = response.get_data(as_text=True)
        assert "SELECT" not in text and "Traceback" not in text and "secret" not in text
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert "RuntimeError" in logged
        assert "SELECT" not in logged and PASSWORD not in logged

    def test_failure_mid_transaction_leaves_nothing(self, app, api, monkeypatch):
        """A credential-key collision fails the commit: no user, company or credential stays."""
        from app import repository

        first = api.signup("admin")
        key = jwt.decode(
            first.get_json()["data"]["access_token"], options={"verify_signature": False}
        )["iss"]
        monkeypatch.setattr(repository.sessions, "new_credential_key", lambda: key)
        response = api.signup("admin")
        assert response.status_code == 500
        assert error_of(response)["code"] == "INTERNAL_ERROR"
        assert count_rows(app, User) == 1
        assert count_rows(app, Company) == 1
        assert count_rows(app, SigningCredential) == 1
