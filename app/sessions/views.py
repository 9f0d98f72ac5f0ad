"""Session endpoints: thin views over the schema, the account use cases and the token module."""

from flask import g

from app import accounts, ratelimit
from app.body import load_json
from app.responses import auth_response, no_content, user_response
from app.schemas import LOGIN_SCHEMA
from app.sessions import bp
from app.tokens import issue_access_token, require_access_token


@bp.post("/login")
def login():
    """E-mail and password in, a fresh access token and the user out."""
    fields = load_json(LOGIN_SCHEMA)
    ratelimit.limit_login(fields["email"])
    user, credential = accounts.authenticate(fields["email"], fields["password"])
    return auth_response(user, issue_access_token(user, credential))


@bp.get("/me")
@require_access_token
def me():
    """The user the bearer token belongs to."""
    return user_response(g.current_user)


@bp.post("/logout")
@require_access_token
def logout():
    """Revoke every token of the bearer's account."""
    accounts.revoke_tokens(g.current_user)
    return no_content()
