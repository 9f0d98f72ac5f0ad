"""The token module: sign, verify, tamper, expiry, algorithms, revocation by credential."""

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import sqlalchemy as sa

from app import repository
from app.errors import InvalidToken
from app.extensions import db
from app.models import SigningCredential
from app.tokens import credential_secret, issue_access_token, verify_access_token
from tests.helpers import b64, signup_body


@pytest.fixture
def account(app, api):
    """A fresh admin account: its token, user id and credential key."""
    data = api.signup("admin", signup_body()).get_json()["data"]
    claims = jwt.decode(data["access_token"], options={"verify_signature": False})
    return {"token": data["access_token"], "user_id": data["user"]["id"], "key": claims["iss"]}


def claims_of(account, **changes):
    """The account token's claims with some changed."""
    claims = jwt.decode(account["token"], options={"verify_signature": False})
    claims.update(changes)
    return claims


def assert_refused(app, token):
    """verify_access_token raises InvalidToken for this token."""
    with app.app_context(), pytest.raises(InvalidToken):
        verify_access_token(token)


def test_valid_token_gives_its_user(app, account):
    with app.app_context():
        assert verify_access_token(account["token"]).id == account["user_id"]


def test_signature_uses_the_derived_credential_secret(app, account):
    with app.app_context():
        secret = credential_secret(account["key"])
    claims = jwt.decode(account["token"], secret, algorithms=["HS256"])
    assert claims["iss"] == account["key"]


def test_secret_differs_per_credential_and_per_secret_key(app):
    with app.app_context():
        one, two = credential_secret("a" * 32), credential_secret("b" * 32)
    app.config["SECRET_KEY"] = "another-secret-key-of-at-least-32-bytes!"
    with app.app_context():
        rotated = credential_secret("a" * 32)
    assert len({one, two, rotated}) == 3


def test_changing_secret_key_invalidates_outstanding_tokens(app, account):
    app.config["SECRET_KEY"] = "another-secret-key-of-at-least-32-bytes!"
    assert_refused(app, account["token"])


def test_secret_is_not_stored(app, account):
    with app.app_context():
        secret = credential_secret(account["key"])
        rows = db.session.execute(sa.select(SigningCredential.__table__)).all()
    dumped = repr(rows)
    assert secret.hex() not in dumped and b64(secret) not in dumped
    assert set(SigningCredential.__table__.columns.keys()) == {
        "id",
        "key",
        "user_id",
        "created_at",
        "expires_at",
        "last_used_at",
        "user_agent",
        "ip",
    }  # a session's columns: none holds a secret


def test_tampered_payload(app, account):
    header, _payload, signature = account["token"].split(".")
    forged = b64(json.dumps(claims_of(account, company_id="")).encode())
    assert_refused(app, f"{header}.{forged}.{signature}")


def test_tampered_signature(app, account):
    header, payload, signature = account["token"].split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert_refused(app, f"{header}.{payload}.{flipped}")


def test_signed_with_another_secret(app, account):
    assert_refused(app, jwt.encode(claims_of(account), b"x" * 32, algorithm="HS256"))


def test_alg_none(app, account):
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims_of(account)).encode())
    assert_refused(app, f"{header}.{payload}.")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_algorithm_with_the_right_secret(app, account, algorithm):
    with app.app_context():
        secret = credential_secret(account["key"])
    assert_refused(app, jwt.encode(claims_of(account), secret, algorithm=algorithm))


def test_unknown_issuer(app, account):
    with app.app_context():
        secret = credential_secret("Z" * 32)
    assert_refused(app, jwt.encode(claims_of(account, iss="Z" * 32), secret, algorithm="HS256"))


def token_expired_since(app, account, seconds):
    """A token of the account whose `exp` passed `seconds` ago."""
    with app.app_context():
        user = repository.account_by_id(account["user_id"])
        credential = repository.find_credential(account["key"])
        ttl = app.config["ACCESS_TOKEN_TTL_SECONDS"]
        issued = datetime.now(UTC) - timedelta(seconds=ttl + seconds)
        return issue_access_token(user, credential, now=issued)


def test_expired(app, account):
    assert_refused(app, token_expired_since(app, account, 60))


@pytest.mark.parametrize("seconds", [0, 1, 2])
def test_no_leeway_refused_from_the_instant_of_exp(app, account, seconds):
    assert_refused(app, token_expired_since(app, account, seconds))


def test_a_second_before_exp_is_still_good(app, account):
    token = token_expired_since(app, account, -2)
    with app.app_context():
        assert verify_access_token(token).id == account["user_id"]


@pytest.mark.parametrize("where", ["header", "payload"])
@pytest.mark.parametrize("depth", [100, 1000, 2000])
def test_deeply_nested_segments_are_refused_not_a_crash(app, account, where, depth):
    segment = b64(('{"x":' + "[" * depth + "]" * depth + "}").encode())
    header, payload, signature = account["token"].split(".")
    parts = [segment, payload] if where == "header" else [header, segment]
    assert_refused(app, ".".join([*parts, signature]))


def test_an_oversized_token_is_refused_before_parsing(app, account):
    header, payload, signature = account["token"].split(".")
    padded = b64(json.dumps({"alg": "HS256", "typ": "JWT", "pad": "x" * 5000}).encode())
    assert_refused(app, f"{padded}.{payload}.{signature}")


@pytest.mark.parametrize("claim", ["company_id", "iss", "user_id", "iat", "exp"])
def test_missing_claim(app, account, claim):
    claims = claims_of(account)
    del claims[claim]
    with app.app_context():
        secret = credential_secret(account["key"])
    assert_refused(app, jwt.encode(claims, secret, algorithm="HS256"))


def test_user_id_of_another_account(app, api, account):
    other = api.signup("customer").get_json()["data"]["user"]["id"]
    with app.app_context():
        secret = credential_secret(account["key"])
    assert_refused(app, jwt.encode(claims_of(account, user_id=other), secret, algorithm="HS256"))


def test_deleted_credential_revokes(app, account):
    with app.app_context():
        db.session.execute(
            sa.delete(SigningCredential).where(SigningCredential.key == account["key"])
        )
        db.session.commit()
    assert_refused(app, account["token"])


@pytest.mark.parametrize(
    "token", ["", "garbage", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9.e30.", "\x00\xff"]
)
def test_garbage(app, account, token):
    assert_refused(app, token)


@pytest.mark.parametrize("company_id", ["", "6a0f1c1e-2d7b-4c55-9a57-0e3c2b6f0a01", None, 0])
def test_company_id_must_be_the_accounts(app, account, company_id):
    with app.app_context():
        secret = credential_secret(account["key"])
    forged = claims_of(account, company_id=company_id)
    assert_refused(app, jwt.encode(forged, secret, algorithm="HS256"))


def test_customer_token_with_a_company_is_refused(app, api):
    data = api.signup("customer", signup_body()).get_json()["data"]
    customer = {"token": data["access_token"]}
    key = claims_of(customer)["iss"]
    with app.app_context():
        secret = credential_secret(key)
        assert verify_access_token(data["access_token"]).id == data["user"]["id"]
    forged = claims_of(customer, company_id="6a0f1c1e-2d7b-4c55-9a57-0e3c2b6f0a01")
    assert_refused(app, jwt.encode(forged, secret, algorithm="HS256"))


def signed_by_hand(secret, header_text, payload_text):
    """A JWT whose header and payload JSON texts are written as given, correctly signed."""
    signing_input = f"{b64(header_text.encode())}.{b64(payload_text.encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_hand_signed_token_without_repeats_is_accepted(app, account):
    """The control for the two tests below: the same construction, no repeated key."""
    with app.app_context():
        secret = credential_secret(account["key"])
        token = signed_by_hand(
            secret, '{"alg":"HS256","typ":"JWT"}', json.dumps(claims_of(account))
        )
        assert verify_access_token(token).id == account["user_id"]


@pytest.mark.parametrize(
    "header", ['{"alg":"none","alg":"HS256"}', '{"alg":"HS256","typ":"JWT","typ":"JWT"}']
)
def test_header_with_a_repeated_key_is_refused(app, account, header):
    with app.app_context():
        secret = credential_secret(account["key"])
    assert_refused(app, signed_by_hand(secret, header, json.dumps(claims_of(account))))


def test_payload_with_a_repeated_key_is_refused(app, api, account):
    other = api.signup("customer").get_json()["data"]["user"]["id"]
    with app.app_context():
        secret = credential_secret(account["key"])
    payload = json.dumps(claims_of(account))[:-1] + f', "user_id": "{other}"}}'
    assert_refused(app, signed_by_hand(secret, '{"alg":"HS256","typ":"JWT"}', payload))
    payload = json.dumps(claims_of(account))[:-1] + f', "user_id": "{account["user_id"]}"}}'
    assert_refused(app, signed_by_hand(secret, '{"alg":"HS256","typ":"JWT"}', payload))
