"""The sessions blueprint: log in, who-am-I, log out, and the account's sessions."""

from flask import Blueprint, Response, g, request

from app import accounts, ratelimit, sessions
from app.api.body import (
    LoadedBody,
    body,
    load_fields,
    parse_json_object,
    read_body,
    require_json_content_type,
)
from app.api.docs import BODY_ERRORS, SERVER_ERRORS, documented
from app.api.responses import auth_response, no_content, not_cached, success, user_response
from app.errors import InvalidCredentials, MfaRequired, NotFound, RateLimited
from app.schemas import AuthEnvelopeSchema, LoginRequestSchema, UserEnvelopeSchema
from app.schemas.sessions import LogoutRequestSchema, SessionListEnvelopeSchema
from app.tokens import issue_access_token, require_access_token

LOGOUT_BODY = LogoutRequestSchema()

bp = Blueprint("sessions", __name__, url_prefix="/api/v1/auth")


@bp.post("/login")
@documented(
    summary="Log in",
    tags=["sessions"],
    description="With two-factor on, a right password answers 403 MFA_REQUIRED with "
    "error.mfa_token (continue at /login/mfa) instead.",
    response=(200, AuthEnvelopeSchema, "Logged in"),
    errors=[InvalidCredentials, MfaRequired, RateLimited, *SERVER_ERRORS],
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


def _log_out_scope() -> sessions.Scope:
    """The optional body's scope: no body (none declared, or an empty one) is `all`, as
    before scopes existed; a body is read like every other (415, INVALID_JSON, 400 for an
    unknown scope)."""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if not request.content_length and not chunked:
        return "all"
    raw = read_body()
    if not raw:
        return "all"
    require_json_content_type()
    scope: sessions.Scope = load_fields(LOGOUT_BODY, parse_json_object(raw)).fields["scope"]
    return scope


@bp.post("/logout")
@documented(
    summary="End sessions of the account",
    description="No body (or scope all): every session of the account; current: the "
    "caller's only; others: every other one. Their tokens are refused at once (by /verify "
    "and introspection within TOKEN_CACHE_SECONDS).",
    tags=["sessions"],
    body=LogoutRequestSchema,
    response=(204, None, "Sessions ended"),
    errors=[*BODY_ERRORS, *SERVER_ERRORS],
)
@require_access_token
def logout() -> Response:
    """End the bearer's sessions (the scope's)."""
    sessions.log_out(g.current_user, g.current_session, _log_out_scope())
    return no_content()


@bp.get("/sessions")
@documented(
    summary="The account's sessions",
    description="Live sessions, newest first, one per log-in (or other answer that handed "
    "out a token): when it started, when it was last used (to within 5 minutes), its "
    "User-Agent and client address, and whether it is the caller's.",
    tags=["sessions"],
    response=(200, SessionListEnvelopeSchema, "The sessions"),
    errors=[*SERVER_ERRORS],
    no_store=True,
)
@require_access_token
def list_sessions() -> Response:
    """The bearer's account's live sessions."""
    listed = sessions.list_sessions(g.current_user, g.current_session)
    return not_cached(success({"sessions": listed}))


@bp.delete("/sessions/<session_id>")
@documented(
    summary="End one session",
    description="Its token is refused at once (by /verify and introspection within "
    "TOKEN_CACHE_SECONDS). Another account's session, an ended one, or none: 404.",
    tags=["sessions"],
    response=(204, None, "Ended"),
    errors=[NotFound, *SERVER_ERRORS],
)
@require_access_token
def end_session(session_id: str) -> Response:
    """Nothing in, nothing out."""
    sessions.end_session(g.current_user, session_id)
    return no_content()
