"""The cryptography of two-factor: TOTP secrets and codes (RFC 6238: SHA-1, 6 digits,
30-second steps), the secret encrypted at rest, recovery codes and their keyed hashes,
and the set-up's QR code. Nothing here touches the database or the request.

- A secret is 160 random bits, base32 (32 characters). At rest it is encrypted with
  AES-GCM under a key derived from SECRET_KEY, a random 96-bit nonce per encryption and
  the account's id as associated data (a value copied onto another account's row does not
  decrypt): a copy of the database alone cannot make codes.
- A code is good in its step or the one before or after; which step it matched is what
  the caller stores (users.totp_last_step), so a code is good once. Every candidate is
  compared in constant time (hmac.compare_digest), all three of them, whatever matches.
- A recovery code is 10 random lower-case letters and digits, shown as `xxxxx-xxxxx`,
  stored only as an HMAC-SHA256 under a key derived from SECRET_KEY, with the account's
  id in the message (no password hash: checking one costs next to nothing).
"""

from __future__ import annotations

import base64
import hmac
import io
import os
import re
import secrets
import string
import time
from typing import NamedTuple
from urllib.parse import quote

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from itsdangerous import BadData, URLSafeTimedSerializer

from app.secret_key import derived_key

ISSUER = "Lumyri"
DIGITS = 6
STEP_SECONDS = 30
SECRET_BYTES = 20  # 160 bits (RFC 4226's recommended length)
WINDOW = (-1, 0, 1)  # the step before, this one, the one after
RECOVERY_CODE_COUNT = 10
RECOVERY_ALPHABET = string.ascii_lowercase + string.digits
RECOVERY_HALF = 5
SECRET_CONTEXT = b"lumyri-accounts/totp-secret/v1"
RECOVERY_CONTEXT = b"lumyri-accounts/recovery-code/v1"
MFA_TOKEN_CONTEXT = b"lumyri-accounts/mfa-token/v1"
MFA_TOKEN_SECONDS = 300  # an mfa_token is good for 5 minutes
MAX_MFA_TOKEN_LENGTH = 1024  # ours are about 200 characters
CIPHERTEXT_PREFIX = "v1."
NONCE_BYTES = 12
TOTP_CODE = re.compile(r"[0-9]{6}")
RECOVERY_CODE = re.compile(r"[a-z0-9]{5}-?[a-z0-9]{5}")


# The clock codes are checked against (a seam for the tests).
clock = time.time


class SecretUnreadable(Exception):
    """A stored secret that does not decrypt (another SECRET_KEY, another account's row,
    or tampered with)."""


def new_secret() -> str:
    """A new TOTP secret: 160 random bits, base32 without padding (32 characters)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _cipher() -> AESGCM:
    """AES-256-GCM under the key derived from SECRET_KEY for TOTP secrets."""
    return AESGCM(derived_key(SECRET_CONTEXT))


def encrypt_secret(secret: str, user_id: str) -> str:
    """A secret as stored: `v1.` and base64url of a fresh nonce and the ciphertext, the
    account's id authenticated with it."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = _cipher().encrypt(nonce, secret.encode("ascii"), user_id.encode())
    return CIPHERTEXT_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def decrypt_secret(stored: str, user_id: str) -> str:
    """The secret of a stored value; SecretUnreadable when it does not decrypt."""
    if not stored.startswith(CIPHERTEXT_PREFIX):
        raise SecretUnreadable()
    try:
        raw = base64.urlsafe_b64decode(stored[len(CIPHERTEXT_PREFIX) :].encode("ascii"))
        plain = _cipher().decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], user_id.encode())
    except (InvalidTag, ValueError):
        raise SecretUnreadable() from None
    return plain.decode("ascii")


def otpauth_uri(secret: str, email: str) -> str:
    """The key URI an authenticator app reads: `otpauth://totp/Lumyri:<email>?secret=...
    &issuer=Lumyri` (the address percent-encoded where a URI needs it, `@` kept)."""
    label = quote(f"{ISSUER}:{email}", safe="@:+")
    return f"otpauth://totp/{label}?secret={secret}&issuer={ISSUER}"


def qr_svg(uri: str) -> str:
    """The key URI as a QR code: an SVG document's text, without an XML declaration
    (segno)."""
    out = io.BytesIO()
    segno.make(uri, micro=False).save(out, kind="svg", xmldecl=False, nl=False, scale=4)
    return out.getvalue().decode("utf-8")


def current_step(now: float | None = None) -> int:
    """The 30-second step of a moment (now by default)."""
    return int((clock() if now is None else now) // STEP_SECONDS)


def code_at(secret: str, step: int) -> str:
    """The 6-digit code of a secret at a step."""
    return str(pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step))


def matching_step(
    secret: str, code: str, after: int | None, now: float | None = None
) -> int | None:
    """The step (the one before, this one or the one after) whose code this is, if it is
    later than `after` (the last step whose code was used: each step's code is good
    once); None otherwise. Every candidate is computed and compared in constant time."""
    if TOTP_CODE.fullmatch(code) is None:
        return None
    here = current_step(now)
    found = None
    for offset in WINDOW:
        step = here + offset
        if hmac.compare_digest(code_at(secret, step).encode(), code.encode()) and (
            after is None or step > after
        ):
            found = step
    return found


def is_totp_code(code: str) -> bool:
    """Whether a code has a TOTP code's form (6 digits)."""
    return TOTP_CODE.fullmatch(code) is not None


class RecoveryCodes(NamedTuple):
    """New recovery codes: as shown once, and as stored."""

    shown: list[str]
    hashes: list[str]


def new_recovery_codes(user_id: str) -> RecoveryCodes:
    """RECOVERY_CODE_COUNT new codes `xxxxx-xxxxx` (about 51.7 random bits each), all
    different, and their keyed hashes."""
    shown: list[str] = []
    while len(shown) < RECOVERY_CODE_COUNT:
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(2 * RECOVERY_HALF))
        code = f"{raw[:RECOVERY_HALF]}-{raw[RECOVERY_HALF:]}"
        if code not in shown:
            shown.append(code)
    return RecoveryCodes(shown, [recovery_hash(code, user_id) for code in shown])


def normal_recovery_code(code: str) -> str | None:
    """A recovery code as hashed (lower case, no hyphen), or None when the text cannot be
    one (a TOTP code, or anything else)."""
    lowered = code.lower() if code.isascii() else code
    if RECOVERY_CODE.fullmatch(lowered) is None:
        return None
    return lowered.replace("-", "")


def recovery_hash(code: str, user_id: str) -> str:
    """The keyed hash a recovery code is stored as (64 hex digits)."""
    normal = normal_recovery_code(code) or code
    message = f"{user_id}\x00{normal}".encode()
    return hmac.new(derived_key(RECOVERY_CONTEXT), message, "sha256").hexdigest()


def matching_recovery_hash(code: str, user_id: str, unused: list[str]) -> str | None:
    """The stored hash (one of the account's unused ones) this code matches, compared in
    constant time with each; None when it matches none."""
    if normal_recovery_code(code) is None:
        return None
    candidate = recovery_hash(code, user_id).encode()
    found = None
    for stored in unused:
        if hmac.compare_digest(stored.encode(), candidate):
            found = stored
    return found


class MfaClaims(NamedTuple):
    """What a good mfa_token says: its challenge, its account, and the fingerprint of the
    password hash it was given for."""

    challenge_id: str
    user_id: str
    binding: str


def _mfa_serializer() -> URLSafeTimedSerializer:
    """itsdangerous' timed serializer with the mfa_token's own derived secret."""
    return URLSafeTimedSerializer(derived_key(MFA_TOKEN_CONTEXT), salt="lumyri-mfa-token")


def mfa_binding(user_id: str, challenge_id: str, password_hash: str) -> str:
    """A keyed fingerprint of the account, the challenge and the password hash (the
    token's payload is only signed: no hash travels in it)."""
    message = "\x00".join((user_id, challenge_id, password_hash)).encode()
    return hmac.new(derived_key(MFA_TOKEN_CONTEXT), message, "sha256").hexdigest()[:32]


def mfa_token(challenge_id: str, user_id: str, password_hash: str) -> str:
    """The mfa_token of a challenge: signed, naming the challenge and the account, bound
    to the password hash that was proved."""
    binding = mfa_binding(user_id, challenge_id, password_hash)
    return str(_mfa_serializer().dumps({"c": challenge_id, "u": user_id, "b": binding}))


def read_mfa_token(token: str) -> MfaClaims | None:
    """The claims of a signed mfa_token younger than MFA_TOKEN_SECONDS; None otherwise.
    Whether its challenge and password still hold is the caller's check."""
    if len(token) > MAX_MFA_TOKEN_LENGTH or not token.isascii():
        return None
    try:
        payload = _mfa_serializer().loads(token, max_age=MFA_TOKEN_SECONDS)
    except BadData:
        return None
    if not isinstance(payload, dict):
        return None
    parts = (payload.get("c"), payload.get("u"), payload.get("b"))
    if not all(isinstance(part, str) for part in parts):
        return None
    return MfaClaims(*(str(part) for part in parts))
