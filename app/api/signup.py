"""The signup blueprint: admin and customer sign-up (thin views over the schema, the
idempotency guard and the account use cases)."""

from typing import Any, Literal

from flask import Blueprint, Response

from app import accounts, idempotency, ratelimit
from app.api.body import LoadedBody, body
from app.api.docs import SERVER_ERRORS, documented
from app.api.responses import auth_response
from app.errors import EmailTaken, IdempotencyKeyInProgress, IdempotencyKeyReused, RateLimited
from app.repository import Account
from app.schemas import AuthEnvelopeSchema, SignupRequestSchema
from app.tokens import issue_access_token

bp = Blueprint("signup", __name__, url_prefix="/api/v1/auth")

IDEMPOTENCY_KEY_PARAMETER = {
    "name": idempotency.HEADER,
    "in": "header",
    "required": False,
    "description": "Retries with the same key and an equal body within 24 h get the first "
    "answer again (same user, a valid token) instead of a 409.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": idempotency.MAX_LENGTH,
        "pattern": "^[ -~]+$",
    },
}
SIGNUP_ERRORS = [
    EmailTaken,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    RateLimited,
    *SERVER_ERRORS,
]


# What the two sign-up operations share in the OpenAPI document.
SIGNUP_OPERATION: dict[str, Any] = {
    "tags": ["sign-up"],
    "parameters": [IDEMPOTENCY_KEY_PARAMETER],
    "response": (201, AuthEnvelopeSchema, "Account created"),
    "errors": SIGNUP_ERRORS,
    "no_store": True,
}


def key_header_errors(_body: object = None) -> dict[str, list[str]]:
    """The Idempotency-Key header's errors, reported with the body's."""
    return idempotency.read_key_header().errors


def sign_up(kind: Literal["admin", "customer"], loaded: LoadedBody) -> Response:
    """Validated (body and Idempotency-Key), create the account once per key; a retry
    gets the first account again, with a valid token, and spends no rate-limit budget."""

    def create() -> Account:
        ratelimit.limit_signup()
        return accounts.sign_up(kind, loaded.fields)

    account = idempotency.run_once(idempotency.read_key_header().key, loaded.body, create)
    # Signed as of the credential's start: a replay answers with the very same token.
    token = issue_access_token(account.user, account.credential)
    return auth_response(account.user, token, status=201)


@bp.post("/admin/signup")
@documented(
    summary="Admin sign-up",
    description="Creates a user, a new company and the Admin system role (the website).",
    **SIGNUP_OPERATION,
)
@body(SignupRequestSchema, before_rules=key_header_errors)
def admin_signup(loaded: LoadedBody) -> Response:
    """Register an admin with a new company (used by the website)."""
    return sign_up("admin", loaded)


@bp.post("/customer/signup")
@documented(
    summary="Customer sign-up",
    description="Creates a user with the Customer role and no company (the mobile app).",
    **SIGNUP_OPERATION,
)
@body(SignupRequestSchema, before_rules=key_header_errors)
def customer_signup(loaded: LoadedBody) -> Response:
    """Register a customer, without a company (used by the mobile app)."""
    return sign_up("customer", loaded)
