"""Access tokens: HS256 JWTs signed with a per-credential secret.

A credential's secret is HMAC-SHA256(SECRET_KEY, credential key): derived on the
server, never stored, so a copy of the database alone cannot forge a token, and
deleting or rotating a credential revokes every token signed with it.
"""

import binascii
import functools
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NamedTuple, ParamSpec, TypeVar

import jwt
from flask import current_app, g, request

from app import repository
from app.errors import InvalidToken
from app.models import SigningCredential, User, as_utc, utc_now
from app.secret_key import derived_key
from app.strict_json import object_without_duplicates

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["company_id", "iss", "user_id", "iat", "exp"]
DERIVATION_CONTEXT = b"lumyri-accounts/jwt-credential/v1:"
# A token is refused from the instant of its `exp` on: no leeway (the contract's rule).
LEEWAY_SECONDS = 0
# A real token is a few hundred characters; nothing longer is parsed at all.
MAX_TOKEN_LENGTH = 4096
CREDENTIAL_KEY_PATTERN = re.compile(r"[A-Za-z0-9]{32}")
BEARER_PATTERN = re.compile(r"Bearer[ \t]+([^\s]+)[ \t]*", re.IGNORECASE)

P = ParamSpec("P")
R = TypeVar("R")


def credential_secret(key: str) -> bytes:
    """Derive the signing secret of a credential from SECRET_KEY and its key."""
    return derived_key(DERIVATION_CONTEXT + key.encode())


def issue_access_token(
    user: User, credential: SigningCredential, now: datetime | None = None
) -> str:
    """Sign the access token of a session: issued when the session started (or `now`),
    expiring when it ends (a replayed sign-up answers with the very same token)."""
    issued_at = now or as_utc(credential.created_at)
    lifetime = timedelta(seconds=current_app.config["ACCESS_TOKEN_TTL_SECONDS"])
    claims = {
        "company_id": user.company_id or "",
        "iss": credential.key,
        "user_id": user.id,
        "iat": issued_at,
        "exp": issued_at + lifetime,
    }
    return jwt.encode(claims, credential_secret(credential.key), algorithm=ALGORITHM)


def _strict_json_segment(segment: str) -> dict[str, Any]:
    """A header or payload segment as a JSON object with no repeated key (`{"alg":"none",
    "alg":"HS256"}` is ambiguous, and an ambiguous token is not verified)."""
    try:
        value = json.loads(
            jwt.utils.base64url_decode(segment), object_pairs_hook=object_without_duplicates
        )
    except (ValueError, binascii.Error, TypeError, RecursionError):
        raise InvalidToken() from None
    if not isinstance(value, dict):
        raise InvalidToken()
    return value


def _unverified_issuer(token: str) -> str:
    """Read `iss` before verifying, to know which credential's secret to check against;
    a header or payload that repeats a key is refused here, before anything is looked up."""
    segments = token.split(".")
    if len(token) > MAX_TOKEN_LENGTH or len(segments) != 3:
        raise InvalidToken()
    _strict_json_segment(segments[0])
    issuer = _strict_json_segment(segments[1]).get("iss")
    # Only a well-formed key is looked up: nothing odd in a token reaches a query.
    if not isinstance(issuer, str) or not CREDENTIAL_KEY_PATTERN.fullmatch(issuer):
        raise InvalidToken()
    return issuer


class VerifiedToken(NamedTuple):
    """A token that passed every check: its account, its session and its claims."""

    user: User
    session: SigningCredential
    claims: dict[str, Any]


def verify_access_token(token: str) -> User:
    """Return the user a valid token belongs to; raise InvalidToken for anything else."""
    return verify_token(token).user


def signed_claims(token: str) -> dict[str, Any]:
    """The claims of a correctly signed, unexpired token, checked without the database
    (the secret is derived from SECRET_KEY and the token's `iss`): HS256 only (no `none`,
    no other algorithm), no repeated key in header or payload, every claim present, `exp`
    in the future (no leeway). Whether the credential still exists and the claims are the
    account's is the caller's check; InvalidToken for anything else."""
    issuer = _unverified_issuer(token)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            credential_secret(issuer),
            algorithms=[ALGORITHM],
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError:
        raise InvalidToken() from None
    return claims


def claims_match(claims: dict[str, Any], user_id: str, company_id: str | None) -> bool:
    """The token says what the account is: its user and its company (or "" for none)."""
    return bool(claims["user_id"] == user_id and claims["company_id"] == (company_id or ""))


def verify_token(token: str) -> VerifiedToken:
    """The account and claims of a valid token: signed_claims, then the credential of its
    `iss` (deleted or rotated: refused) and the account it belongs to."""
    claims = signed_claims(token)
    credential = repository.find_credential(claims["iss"])
    if credential is None or not claims_match(
        claims, credential.user.id, credential.user.company_id
    ):
        raise InvalidToken()
    if repository.needs_touch(credential.last_used_at, utc_now()):
        repository.touch_session(credential.id)  # last_used_at, to within 5 minutes
    return VerifiedToken(credential.user, credential, claims)


def bearer_token() -> str:
    """The token of an `Authorization: Bearer <token>` header; InvalidToken otherwise."""
    match = BEARER_PATTERN.fullmatch(request.headers.get("Authorization", ""))
    if match is None:
        raise InvalidToken()
    return match.group(1)


# The attribute on a view that says it needs a bearer token (app.api.docs reads it).
BEARER_ATTRIBUTE = "openapi_bearer"


def require_access_token(view: Callable[P, R]) -> Callable[P, R]:
    """Decorator: refuse the request with 401 unless it carries a valid access token;
    the token's user is then `g.current_user` and its session `g.current_session`.
    Checked before the body is read (put it above @body); the OpenAPI document marks the
    operation bearer-protected from it."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        verified = verify_token(bearer_token())
        g.current_user, g.current_session = verified.user, verified.session
        return view(*args, **kwargs)

    setattr(wrapper, BEARER_ATTRIBUTE, True)
    return wrapper
