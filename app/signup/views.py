"""Sign-up endpoints: thin views over the schema and the account use cases."""

from app import accounts, ratelimit
from app.body import load_json
from app.responses import auth_response
from app.schemas import SIGNUP_SCHEMA
from app.signup import bp
from app.tokens import issue_access_token


@bp.post("/admin/signup")
def admin_signup():
    """Register an admin with a new company (used by the website)."""
    fields = load_json(SIGNUP_SCHEMA)
    ratelimit.limit_signup()
    user, credential = accounts.sign_up("admin", fields)
    return auth_response(user, issue_access_token(user, credential), status=201)


@bp.post("/customer/signup")
def customer_signup():
    """Register a customer, without a company (used by the mobile app)."""
    fields = load_json(SIGNUP_SCHEMA)
    ratelimit.limit_signup()
    user, credential = accounts.sign_up("customer", fields)
    return auth_response(user, issue_access_token(user, credential), status=201)
