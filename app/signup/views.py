"""Sign-up endpoints: thin views over the schema and the account use cases."""

from app import accounts, idempotency, ratelimit
from app.body import load_json_with_body
from app.responses import auth_response
from app.schemas import SIGNUP_SCHEMA
from app.signup import bp
from app.tokens import issue_access_token


def sign_up(kind):
    """Validate (body and Idempotency-Key), then create once, replaying to retries.

    A retry that is replayed spends no rate-limit budget: it creates nothing.
    """
    header_errors, key = idempotency.key_errors()
    fields, body = load_json_with_body(SIGNUP_SCHEMA, header_errors)

    def create():
        ratelimit.limit_signup()
        user, credential = accounts.sign_up(kind, fields)
        return user, auth_response(user, issue_access_token(user, credential), status=201)

    if key is None:
        return create()[1]
    return idempotency.run_once(body, key, create, replay)


def replay(user):
    """The first answer again: the same user, 201, and a valid token."""
    credential = accounts.current_credential(user)
    return auth_response(user, issue_access_token(user, credential), status=201)


@bp.post("/admin/signup")
def admin_signup():
    """Register an admin with a new company (used by the website)."""
    return sign_up("admin")


@bp.post("/customer/signup")
def customer_signup():
    """Register a customer, without a company (used by the mobile app)."""
    return sign_up("customer")
