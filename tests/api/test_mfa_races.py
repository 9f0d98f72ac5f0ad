"""Two-factor under real concurrency, on Postgres: "of several requests using one code,
one recovery code or one mfa_token at the same moment, exactly one succeeds". Each race
starts its requests together in threads (each with its own test client, so each in its
own transaction); every request is held for a moment right after its code was checked,
so all of them have checked the code before any uses it up. Each race runs ROUNDS times,
on a new account each time.

In CI (CI=true) Postgres is required: these tests fail without it, never skip."""

import time

import pytest
import sqlalchemy as sa

from app import mfa as use_cases
from app import totp
from app.extensions import db
from app.models import SigningCredential
from tests.api.test_mfa import TwoFactor, sign_up
from tests.api.test_mfa import clock as clock  # noqa: F401 - the frozen clock fixture
from tests.helpers import at_once, error_code, together

pytestmark = pytest.mark.postgres

ROUNDS = 3
HOLD_SECONDS = 0.3


@pytest.fixture(params=range(ROUNDS))
def round_(request):
    """Each race runs ROUNDS times, on a new account each time."""
    return request.param


@pytest.fixture
def database_url(postgres_database):
    """Postgres only: SQLite serialises every write."""
    return postgres_database


@pytest.fixture
def held(monkeypatch):
    """Every request waits a moment right after its code was checked (a TOTP or recovery
    code, or a confirmation's code), before it uses the code up."""
    real_check, real_step = use_cases.check_code, totp.matching_step

    def check_then_wait(*args, **kwargs):
        proof = real_check(*args, **kwargs)
        time.sleep(HOLD_SECONDS)
        return proof

    def step_then_wait(*args, **kwargs):
        step = real_step(*args, **kwargs)
        time.sleep(HOLD_SECONDS)
        return step

    monkeypatch.setattr(use_cases, "check_code", check_then_wait)
    monkeypatch.setattr(totp, "matching_step", step_then_wait)


@pytest.fixture
def mfa(app, client, clock):  # noqa: F811 - the imported fixture's name
    """Two-factor requests through the test client."""
    return TwoFactor(app, client, clock)


def from_own_client(app, mfa, method, *args):
    """A request of `mfa`'s kind sent through a test client of its own."""
    own = TwoFactor(app, app.test_client(), mfa.clock)
    return lambda: getattr(own, method)(*args)


def statuses(responses):
    return sorted(response.status_code for response in responses)


def session_count(app, user_id):
    with app.app_context():
        count = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(SigningCredential)
            .where(SigningCredential.user_id == user_id)
        )
        db.session.commit()
        return count


def test_one_totp_code_in_two_log_ins_at_once(app, api, mfa, round_, held):
    person = sign_up(api)
    secret, _ = mfa.enable(person)
    code = mfa.clock.code(secret)
    tokens = [mfa.mfa_token(person) for _ in range(2)]
    results = together(*(from_own_client(app, mfa, "login_mfa", token, code) for token in tokens))
    assert statuses(results) == [200, 401]
    assert error_code(next(r for r in results if r.status_code == 401)) == (401, "INVALID_CODE")
    assert session_count(app, person.id) == 2  # the confirmation's and the winner's


def test_one_recovery_code_in_two_log_ins_at_once(app, api, mfa, round_, held):
    person = sign_up(api)
    _, codes = mfa.enable(person)
    tokens = [mfa.mfa_token(person) for _ in range(2)]
    results = together(
        *(from_own_client(app, mfa, "login_mfa", token, codes[0]) for token in tokens)
    )
    assert statuses(results) == [200, 401]
    assert mfa.status(person).get_json()["data"]["recovery_codes_left"] == 9


def test_one_mfa_token_with_two_right_codes_at_once(app, api, mfa, round_, held):
    person = sign_up(api)
    secret, codes = mfa.enable(person)
    token = mfa.mfa_token(person)
    by_totp = from_own_client(app, mfa, "login_mfa", token, mfa.clock.code(secret))
    by_recovery = from_own_client(app, mfa, "login_mfa", token, codes[0])
    totp_answer, recovery_answer = together(by_totp, by_recovery)
    assert statuses([totp_answer, recovery_answer]) == [200, 401]
    # The loser's code was checked but not used up.
    left = mfa.status(person).get_json()["data"]["recovery_codes_left"]
    assert left == (9 if recovery_answer.status_code == 200 else 10)
    assert session_count(app, person.id) == 2


def test_five_log_ins_with_one_code_one_succeeds(app, api, mfa, round_, held):
    person = sign_up(api)
    secret, _ = mfa.enable(person)
    code = mfa.clock.code(secret)
    tokens = [mfa.mfa_token(person) for _ in range(5)]
    clients = [from_own_client(app, mfa, "login_mfa", token, code) for token in tokens]
    results = at_once(5, lambda index: clients[index]())
    assert statuses(results) == [200, 401, 401, 401, 401]


def test_one_recovery_code_renewing_and_disabling_at_once(app, api, mfa, round_, held):
    person = sign_up(api)
    _, codes = mfa.enable(person)
    renew = from_own_client(app, mfa, "recovery", person, codes[0])
    disable = from_own_client(app, mfa, "disable", person, codes[0])
    renewed, disabled = together(renew, disable)
    on = mfa.status(person).get_json()["data"]["totp"]
    if renewed.status_code == 200:  # the old codes died with the renewal
        assert error_code(disabled) == (401, "INVALID_CODE") and on is True
    else:  # two-factor is off: nothing to renew
        assert disabled.status_code == 204 and on is False
        assert error_code(renewed) == (409, "MFA_NOT_ENABLED")


def test_two_confirmations_with_one_code_at_once(app, api, mfa, round_, held):
    person = sign_up(api)
    secret = mfa.pending_secret(person)
    code = mfa.clock.code(secret)
    results = together(
        from_own_client(app, mfa, "confirm", person, code),
        from_own_client(app, mfa, "confirm", person, code),
    )
    assert statuses(results) == [200, 409]
    assert error_code(next(r for r in results if r.status_code == 409)) == (
        409,
        "MFA_ALREADY_ENABLED",
    )
    assert session_count(app, person.id) == 1  # the winner's fresh one only
