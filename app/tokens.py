"""Access tokens: HS256 JWTs signed with a per-credential secret.

A credential's secret is HMAC-SHA256(SECRET_KEY, credential key): derived on the
server, never stored, so a copy of the database alone cannot forge a token, and
deleting or rotating a credential revokes every token signed with it.
"""

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import jwt
from flask import current_app

from app import repository
from app.errors import InvalidToken

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["company_id", "iss", "user_id", "iat", "exp"]
DERIVATION_CONTEXT = b"lumyri-accounts/jwt-credential/v1:"
LEEWAY_SECONDS = 10


def credential_secret(key):
    """Derive the signing secret of a credential from SECRET_KEY and its key."""
    secret_key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret_key, DERIVATION_CONTEXT + key.encode(), hashlib.sha256).digest()


def issue_access_token(user, credential, now=None):
    """Sign an access token for the user with their credential."""
    issued_at = now or datetime.now(UTC)
    lifetime = timedelta(seconds=current_app.config["ACCESS_TOKEN_TTL_SECONDS"])
    claims = {
        "company_id": user.company_id or "",
        "iss": credential.key,
        "user_id": user.id,
        "iat": issued_at,
        "exp": issued_at + lifetime,
    }
    return jwt.encode(claims, credential_secret(credential.key), algorithm=ALGORITHM)


def _unverified_issuer(token):
    """Read `iss` before verifying, to know which credential's secret to check against."""
    claims = jwt.decode(token, options={"verify_signature": False})
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise InvalidToken()
    return issuer


def verify_access_token(token):
    """Return the user a valid token belongs to; raise InvalidToken for anything else.

    HS256 only (no `none`, no other algorithm), the credential looked up by `iss`,
    the signature checked with its derived secret, `exp` checked with a small leeway.
    """
    try:
        credential = repository.find_credential(_unverified_issuer(token))
        if credential is None:
            raise InvalidToken()
        claims = jwt.decode(
            token,
            credential_secret(credential.key),
            algorithms=[ALGORITHM],
            issuer=credential.key,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError:
        raise InvalidToken() from None
    if claims["user_id"] != credential.user_id:
        raise InvalidToken()
    return credential.user
