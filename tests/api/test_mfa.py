"""Two-factor (the contract's "Two-factor (TOTP)") through the HTTP API, on SQLite and
Postgres: the state, set-up and confirmation, codes (the window, once per step, recovery
codes), log-in and reset with two-factor on, the mfa_token's life, new recovery codes,
disabling, the order of checks, the limits, the mails, the audit trail and the secret at
rest. TOTP codes are made with pyotp against a frozen clock (app.totp.clock)."""

import re
import secrets
import uuid

import itsdangerous.timed
import pyotp
import pytest
import sqlalchemy as sa

from app import links, totp
from app.extensions import db
from app.models import MfaChallenge, OutboxMail, RecoveryCode, User
from tests.helpers import (
    LOGIN_PATH,
    PASSWORD,
    USER_KEYS,
    Api,
    Person,
    audit_rows,
    audited,
    bearer,
    deliver,
    error_code,
    error_of,
    mailed_link_token,
    signup_body,
)

MFA = "/api/v1/auth/mfa"
SETUP = "/api/v1/auth/mfa/totp/setup"
CONFIRM = "/api/v1/auth/mfa/totp/confirm"
RECOVERY = "/api/v1/auth/mfa/recovery-codes"
DISABLE = "/api/v1/auth/mfa/disable"
LOGIN_MFA = "/api/v1/auth/login/mfa"
SESSIONS = "/api/v1/auth/sessions"
RECOVERY_CODE = re.compile(r"[a-z0-9]{5}-[a-z0-9]{5}")
WRONG_PASSWORD = "Wrong!Passw0rd"


class Clock:
    """The clock codes are checked against: frozen, moved on one 30-second step at will."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def tick(self, steps=1):
        """Move on `steps` steps."""
        self.now += 30 * steps

    def code(self, secret, offset=0):
        """The code of a secret in the current step (or `offset` steps away)."""
        return pyotp.TOTP(secret).at(self.now + 30 * offset)


@pytest.fixture
def clock(monkeypatch):
    """Codes are checked against a frozen clock, 10 seconds into a step."""
    frozen = Clock(float(totp.current_step() * 30 + 10))
    monkeypatch.setattr(totp, "clock", frozen)
    return frozen


def sign_up(api, kind="customer", **changes):
    """A new account: a Person."""
    response = api.signup(kind, signup_body(**changes))
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()["data"]
    return Person(data["access_token"], data["user"])


@pytest.fixture
def person(api):
    """A new customer account."""
    return sign_up(api)


class TwoFactor:
    """Two-factor requests of one client."""

    def __init__(self, app, client, clock):
        self.app, self.client, self.clock = app, client, clock

    def status(self, person):
        return self.client.get(MFA, headers=person.auth)

    def setup(self, person, password=PASSWORD):
        return self.client.post(SETUP, json={"password": password}, headers=person.auth)

    def confirm(self, person, code):
        return self.client.post(CONFIRM, json={"code": code}, headers=person.auth)

    def recovery(self, person, code, password=PASSWORD):
        body = {"password": password, "code": code}
        return self.client.post(RECOVERY, json=body, headers=person.auth)

    def disable(self, person, code, password=PASSWORD):
        body = {"password": password, "code": code}
        return self.client.post(DISABLE, json=body, headers=person.auth)

    def login(self, person, password=PASSWORD):
        return self.client.post(LOGIN_PATH, json={"email": person.email, "password": password})

    def mfa_token(self, person, password=PASSWORD):
        """The mfa_token of a log-in with the password."""
        response = self.login(person, password)
        assert error_code(response) == (403, "MFA_REQUIRED")
        return error_of(response)["mfa_token"]

    def login_mfa(self, mfa_token, code, headers=None):
        body = {"mfa_token": mfa_token, "code": code}
        return self.client.post(LOGIN_MFA, json=body, headers=headers or {})

    def pending_secret(self, person):
        """A set-up's secret."""
        response = self.setup(person)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["data"]["secret"]

    def enable(self, person):
        """Two-factor on (the person's token replaced by the fresh one; the clock moved on
        a step, so the next code is unused): (secret, recovery codes)."""
        secret = self.pending_secret(person)
        response = self.confirm(person, self.clock.code(secret))
        assert response.status_code == 200, response.get_data(as_text=True)
        data = response.get_json()["data"]
        person.token = data["access_token"]
        self.clock.tick()
        return secret, data["recovery_codes"]


@pytest.fixture
def mfa(app, client, clock):
    """Two-factor requests through the test client."""
    return TwoFactor(app, client, clock)


def user_row(app, user_id):
    """The users row of an account, as a dict."""
    with app.app_context():
        row = db.session.execute(sa.select(User.__table__).where(User.id == user_id)).one()
        db.session.commit()
        return dict(row._mapping)


def count(app, model, **where):
    """How many rows of a model match."""
    with app.app_context():
        query = sa.select(sa.func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        result = db.session.scalar(query)
        db.session.commit()
        return result


def outbox_kinds(app, user_id):
    """The kinds of the mails queued for an account, oldest first."""
    with app.app_context():
        kinds = db.session.scalars(
            sa.select(OutboxMail.kind).where(OutboxMail.user_id == user_id).order_by(OutboxMail.id)
        ).all()
        db.session.commit()
        return list(kinds)


def assert_no_store(response):
    assert response.headers["Cache-Control"] == "no-store"


class TestStatus:
    def test_a_new_account_has_two_factor_off(self, mfa, person):
        response = mfa.status(person)
        assert response.status_code == 200
        assert response.get_json() == {
            "error": None,
            "data": {"totp": False, "recovery_codes_left": 0},
        }
        assert_no_store(response)

    def test_it_needs_a_bearer_token(self, client):
        for method, path in [
            ("get", MFA),
            ("post", SETUP),
            ("post", CONFIRM),
            ("post", RECOVERY),
            ("post", DISABLE),
        ]:
            response = getattr(client, method)(path, json={})
            assert error_code(response) == (401, "INVALID_TOKEN"), path

    def test_on_with_ten_codes_then_nine_after_one_is_used(self, mfa, person):
        _, codes = mfa.enable(person)
        assert mfa.status(person).get_json()["data"] == {"totp": True, "recovery_codes_left": 10}
        assert mfa.login_mfa(mfa.mfa_token(person), codes[0]).status_code == 200
        assert mfa.status(person).get_json()["data"]["recovery_codes_left"] == 9


class TestSetup:
    def test_answers_a_160_bit_secret_its_uri_and_qr_code(self, mfa, person):
        response = mfa.setup(person)
        assert response.status_code == 200
        assert_no_store(response)
        data = response.get_json()["data"]
        assert list(data) == ["secret", "otpauth_uri", "qr_svg"]
        assert re.fullmatch(r"[A-Z2-7]{32}", data["secret"])
        assert data["otpauth_uri"] == (
            f"otpauth://totp/Lumyri:{person.email}?secret={data['secret']}&issuer=Lumyri"
        )
        assert data["qr_svg"].startswith("<svg") and data["qr_svg"].rstrip().endswith("</svg>")
        assert mfa.status(person).get_json()["data"]["totp"] is False  # not on yet

    def test_a_wrong_password_is_403_and_sets_nothing_up(self, mfa, person, clock):
        assert error_code(mfa.setup(person, WRONG_PASSWORD)) == (403, "WRONG_PASSWORD")
        assert error_code(mfa.confirm(person, "123456")) == (409, "MFA_NOT_ENABLED")

    def test_a_new_set_up_replaces_an_unconfirmed_one(self, mfa, person, clock):
        first = mfa.pending_secret(person)
        second = mfa.pending_secret(person)
        assert first != second
        assert error_code(mfa.confirm(person, clock.code(first))) == (401, "INVALID_CODE")
        assert mfa.confirm(person, clock.code(second)).status_code == 200

    def test_409_when_on_before_a_wrong_password(self, mfa, person):
        mfa.enable(person)
        assert error_code(mfa.setup(person)) == (409, "MFA_ALREADY_ENABLED")
        assert error_code(mfa.setup(person, WRONG_PASSWORD)) == (409, "MFA_ALREADY_ENABLED")

    def test_the_password_is_only_compared(self, mfa, person):
        for password in ("", "x", "a" * 1024):
            assert error_code(mfa.setup(person, password)) == (403, "WRONG_PASSWORD")
        response = mfa.setup(person, "a" * 1025)
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert list(error_of(response)["fields"]) == ["password"]


class TestConfirm:
    def test_two_factor_on_a_fresh_token_ten_recovery_codes(self, app, mfa, client, person, clock):
        old_token = person.token
        secret = mfa.pending_secret(person)
        response = mfa.confirm(person, clock.code(secret))
        assert response.status_code == 200
        assert_no_store(response)
        body = response.get_json()
        assert body["error"] is None and list(body["data"]) == ["access_token", "recovery_codes"]
        codes = body["data"]["recovery_codes"]
        assert len(codes) == len(set(codes)) == 10
        assert all(RECOVERY_CODE.fullmatch(code) for code in codes)
        fresh = Person(body["data"]["access_token"], person.user)
        # Every earlier session ends, the caller's too; the fresh token starts a new one.
        assert error_code(client.get("/api/v1/auth/me", headers=bearer(old_token))) == (
            401,
            "INVALID_TOKEN",
        )
        sessions = client.get(SESSIONS, headers=fresh.auth).get_json()["data"]["sessions"]
        assert [s["current"] for s in sessions] == [True]
        assert mfa.status(fresh).get_json()["data"] == {"totp": True, "recovery_codes_left": 10}
        assert "mfa_enabled" in outbox_kinds(app, person.id)
        assert audited(app, "mfa_enabled", person.id)

    def test_every_other_session_ends_too(self, mfa, api, client, person):
        other = api.login(person.email).get_json()["data"]["access_token"]
        mfa.enable(person)
        assert error_code(api.me(other)) == (401, "INVALID_TOKEN")
        assert api.me(person.token).status_code == 200

    def test_a_wrong_code_is_401_and_leaves_the_set_up_pending(self, app, mfa, person, clock):
        secret = mfa.pending_secret(person)
        wrong = "000000" if clock.code(secret) != "000000" else "111111"
        assert error_code(mfa.confirm(person, wrong)) == (401, "INVALID_CODE")
        assert audited(app, "mfa_failed", person.id)
        assert mfa.status(person).get_json()["data"]["totp"] is False
        assert mfa.confirm(person, clock.code(secret)).status_code == 200

    def test_no_set_up_pending_is_409_mfa_not_enabled(self, mfa, person):
        assert error_code(mfa.confirm(person, "123456")) == (409, "MFA_NOT_ENABLED")

    def test_confirming_while_on_is_409_mfa_already_enabled(self, mfa, person, clock):
        secret, _ = mfa.enable(person)
        assert error_code(mfa.confirm(person, clock.code(secret))) == (409, "MFA_ALREADY_ENABLED")

    def test_a_recovery_code_does_not_confirm(self, mfa, person, clock):
        secret, codes = mfa.enable(person)
        mfa.disable(person, clock.code(secret))
        mfa.pending_secret(person)
        for code in (codes[1], "abcde-12345", "abcde12345"):
            assert error_code(mfa.confirm(person, code)) == (401, "INVALID_CODE")

    @pytest.mark.parametrize(
        ("offset", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)]
    )
    def test_a_code_of_the_step_before_or_after_is_accepted(
        self, mfa, person, clock, offset, accepted
    ):
        secret = mfa.pending_secret(person)
        code = clock.code(secret, offset)
        window = {clock.code(secret, o) for o in (-1, 0, 1)}
        response = mfa.confirm(person, code)
        assert response.status_code == (200 if accepted or code in window else 401)


CODE_BODIES = [
    pytest.param({}, id="missing"),
    pytest.param({"code": None}, id="null"),
    pytest.param({"code": 123456}, id="a number"),
    pytest.param({"code": ["123456"]}, id="a list"),
    pytest.param({"code": ""}, id="empty"),
]


class TestCodeField:
    @pytest.mark.parametrize("body", CODE_BODIES)
    @pytest.mark.parametrize("path", [CONFIRM, RECOVERY, DISABLE, LOGIN_MFA])
    def test_a_code_that_is_not_a_non_empty_string_is_400(self, client, person, path, body):
        body = {"password": PASSWORD, "mfa_token": "x", **body}
        response = client.post(path, json=body, headers=person.auth)
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert list(error_of(response)["fields"]) == ["code"]

    @pytest.mark.parametrize("token", [None, "", 42, {"a": 1}])
    def test_an_mfa_token_that_is_not_a_non_empty_string_is_400(self, client, token):
        body = {"mfa_token": token, "code": "12"}
        response = client.post(LOGIN_MFA, json=body)
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert list(error_of(response)["fields"]) == ["mfa_token"]

    def test_a_missing_mfa_token_is_400(self, client):
        response = client.post(LOGIN_MFA, json={"code": "123456"})
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert list(error_of(response)["fields"]) == ["mfa_token"]

    def test_body_rules(self, client, person):
        response = client.post(
            LOGIN_MFA, data='{"code": "1", "code": "2"}', content_type="application/json"
        )
        assert error_code(response) == (400, "INVALID_JSON")
        response = client.post(CONFIRM, data="code=1", headers=person.auth)
        assert error_code(response) == (415, "UNSUPPORTED_MEDIA_TYPE")


class TestLogIn:
    def test_a_right_password_answers_403_mfa_required_with_a_token(self, app, mfa, client, person):
        mfa.enable(person)
        response = mfa.login(person)
        assert error_code(response) == (403, "MFA_REQUIRED")
        assert_no_store(response)
        body = response.get_json()
        assert body["data"] is None
        assert list(body["error"]) == ["code", "message", "mfa_token"]
        assert isinstance(body["error"]["mfa_token"], str) and body["error"]["mfa_token"]
        sessions = client.get(SESSIONS, headers=person.auth).get_json()["data"]["sessions"]
        assert len(sessions) == 1  # no session started

    def test_a_wrong_password_answers_as_before(self, mfa, api, person):
        mfa.enable(person)
        wrong = mfa.login(person, WRONG_PASSWORD)
        unknown = api.login("nobody-" + person.email)
        assert error_code(wrong) == (401, "INVALID_CREDENTIALS")
        assert wrong.get_data() == unknown.get_data()

    def test_the_token_and_a_code_give_the_login_body(self, app, mfa, client, person, clock):
        secret, _ = mfa.enable(person)
        response = mfa.login_mfa(
            mfa.mfa_token(person), clock.code(secret), headers={"User-Agent": "phone/1.0"}
        )
        assert response.status_code == 200
        assert_no_store(response)
        data = response.get_json()["data"]
        assert list(data) == ["access_token", "user"] and list(data["user"]) == USER_KEYS
        assert data["user"]["id"] == person.id
        fresh = Person(data["access_token"], data["user"])
        sessions = client.get(SESSIONS, headers=fresh.auth).get_json()["data"]["sessions"]
        (current,) = [s for s in sessions if s["current"]]
        assert current["user_agent"] == "phone/1.0" and len(sessions) == 2
        assert audited(app, "login_succeeded", person.id)

    def test_a_recovery_code_in_any_case_without_its_hyphen_logs_in_once(self, app, mfa, person):
        _, codes = mfa.enable(person)
        spelled = codes[4].upper().replace("-", "")
        assert mfa.login_mfa(mfa.mfa_token(person), spelled).status_code == 200
        assert audited(app, "recovery_code_used", person.id)
        for again in (codes[4], spelled):
            assert error_code(mfa.login_mfa(mfa.mfa_token(person), again)) == (401, "INVALID_CODE")
        assert mfa.login_mfa(mfa.mfa_token(person), codes[5].upper()).status_code == 200

    def test_an_mfa_token_is_good_once(self, mfa, person, clock):
        secret, codes = mfa.enable(person)
        token = mfa.mfa_token(person)
        assert mfa.login_mfa(token, clock.code(secret)).status_code == 200
        clock.tick()
        assert error_code(mfa.login_mfa(token, clock.code(secret))) == (401, "INVALID_CODE")
        assert error_code(mfa.login_mfa(token, codes[0])) == (401, "INVALID_CODE")

    def test_an_mfa_token_dies_after_five_wrong_codes(self, app, mfa, person, clock):
        secret, codes = mfa.enable(person)
        token = mfa.mfa_token(person)
        wrong = next(c for c in ("000000", "111111", "222222") if c != clock.code(secret))
        for attempt in range(5):
            code = wrong if attempt % 2 else "zzzzz-zzzzz"
            assert error_code(mfa.login_mfa(token, code)) == (401, "INVALID_CODE")
        assert error_code(mfa.login_mfa(token, clock.code(secret))) == (401, "INVALID_CODE")
        assert error_code(mfa.login_mfa(token, codes[0])) == (401, "INVALID_CODE")
        assert len([r for r in audit_rows(app, "mfa_failed") if r["user_id"] == person.id]) == 5
        # Neither right code was used up: a new token takes them.
        assert mfa.login_mfa(mfa.mfa_token(person), codes[0]).status_code == 200
        assert mfa.login_mfa(mfa.mfa_token(person), clock.code(secret)).status_code == 200

    def test_four_wrong_codes_leave_the_token_alive(self, mfa, person, clock):
        secret, _ = mfa.enable(person)
        token = mfa.mfa_token(person)
        for _ in range(4):
            assert mfa.login_mfa(token, "abcde-abcde").status_code == 401
        assert mfa.login_mfa(token, clock.code(secret)).status_code == 200

    def test_an_mfa_token_is_good_for_five_minutes(self, app, mfa, person, clock, monkeypatch):
        secret, _ = mfa.enable(person)
        token = mfa.mfa_token(person)
        real = itsdangerous.timed.time.time
        monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() + 301)
        assert error_code(mfa.login_mfa(token, clock.code(secret))) == (401, "INVALID_CODE")
        monkeypatch.setattr(itsdangerous.timed.time, "time", real)
        with app.app_context():  # its challenge's own end counts too
            db.session.execute(sa.update(MfaChallenge).values(expires_at=MfaChallenge.created_at))
            db.session.commit()
        assert error_code(mfa.login_mfa(token, clock.code(secret))) == (401, "INVALID_CODE")

    def test_an_mfa_token_dies_with_a_new_password(self, mfa, client, person, clock):
        secret, _ = mfa.enable(person)
        token = mfa.mfa_token(person)
        new_password = "Another@Passw0rd"
        response = client.post(
            "/api/v1/auth/password/change",
            json={"current_password": PASSWORD, "new_password": new_password},
            headers=person.auth,
        )
        assert response.status_code == 200
        assert error_code(mfa.login_mfa(token, clock.code(secret))) == (401, "INVALID_CODE")
        assert (
            mfa.login_mfa(mfa.mfa_token(person, new_password), clock.code(secret)).status_code
            == 200
        )

    def test_an_mfa_token_is_for_its_account(self, mfa, api, person, clock):
        other = sign_up(api)
        secret, _ = mfa.enable(person)
        other_secret, _ = mfa.enable(other)
        token = mfa.mfa_token(person)
        assert error_code(mfa.login_mfa(token, clock.code(other_secret))) == (401, "INVALID_CODE")
        response = mfa.login_mfa(token, clock.code(secret))
        assert response.get_json()["data"]["user"]["id"] == person.id

    @pytest.mark.parametrize(
        "token", ["x", "a" * 5000, "é", ".eJw.abc.def", "eyJhbGciOiJIUzI1NiJ9.e30.sig"]
    )
    def test_a_malformed_or_forged_mfa_token_is_401_invalid_code(self, mfa, token):
        assert error_code(mfa.login_mfa(token, "123456")) == (401, "INVALID_CODE")

    def test_a_token_signed_with_another_key_is_refused(self, app, mfa, person, clock, make_app):
        secret, _ = mfa.enable(person)
        token = mfa.mfa_token(person)
        other = make_app(SECRET_KEY="another-secret-key-that-is-32-bytes-or-more!")
        response = other.test_client().post(
            LOGIN_MFA, json={"mfa_token": token, "code": clock.code(secret)}
        )
        assert error_code(response) == (401, "INVALID_CODE")

    def test_after_disabling_a_log_in_needs_the_password_only(self, mfa, person, clock):
        secret, _ = mfa.enable(person)
        token = mfa.mfa_token(person)
        assert mfa.disable(person, clock.code(secret)).status_code == 204
        assert mfa.login(person).status_code == 200
        clock.tick()
        assert error_code(mfa.login_mfa(token, clock.code(secret))) == (401, "INVALID_CODE")


class TestCodesAreGoodOnce:
    def test_the_confirmations_code_cannot_log_in(self, mfa, person, clock):
        secret = mfa.pending_secret(person)
        code = clock.code(secret)
        response = mfa.confirm(person, code)
        person.token = response.get_json()["data"]["access_token"]
        assert error_code(mfa.login_mfa(mfa.mfa_token(person), code)) == (401, "INVALID_CODE")
        clock.tick()
        assert mfa.login_mfa(mfa.mfa_token(person), clock.code(secret)).status_code == 200

    def test_each_steps_code_once_per_account(self, app, mfa, person, clock):
        secret, _ = mfa.enable(person)
        code = clock.code(secret)
        assert mfa.login_mfa(mfa.mfa_token(person), code).status_code == 200
        assert error_code(mfa.login_mfa(mfa.mfa_token(person), code)) == (401, "INVALID_CODE")
        assert error_code(mfa.recovery(person, code)) == (401, "INVALID_CODE")
        assert user_row(app, person.id)["totp_last_step"] == totp.current_step(clock.now)

    def test_the_next_steps_code_is_good_now(self, mfa, person, clock):
        secret, _ = mfa.enable(person)
        assert mfa.login_mfa(mfa.mfa_token(person), clock.code(secret, 1)).status_code == 200
        assert error_code(mfa.login_mfa(mfa.mfa_token(person), clock.code(secret))) == (
            401,
            "INVALID_CODE",
        )  # an earlier step than the last used: refused (RFC 6238 5.2)

    def test_a_code_checked_by_a_request_that_then_fails_is_not_used_up(self, mfa, person, clock):
        secret, codes = mfa.enable(person)
        assert error_code(mfa.recovery(person, codes[0], WRONG_PASSWORD)) == (403, "WRONG_PASSWORD")
        assert error_code(mfa.disable(person, clock.code(secret), WRONG_PASSWORD)) == (
            403,
            "WRONG_PASSWORD",
        )
        assert mfa.recovery(person, codes[0]).status_code == 200
        assert mfa.disable(person, clock.code(secret)).status_code == 204


class TestOrderOfChecks:
    def test_409_before_401_before_403(self, mfa, person, clock):
        for request in (mfa.recovery, mfa.disable):
            assert error_code(request(person, "000000", WRONG_PASSWORD)) == (409, "MFA_NOT_ENABLED")
        secret, _ = mfa.enable(person)
        wrong = next(c for c in ("000000", "111111") if c != clock.code(secret))
        for request in (mfa.recovery, mfa.disable):
            assert error_code(request(person, wrong, WRONG_PASSWORD)) == (401, "INVALID_CODE")
            assert error_code(request(person, clock.code(secret), WRONG_PASSWORD)) == (
                403,
                "WRONG_PASSWORD",
            )

    def test_400_before_409(self, mfa, person):
        response = mfa.disable(person, None)
        assert error_code(response) == (400, "VALIDATION_ERROR")


@pytest.fixture
def limited(make_app, clock):
    """Two-factor requests on an app whose limits are on (RATELIMIT_MFA 10/minute)."""
    app = make_app(
        RATELIMIT_ENABLED=True,
        RATELIMIT_KEY_PREFIX=f"lumyri-test-{secrets.token_hex(4)}",
        RATELIMIT_LOGIN="100/minute",
        RATELIMIT_LOGIN_PER_IP="1000/minute",
    )
    return TwoFactor(app, app.test_client(), clock), Api(app.test_client())


def assert_limited(response):
    assert error_code(response) == (429, "RATE_LIMITED")
    assert int(response.headers["Retry-After"]) >= 1


class TestLimits:
    def test_ten_code_checks_a_minute_per_account_every_endpoint_counting(self, limited):
        mfa, api = limited
        person = sign_up(api)
        secret, codes = mfa.enable(person)  # the confirmation's check counts: 1
        token = mfa.mfa_token(person)
        for _ in range(4):
            assert mfa.login_mfa(token, "zzzzz-zzzzz").status_code == 401  # 5
        for _ in range(3):
            assert mfa.recovery(person, "zzzzz-zzzzz").status_code == 401  # 8
        for _ in range(2):
            assert mfa.disable(person, "zzzzz-zzzzz").status_code == 401  # 10
        assert_limited(mfa.login_mfa(mfa.mfa_token(person), codes[0]))
        assert_limited(mfa.disable(person, codes[0]))
        assert_limited(mfa.confirm(person, "123456"))  # 429 before 409
        other = sign_up(api)  # another account has its own
        assert mfa.confirm(other, "123456").status_code == 409

    def test_429_comes_before_409(self, limited):
        mfa, api = limited
        person = sign_up(api)
        for _ in range(10):
            assert error_code(mfa.confirm(person, "123456")) == (409, "MFA_NOT_ENABLED")
        assert_limited(mfa.confirm(person, "123456"))

    def test_a_bad_body_spends_nothing(self, limited):
        mfa, api = limited
        person = sign_up(api)
        for _ in range(12):
            assert mfa.confirm(person, "").status_code == 400
        assert mfa.confirm(person, "123456").status_code == 409

    def test_set_up_is_limited_like_log_in(self, make_app, clock):
        app = make_app(
            RATELIMIT_ENABLED=True,
            RATELIMIT_LOGIN="2/minute",
            RATELIMIT_KEY_PREFIX=f"lumyri-test-{secrets.token_hex(4)}",
        )
        mfa, api = TwoFactor(app, app.test_client(), clock), Api(app.test_client())
        person = sign_up(api)
        assert error_code(mfa.setup(person, WRONG_PASSWORD)) == (403, "WRONG_PASSWORD")
        assert mfa.setup(person).status_code == 200
        assert_limited(mfa.setup(person))


class TestRecoveryCodes:
    def test_ten_new_codes_the_old_ones_die(self, mfa, person, clock):
        secret, old = mfa.enable(person)
        response = mfa.recovery(person, clock.code(secret))
        assert response.status_code == 200
        assert_no_store(response)
        new = response.get_json()["data"]["recovery_codes"]
        assert list(response.get_json()["data"]) == ["recovery_codes"]
        assert len(set(new)) == 10 and all(RECOVERY_CODE.fullmatch(c) for c in new)
        assert not set(new) & set(old)
        assert error_code(mfa.login_mfa(mfa.mfa_token(person), old[1])) == (401, "INVALID_CODE")
        assert mfa.login_mfa(mfa.mfa_token(person), new[1]).status_code == 200
        assert mfa.status(person).get_json()["data"]["recovery_codes_left"] == 9

    def test_a_recovery_code_proves_it_and_is_used_up(self, app, mfa, person):
        _, old = mfa.enable(person)
        assert mfa.recovery(person, old[2]).status_code == 200
        assert audited(app, "recovery_code_used", person.id)
        assert error_code(mfa.recovery(person, old[2])) == (401, "INVALID_CODE")

    def test_stored_only_as_keyed_hashes(self, app, mfa, person):
        _, codes = mfa.enable(person)
        with app.app_context():
            hashes = db.session.scalars(
                sa.select(RecoveryCode.code_hash).where(RecoveryCode.user_id == person.id)
            ).all()
            db.session.commit()
        assert len(hashes) == 10
        for code in codes:
            assert not any(code.replace("-", "") in h or code in h for h in hashes)
        with app.app_context():
            assert sorted(hashes) == sorted(totp.recovery_hash(c, person.id) for c in codes)


class TestDisable:
    def test_off_with_a_totp_code(self, app, mfa, person, clock):
        secret, _ = mfa.enable(person)
        response = mfa.disable(person, clock.code(secret))
        assert response.status_code == 204 and response.get_data() == b""
        assert mfa.status(person).get_json()["data"] == {"totp": False, "recovery_codes_left": 0}
        assert count(app, RecoveryCode, user_id=person.id) == 0
        row = user_row(app, person.id)
        assert (row["totp_secret"], row["totp_pending_secret"], row["totp_enabled_at"]) == (
            None,
            None,
            None,
        )
        assert outbox_kinds(app, person.id)[-1] == "mfa_disabled"
        assert audited(app, "mfa_disabled", person.id)
        assert mfa.login(person).status_code == 200

    def test_off_with_a_recovery_code_and_on_again(self, app, mfa, person):
        _, codes = mfa.enable(person)
        assert mfa.disable(person, codes[9].upper()).status_code == 204
        assert audited(app, "recovery_code_used", person.id)
        assert error_code(mfa.disable(person, codes[8])) == (409, "MFA_NOT_ENABLED")
        assert error_code(mfa.recovery(person, codes[8])) == (409, "MFA_NOT_ENABLED")
        _, again = mfa.enable(person)
        assert not set(again) & set(codes)


class TestOperatorCommand:
    def test_disable_mfa_turns_it_off_without_a_code(self, app, mfa, runner, person):
        mfa.enable(person)
        result = runner.invoke(args=["accounts", "disable-mfa", person.email.upper()])
        assert result.exit_code == 0, result.output
        assert f"Two-factor is off for {person.email}." in result.output
        assert mfa.status(person).get_json()["data"] == {"totp": False, "recovery_codes_left": 0}
        assert mfa.login(person).status_code == 200
        assert outbox_kinds(app, person.id)[-1] == "mfa_disabled"
        (event,) = [r for r in audit_rows(app, "mfa_disabled") if r["user_id"] == person.id]
        assert event["client_ip"] == "cli"
        again = runner.invoke(args=["accounts", "disable-mfa", person.email])
        assert "Two-factor was not on" in again.output
        unknown = runner.invoke(args=["accounts", "disable-mfa", "nobody@example.org"])
        assert unknown.exit_code != 0


class TestDeletion:
    def test_an_account_with_two_factor_is_deleted_with_its_codes_and_tokens(
        self, app, mfa, client, person
    ):
        mfa.enable(person)
        mfa.mfa_token(person)
        response = client.post(
            "/api/v1/auth/me/delete", json={"password": PASSWORD}, headers=person.auth
        )
        assert response.status_code == 204
        assert count(app, RecoveryCode, user_id=person.id) == 0
        assert count(app, MfaChallenge, user_id=person.id) == 0


class TestPasswordReset:
    def test_a_reset_changes_the_password_and_answers_mfa_required(
        self, app, mfa, api, client, person, clock
    ):
        secret, _ = mfa.enable(person)
        other_session = mfa.login_mfa(mfa.mfa_token(person), clock.code(secret)).get_json()["data"]
        clock.tick()
        token = mailed_link_token(app, links.RESET_PASSWORD, person.id)
        new_password = "Reset@Passw0rd"
        response = client.post(
            "/api/v1/auth/password/reset", json={"token": token, "password": new_password}
        )
        assert error_code(response) == (403, "MFA_REQUIRED")
        assert_no_store(response)
        mfa_token = error_of(response)["mfa_token"]
        # The password changed, every earlier session ended, no new one started.
        for earlier in (person.token, other_session["access_token"]):
            assert error_code(api.me(earlier)) == (401, "INVALID_TOKEN")
        assert error_code(mfa.login(person)) == (401, "INVALID_CREDENTIALS")
        assert error_code(mfa.login(person, new_password)) == (403, "MFA_REQUIRED")
        assert "password_changed" in outbox_kinds(app, person.id)
        # The link is used; the mfa_token continues with a code.
        again = client.post(
            "/api/v1/auth/password/reset", json={"token": token, "password": new_password}
        )
        assert error_code(again) == (400, "INVALID_LINK")
        response = mfa.login_mfa(mfa_token, clock.code(secret))
        assert response.status_code == 200
        fresh = Person(response.get_json()["data"]["access_token"], person.user)
        sessions = client.get(SESSIONS, headers=fresh.auth).get_json()["data"]["sessions"]
        assert len(sessions) == 1

    def test_without_two_factor_a_reset_answers_the_login_body(self, app, client, person):
        token = mailed_link_token(app, links.RESET_PASSWORD, person.id)
        response = client.post(
            "/api/v1/auth/password/reset", json={"token": token, "password": "Reset@Passw0rd"}
        )
        assert response.status_code == 200
        assert list(response.get_json()["data"]) == ["access_token", "user"]


class TestSecretAtRest:
    def test_the_stored_secret_is_not_the_secret(self, app, mfa, person, clock):
        secret = mfa.pending_secret(person)
        pending = user_row(app, person.id)["totp_pending_secret"]
        assert pending and secret not in pending
        response = mfa.confirm(person, clock.code(secret))
        assert response.status_code == 200
        stored = user_row(app, person.id)["totp_secret"]
        assert stored and secret not in stored
        with app.app_context():
            assert totp.decrypt_secret(stored, person.id) == secret

    def test_a_copy_of_the_database_alone_cannot_make_codes(
        self, app, mfa, person, make_app, clock
    ):
        secret, _ = mfa.enable(person)
        stored = user_row(app, person.id)["totp_secret"]
        thief = make_app(SECRET_KEY="a-thiefs-own-secret-key-of-32-bytes-or-more")
        with thief.app_context(), pytest.raises(totp.SecretUnreadable):
            totp.decrypt_secret(stored, person.id)
        with pytest.raises(Exception):  # noqa: B017, PT011 - not a base32 secret
            pyotp.TOTP(stored).now()


class TestMails:
    @pytest.fixture
    def mailer(self, mail_app, smtp_server, clock):
        """Two-factor requests on the app that sends to the SMTP sink."""
        return TwoFactor(mail_app, mail_app.test_client(), clock)

    def sent(self, mailer, smtp_server, kind):
        deliver(mailer.app)
        return [m for _, _, m in smtp_server.messages if m["X-Lumyri-Mail"] == kind]

    def test_enabled_and_disabled_notices_in_the_request_language(self, mailer, smtp_server, clock):
        person = sign_up(Api(mailer.client), first_name="Zoé")
        secret = mailer.pending_secret(person)
        response = mailer.client.post(
            CONFIRM,
            json={"code": clock.code(secret)},
            headers={**person.auth, "Accept-Language": "fr-CA, en;q=0.5"},
        )
        person.token = response.get_json()["data"]["access_token"]
        clock.tick()
        (enabled,) = self.sent(mailer, smtp_server, "mfa_enabled")
        assert enabled["To"] == person.email and "deux étapes" in enabled["Subject"]
        text = enabled.get_body(preferencelist=("plain",)).get_content()
        assert "Zoé" in text and secret not in text
        assert mailer.disable(person, clock.code(secret)).status_code == 204
        (disabled,) = self.sent(mailer, smtp_server, "mfa_disabled")
        assert disabled["Subject"] == "Two-factor authentication is off"
        assert disabled.get_content_type() == "multipart/alternative"

    def test_a_notice_to_a_verified_address_is_never_suppressed(self, make_app, smtp_server, clock):
        app = make_app(
            SMTP_URL=smtp_server.url,
            RATELIMIT_ENABLED=True,
            RATELIMIT_MAIL_PER_ADDRESS="1/hour",
            RATELIMIT_KEY_PREFIX=f"lumyri-test-{uuid.uuid4().hex[:8]}",
        )
        mailer = TwoFactor(app, app.test_client(), clock)
        person = sign_up(Api(mailer.client))  # its verification mail spent the count
        token = mailed_link_token(app, links.VERIFY_EMAIL, person.id)
        assert (
            mailer.client.post("/api/v1/auth/email/verify", json={"token": token}).status_code
            == 200
        )
        secret, _ = mailer.enable(person)
        assert mailer.disable(person, clock.code(secret)).status_code == 204
        assert len(self.sent(mailer, smtp_server, "mfa_enabled")) == 1
        assert len(self.sent(mailer, smtp_server, "mfa_disabled")) == 1


class TestAudit:
    def test_the_events_of_a_round_trip(self, app, mfa, person, clock):
        secret, codes = mfa.enable(person)
        mfa.login_mfa(mfa.mfa_token(person), "zzzzz-zzzzz")
        mfa.login_mfa(mfa.mfa_token(person), codes[0])
        mfa.disable(person, clock.code(secret))
        for event in ("mfa_enabled", "mfa_failed", "recovery_code_used", "mfa_disabled"):
            rows = [r for r in audit_rows(app, event) if r["user_id"] == person.id]
            assert len(rows) == 1, event
            assert rows[0]["email"] == person.email and rows[0]["client_ip"] == "127.0.0.1"

    def test_no_code_secret_or_token_in_a_log_line(self, mfa, person, clock, caplog):
        caplog.set_level("DEBUG")
        secret, codes = mfa.enable(person)
        token = mfa.mfa_token(person)
        mfa.login_mfa(token, clock.code(secret))
        text = caplog.text
        for value in (secret, codes[0], token, clock.code(secret)):
            assert value not in text


class TestOpenApi:
    def test_the_endpoints_are_documented(self, client):
        paths = client.get("/api/v1/openapi.json").get_json()["paths"]
        assert set(paths[MFA]) == {"get"}
        for path in (SETUP, CONFIRM, RECOVERY, DISABLE, LOGIN_MFA):
            assert set(paths[path]) == {"post"}, path
        login = paths[LOGIN_PATH]["post"]["responses"]["403"]
        assert "MFA_REQUIRED" in login["description"]
        assert "INVALID_CODE" in paths[LOGIN_MFA]["post"]["responses"]["401"]["description"]
