"""Sign-up endpoints: thin views over the schema and the account use cases."""

from app import accounts
from app.body import load_json
from app.responses import auth_response
from app.schemas import SIGNUP_SCHEMA
from app.signup import bp
from app.tokens import issue_access_token


@bp.post("/admin/signup")
def admin_signup():
    """Register an admin with a new company (used by the website)."""
    user, credential = accounts.sign_up("admin", load_json(SIGNUP_SCHEMA))
    return auth_response(user, issue_access_token(user, credential), status=201)


@bp.post("/customer/signup")
def customer_signup():
    """Register a customer, without a company (used by the mobile app)."""
    user, credential = accounts.sign_up("customer", load_json(SIGNUP_SCHEMA))
    return auth_response(user, issue_access_token(user, credential), status=201)
