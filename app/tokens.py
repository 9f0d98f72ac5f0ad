"""Access tokens: HS256 JWTs signed with a per-credential secret.

A credential's secret is HMAC-SHA256(SECRET_KEY, credential key): derived on the
server, never stored, so a copy of the database alone cannot forge a token, and
deleting or rotating a credential revokes every token signed with it.
"""

import functools
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

import jwt
from flask import current_app, g, request

from app import repository
from app.errors import InvalidToken

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["company_id", "iss", "user_id", "iat", "exp"]
DERIVATION_CONTEXT = b"lumyri-accounts/jwt-credential/v1:"
LEEWAY_SECONDS = 10
CREDENTIAL_KEY_PATTERN = re.compile(r"[A-Za-z0-9]{32}")
BEARER_PATTERN = re.compile(r"Bearer[ \t]+([^\s]+)[ \t]*", re.IGNORECASE)


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
    # Only a well-formed key is looked up: nothing odd in a token reaches a query.
    if not isinstance(issuer, str) or not CREDENTIAL_KEY_PATTERN.fullmatch(issuer):
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


def bearer_token():
    """The token of an `Authorization: Bearer <token>` header; InvalidToken otherwise."""
    match = BEARER_PATTERN.fullmatch(request.headers.get("Authorization", ""))
    if match is None:
        raise InvalidToken()
    return match.group(1)


def require_access_token(view):
    """Decorator: refuse the request with 401 unless it carries a valid access token;
    the token's user is then `g.current_user`."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.current_user = verify_access_token(bearer_token())
        return view(*args, **kwargs)

    return wrapper
