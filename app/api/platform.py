"""The platform blueprint: how the platform's other services accept our access tokens
without our secret. Forward authentication for a gateway (nginx `auth_request`, Traefik
ForwardAuth) and RFC 7662 introspection, both answered from app.identity's cache."""

from __future__ import annotations

import functools
from typing import Any

from flask import Blueprint, Response, current_app, request

from app import identity, metrics
from app.api.docs import SERVER_ERRORS, documented
from app.api.responses import not_cached, raw_json
from app.errors import (
    JSON_MIMETYPE,
    InvalidClient,
    InvalidToken,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    envelope,
)
from app.schemas import IdentityEnvelopeSchema, IntrospectionSchema
from app.tokens import bearer_token

bp = Blueprint("platform", __name__, url_prefix="/api/v1/auth")

FORM_MIMETYPE = "application/x-www-form-urlencoded"
# Where the fast path leaves the database failure it met, for the view to answer with.
DATABASE_FAILURE = "lumyri.verify.database_failure"
VERIFY_VALID = metrics.TOKEN_CHECKS.labels("verify", "valid")
VERIFY_INVALID = metrics.TOKEN_CHECKS.labels("verify", "invalid")
INTROSPECT = {
    outcome: metrics.TOKEN_CHECKS.labels("introspect", outcome)
    for outcome in ("valid", "invalid", "invalid_client")
}
IDENTITY_HEADERS = {
    "X-User-Id": {"schema": {"type": "string"}},
    "X-Company-Id": {"schema": {"type": "string"}, "description": '"" for a customer'},
    "X-User-Role": {
        "schema": {"type": "string"},
        "description": "The role's name (Admin, Customer or a custom role's): its UTF-8, "
        "with every byte outside 0x20-0x7E, and %, written %XX (upper-case hex)",
    },
    "X-User-Role-Id": {"schema": {"type": "string"}},
    "X-User-Permissions": {
        "schema": {"type": "string"},
        "description": "The role's true leaves (section.resource.level), sorted, "
        'comma-separated; "" for none',
    },
    "X-Session-Id": {"schema": {"type": "string"}},
    "X-Email-Verified": {"schema": {"type": "string", "enum": ["true", "false"]}},
}
# The bytes of a role's name sent as they are in X-User-Role: printable ASCII but `%`.
HEADER_SAFE = frozenset(range(0x20, 0x7F)) - {ord("%")}
INTROSPECTION_BODY = {
    "required": True,
    "content": {
        FORM_MIMETYPE: {
            "schema": {
                "type": "object",
                "required": ["token"],
                "properties": {
                    "token": {"type": "string", "minLength": 1},
                    "token_type_hint": {"type": "string", "description": "accepted, ignored"},
                },
            }
        }
    },
}


@bp.get("/verify")
@documented(
    summary="Forward authentication for a gateway",
    description="The bearer token's identity, in the X-User-Id, X-Company-Id, X-User-Role, "
    "X-User-Role-Id, X-User-Permissions, X-Session-Id and X-Email-Verified headers and in "
    "the body (the role's name as is there). Answered from a per-process cache: a "
    "revocation, or a change of the identity, is seen within TOKEN_CACHE_SECONDS. HEAD "
    "answers the same without a body.",
    tags=["platform"],
    bearer=True,
    response=(200, IdentityEnvelopeSchema, "A valid token"),
    response_headers=IDENTITY_HEADERS,
    errors=[InvalidToken, *SERVER_ERRORS],
    no_store=True,
)
def verify() -> Response:
    """200 with the identity headers for a valid bearer token, 401 otherwise (503 when
    the fast path found the database unreachable: it is not asked twice)."""
    failure = request.environ.get(DATABASE_FAILURE)
    if failure is not None:
        raise failure
    try:
        who = identity.identify(bearer_token())
    except InvalidToken:
        VERIFY_INVALID.inc()
        raise
    VERIFY_VALID.inc()
    body, headers = verify_answer(who)
    response: Response = current_app.response_class(body, status=200, headers=headers)
    return response


@functools.lru_cache(maxsize=4096)
def verify_answer(who: identity.Identity) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """The body and headers of /verify's 200 for an identity (made once per identity:
    the Flask view and the fast path (app.api.verify_fast_path) both answer with it; the
    security headers are added by each, as to every answer)."""
    data = {
        "user_id": who.user_id,
        "company_id": who.company_id,
        "role": who.role,
        "role_id": who.role_id,
        "permissions": list(who.permissions),
        "session_id": who.session_id,
        "email_verified": who.email_verified,
    }
    body = envelope(data).encode()
    headers = (
        ("Content-Type", JSON_MIMETYPE),
        ("Content-Length", str(len(body))),
        ("X-User-Id", who.user_id),
        ("X-Company-Id", who.company_id),
        ("X-User-Role", header_text(who.role)),
        ("X-User-Role-Id", who.role_id),
        ("X-User-Permissions", ",".join(who.permissions)),
        ("X-Session-Id", who.session_id),
        ("X-Email-Verified", "true" if who.email_verified else "false"),
        ("Cache-Control", "no-store"),
    )
    return body, headers


def header_text(text: str) -> str:
    """Text as a header value of printable ASCII: its UTF-8, with every byte outside
    0x20-0x7E, and `%`, written `%XX` in upper-case hex (a space stays a space), as the
    contract writes X-User-Role. A lone surrogate (no name should hold one) is written
    as its surrogatepass bytes rather than failing the answer."""
    if text.isascii() and text.isprintable() and "%" not in text:
        return text
    return "".join(
        chr(byte) if byte in HEADER_SAFE else f"%{byte:02X}"
        for byte in text.encode("utf-8", "surrogatepass")
    )


def introspection_client() -> None:
    """HTTP Basic client authentication against INTROSPECTION_CLIENTS; 401 otherwise."""
    credentials = request.authorization
    if (
        credentials is None
        or credentials.type != "basic"
        or not identity.client_is_allowed(credentials.username or "", credentials.password or "")
    ):
        INTROSPECT["invalid_client"].inc()
        raise InvalidClient()


def introspection_token() -> str:
    """The form's `token` (once, not empty): 415 for another body type, 413 past the limit,
    400 VALIDATION_ERROR without one (an empty body of no declared type is a form without
    a token)."""
    no_body = not request.mimetype and not request.content_length
    if request.mimetype != FORM_MIMETYPE and not no_body:
        raise UnsupportedMediaType(f"The body must be sent as {FORM_MIMETYPE}.")
    if (request.content_length or 0) > current_app.config["MAX_CONTENT_LENGTH"]:
        raise PayloadTooLarge()
    values = request.form.getlist("token")
    if len(values) > 1:
        raise ValidationFailed(fields={"token": ["Must be given once."]})
    if not values or not values[0]:
        raise ValidationFailed(fields={"token": ["Missing data for required field."]})
    return values[0]


@bp.post("/introspect")
@documented(
    summary="Token introspection (RFC 7662)",
    description="For the platform's services, authenticated as one of INTROSPECTION_CLIENTS "
    "(HTTP Basic), checked before anything else. The answer is RFC 7662's bare object, "
    'not the envelope: the token\'s identity, or exactly {"active": false}.',
    tags=["platform"],
    response=(200, IntrospectionSchema, "The token's state"),
    errors=[
        ValidationFailed,
        InvalidClient,
        PayloadTooLarge,
        UnsupportedMediaType,
        *SERVER_ERRORS,
    ],
    no_store=True,
    extra={"requestBody": INTROSPECTION_BODY, "security": [{"introspectionClient": []}]},
)
def introspect() -> Response:
    """The token's state for an authenticated client."""
    introspection_client()
    token = introspection_token()
    try:
        who = identity.identify(token)
    except InvalidToken:
        INTROSPECT["invalid"].inc()
        return not_cached(raw_json({"active": False}))
    INTROSPECT["valid"].inc()
    answer: dict[str, Any] = {
        "active": True,
        "token_type": "access_token",
        "sub": who.user_id,
        "user_id": who.user_id,
        "company_id": who.company_id,
        "role": who.role,
        "role_id": who.role_id,
        "permissions": list(who.permissions),
        "session_id": who.session_id,
        "email_verified": who.email_verified,
        "iss": who.issuer,
        "iat": who.issued_at,
        "exp": who.expires_at,
    }
    return not_cached(raw_json(answer))
