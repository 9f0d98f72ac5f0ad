"""The sessions blueprint: log in, who-am-I, log out."""

from flask import Blueprint, Response, g

from app import accounts, ratelimit
from app.api.body import LoadedBody, body
from app.api.docs import SERVER_ERRORS, documented
from app.api.responses import auth_response, no_content, user_response
from app.errors import InvalidCredentials, RateLimited
from app.schemas import AuthEnvelopeSchema, LoginRequestSchema, UserEnvelopeSchema
from app.tokens import issue_access_token, require_access_token

bp = Blueprint("sessions", __name__, url_prefix="/api/v1/auth")


@bp.post("/login")
@documented(
    summary="Log in",
    tags=["sessions"],
    response=(200, AuthEnvelopeSchema, "Logged in"),
    errors=[InvalidCredentials, RateLimited, *SERVER_ERRORS],
    no_store=True,
)
@body(LoginRequestSchema)
def login(loaded: LoadedBody) -> Response:
    """E-mail and password in, a fresh access token and the user out."""
    fields = loaded.fields
    ratelimit.limit_login(fields["email"])
    account = accounts.authenticate(fields["email"], fields["password"])
    return auth_response(account.user, issue_access_token(account.user, account.credential))


@bp.get("/me")
@documented(
    summary="The user the access token belongs to",
    tags=["sessions"],
    response=(200, UserEnvelopeSchema, "The user"),
    errors=[*SERVER_ERRORS],
    no_store=True,
)
@require_access_token
def me() -> Response:
    """The user the bearer token belongs to."""
    return user_response(g.current_user)


@bp.post("/logout")
@documented(
    summary="Revoke every access token of the account",
    tags=["sessions"],
    response=(204, None, "Tokens revoked"),
    errors=[*SERVER_ERRORS],
)
@require_access_token
def logout() -> Response:
    """Revoke every token of the bearer's account."""
    accounts.revoke_tokens(g.current_user)
    return no_content()
