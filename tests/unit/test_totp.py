"""The two-factor crypto (app.totp): RFC 6238 codes, the window and the last step, the
secret's encryption at rest, recovery codes and their keyed hashes, the key URI and QR
code, and the mfa_token's signature."""

import base64
import json
import re
import xml.etree.ElementTree as ElementTree

import pyotp
import pytest

from app import create_app, totp

OTHER_KEY = "another-secret-key-that-is-32-bytes-or-more!"
USER = "7d0b5a52-3d39-4a43-9b43-1f2c3f3d9a10"
OTHER_USER = "0b9c3a55-5d22-4d3e-8f1a-9e0c4b7a6d21"
# RFC 6238, Appendix B: the SHA-1 seed "12345678901234567890", its 8-digit codes cut to 6.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [
    (59, "287082"),
    (1111111109, "081804"),
    (1111111111, "050471"),
    (1234567890, "005924"),
    (2000000000, "279037"),
    (20000000000, "353130"),
]


@pytest.fixture
def app():
    """An app (no database needed) whose SECRET_KEY derives the keys."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    with app.app_context():
        yield app


def with_key(key):
    """An app context under another SECRET_KEY."""
    return create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": key}).app_context()


@pytest.mark.parametrize(("moment", "code"), RFC_VECTORS)
def test_codes_are_rfc_6238_sha1_6_digits_30_seconds(moment, code):
    assert totp.code_at(RFC_SECRET, totp.current_step(moment)) == code
    assert totp.matching_step(RFC_SECRET, code, None, now=moment) == moment // 30


def test_codes_agree_with_pyotp():
    secret = totp.new_secret()
    for moment in (0, 29, 30, 1_700_000_000, 1_800_000_015):
        assert totp.code_at(secret, totp.current_step(moment)) == pyotp.TOTP(secret).at(moment)


def test_a_secret_is_160_random_bits_in_base32():
    secrets = {totp.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert len(base64.b32decode(secret)) == 20


def test_the_step_before_this_one_and_the_one_after_are_accepted_and_no_other():
    secret, now = totp.new_secret(), 1_800_000_000.0
    here = totp.current_step(now)
    for offset in (-1, 0, 1):
        code = totp.code_at(secret, here + offset)
        assert totp.matching_step(secret, code, None, now=now) == here + offset
    for offset in (-3, -2, 2, 3):
        code = totp.code_at(secret, here + offset)
        if code not in {totp.code_at(secret, here + o) for o in (-1, 0, 1)}:
            assert totp.matching_step(secret, code, None, now=now) is None


def test_a_step_at_or_before_the_last_used_one_is_refused():
    secret, now = totp.new_secret(), 1_800_000_000.0
    here = totp.current_step(now)
    code = totp.code_at(secret, here)
    assert totp.matching_step(secret, code, here - 1, now=now) == here
    assert totp.matching_step(secret, code, here, now=now) is None  # replayed
    assert totp.matching_step(secret, code, here + 1, now=now) is None  # a later one used


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12345a", " 123456", "１２３４５６"])
def test_what_is_not_six_ascii_digits_matches_no_step(code):
    assert totp.matching_step(totp.new_secret(), code, None) is None


def test_every_candidate_is_compared_in_constant_time(monkeypatch):
    compared = []
    real = totp.hmac.compare_digest

    def counting(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(totp.hmac, "compare_digest", counting)
    secret, now = totp.new_secret(), 1_800_000_000.0
    code = totp.code_at(secret, totp.current_step(now) - 1)  # the first candidate
    assert totp.matching_step(secret, code, None, now=now) is not None
    assert len(compared) == 3  # all three steps compared, though the first matched


def test_the_secret_at_rest_is_encrypted_and_bound_to_the_account(app):
    secret = totp.new_secret()
    stored = totp.encrypt_secret(secret, USER)
    assert secret not in stored and secret.lower() not in stored.lower()
    assert base64.b32decode(secret) not in base64.urlsafe_b64decode(stored[3:])
    assert len(stored) <= 255  # users.totp_secret
    assert totp.decrypt_secret(stored, USER) == secret
    assert totp.encrypt_secret(secret, USER) != stored  # a fresh nonce each time
    with pytest.raises(totp.SecretUnreadable):
        totp.decrypt_secret(stored, OTHER_USER)  # copied onto another account's row
    tampered = stored[:-2] + ("A" if stored[-2] != "A" else "B") + stored[-1]
    with pytest.raises(totp.SecretUnreadable):
        totp.decrypt_secret(tampered, USER)
    for garbage in ("", "v1.", "v1.!!!", secret, "v2." + stored[3:]):
        with pytest.raises(totp.SecretUnreadable):
            totp.decrypt_secret(garbage, USER)


def test_a_copy_of_the_database_alone_cannot_make_codes(app):
    """Without SECRET_KEY the stored value decrypts to nothing (another key fails), and it
    is not itself a secret an authenticator would take."""
    stored = totp.encrypt_secret(totp.new_secret(), USER)
    with with_key(OTHER_KEY), pytest.raises(totp.SecretUnreadable):
        totp.decrypt_secret(stored, USER)
    with pytest.raises(Exception):  # noqa: B017, PT011 - not base32 at all
        pyotp.TOTP(stored).now()


def test_recovery_codes_are_ten_distinct_xxxxx_xxxxx_of_lower_case_letters_and_digits(app):
    codes = totp.new_recovery_codes(USER)
    assert len(codes.shown) == len(set(codes.shown)) == 10
    for code, stored in zip(codes.shown, codes.hashes, strict=True):
        assert re.fullmatch(r"[a-z0-9]{5}-[a-z0-9]{5}", code)
        assert re.fullmatch(r"[0-9a-f]{64}", stored)
        assert code.replace("-", "") not in stored


def test_a_recovery_code_matches_with_or_without_the_hyphen_in_any_case(app):
    codes = totp.new_recovery_codes(USER)
    code = codes.shown[3]
    for spelling in (code, code.upper(), code.replace("-", ""), code.upper().replace("-", "")):
        assert totp.matching_recovery_hash(spelling, USER, codes.hashes) == codes.hashes[3]
    for wrong in ("", code[:-1], code + "a", code.replace("-", "--"), f" {code}", "123456"):
        assert totp.matching_recovery_hash(wrong, USER, codes.hashes) is None
    assert totp.matching_recovery_hash(code, OTHER_USER, codes.hashes) is None


def test_recovery_hashes_are_keyed_by_secret_key_and_account(app):
    code = totp.new_recovery_codes(USER).shown[0]
    stored = totp.recovery_hash(code, USER)
    assert totp.recovery_hash(code, OTHER_USER) != stored
    with with_key(OTHER_KEY):
        assert totp.recovery_hash(code, USER) != stored


def test_the_key_uri_is_the_contracts(app):
    secret = totp.new_secret()
    assert totp.otpauth_uri(secret, "admin@example.org") == (
        f"otpauth://totp/Lumyri:admin@example.org?secret={secret}&issuer=Lumyri"
    )
    parsed = pyotp.parse_uri(totp.otpauth_uri(secret, "a+b@bücher.de"))
    assert (parsed.secret, parsed.name, parsed.issuer) == (secret, "a+b@bücher.de", "Lumyri")
    assert (parsed.digits, parsed.interval) == (6, 30)


def test_the_qr_code_is_svg_text():
    svg = totp.qr_svg("otpauth://totp/Lumyri:a@example.org?secret=AAAA&issuer=Lumyri")
    assert svg.startswith("<svg")
    assert ElementTree.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"


def test_an_mfa_token_is_signed_and_bound(app, monkeypatch):
    token = totp.mfa_token("challenge-id", USER, "hash-1")
    claims = totp.read_mfa_token(token)
    assert claims == ("challenge-id", USER, totp.mfa_binding(USER, "challenge-id", "hash-1"))
    _, payload = totp._mfa_serializer().loads_unsafe(token)
    assert set(payload) == {"c", "u", "b"} and "hash-1" not in json.dumps(payload)
    assert totp.mfa_binding(USER, "challenge-id", "hash-2") != claims.binding
    # A character inside the signature (the last one's low bits may be padding).
    forged = token[:-10] + ("A" if token[-10] != "A" else "B") + token[-9:]
    for bad in ("", "x", forged, token + "x" * 2000):
        assert totp.read_mfa_token(bad) is None
    with with_key(OTHER_KEY):
        assert totp.read_mfa_token(token) is None


def test_an_mfa_token_is_good_for_five_minutes(app, monkeypatch):
    import itsdangerous.timed

    token = totp.mfa_token("challenge-id", USER, "hash")
    real = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() + 299)
    assert totp.read_mfa_token(token) is not None
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() + 302)
    assert totp.read_mfa_token(token) is None
