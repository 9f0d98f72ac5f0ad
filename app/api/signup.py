"""The signup blueprint: admin and customer sign-up (thin views over the schema, the
idempotency guard and the account use cases)."""

from typing import Any

from flask import Blueprint, Response

from app import accounts, idempotency, ratelimit
from app.api.body import load_json
from app.api.docs import BODY_ERRORS, SERVER_ERRORS, documented
from app.api.responses import auth_response
from app.errors import EmailTaken, IdempotencyKeyInProgress, IdempotencyKeyReused, RateLimited
from app.repository import Account
from app.schemas import SIGNUP_SCHEMA, AuthEnvelopeSchema, SignupRequestSchema
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
    *BODY_ERRORS,
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
    "body": SignupRequestSchema,
    "response": (201, AuthEnvelopeSchema, "Account created"),
    "errors": SIGNUP_ERRORS,
    "no_store": True,
}


def sign_up(kind: str) -> Response:
    """Validate (body and Idempotency-Key), then create the account once per key; a retry
    gets the first account again, with a valid token, and spends no rate-limit budget."""
    header = idempotency.read_key_header()
    loaded = load_json(SIGNUP_SCHEMA, header.errors)

    def create() -> Account:
        ratelimit.limit_signup()
        return accounts.sign_up(kind, loaded.fields)

    account = idempotency.run_once(header.key, loaded.body, create)
    # Signed as of the credential's start: a replay answers with the very same token.
    token = issue_access_token(account.user, account.credential, now=account.credential.created_at)
    return auth_response(account.user, token, status=201)


@bp.post("/admin/signup")
@documented(
    summary="Admin sign-up",
    description="Creates a user, a new company and the Admin system role (the website).",
    **SIGNUP_OPERATION,
)
def admin_signup() -> Response:
    """Register an admin with a new company (used by the website)."""
    return sign_up("admin")


@bp.post("/customer/signup")
@documented(
    summary="Customer sign-up",
    description="Creates a user with the Customer role and no company (the mobile app).",
    **SIGNUP_OPERATION,
)
def customer_signup() -> Response:
    """Register a customer, without a company (used by the mobile app)."""
    return sign_up("customer")
