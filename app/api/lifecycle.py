"""The lifecycle blueprint: verifying the address, recovering and changing the password
(the contract's "Account lifecycle"). Thin views: the schema checks the fields, the
account use cases do the rest; mails go out through the outbox, never inline."""

from flask import Blueprint, Response, g

from app import accounts, ratelimit
from app.api.body import LoadedBody, body
from app.api.docs import SERVER_ERRORS, documented
from app.api.responses import accepted, auth_response, user_response
from app.errors import (
    EmailAlreadyVerified,
    InvalidLink,
    MfaRequired,
    RateLimited,
    WrongPassword,
)
from app.schemas import (
    AcceptedEnvelopeSchema,
    AuthEnvelopeSchema,
    ChangePasswordRequestSchema,
    ForgotPasswordRequestSchema,
    LinkTokenRequestSchema,
    ResetPasswordRequestSchema,
    UserEnvelopeSchema,
)
from app.tokens import issue_access_token, require_access_token

bp = Blueprint("lifecycle", __name__, url_prefix="/api/v1/auth")


@bp.post("/email/verify")
@documented(
    summary="Verify the e-mail address with a link's token",
    description="Good for EMAIL_VERIFY_TTL_SECONDS, for the address it was sent to, and "
    "again while that is still the account's address.",
    tags=["account lifecycle"],
    response=(200, UserEnvelopeSchema, "The address is verified"),
    errors=[InvalidLink, *SERVER_ERRORS],
    no_store=True,
)
@body(LinkTokenRequestSchema)
def verify_email(loaded: LoadedBody) -> Response:
    """The verification link's token in, the verified account out."""
    return user_response(accounts.verify_email(loaded.fields["token"]))


@bp.post("/email/verification")
@documented(
    summary="Send a new verification mail",
    description="Takes no body (one that is sent is ignored).",
    tags=["account lifecycle"],
    response=(202, AcceptedEnvelopeSchema, "The mail will go out"),
    errors=[EmailAlreadyVerified, RateLimited, *SERVER_ERRORS],
)
@require_access_token
def send_verification() -> Response:
    """A new verify_email mail to the bearer's address."""
    accounts.send_verification(g.current_user)
    return accepted()


@bp.post("/password/forgot")
@documented(
    summary="Ask for a password reset mail",
    description="Always 202 for a valid address, whether or not an account has it, in "
    "about the same time; at most RATELIMIT_MAIL_PER_ADDRESS mails per address (beyond "
    "that, still 202 and no mail).",
    tags=["account lifecycle"],
    response=(202, AcceptedEnvelopeSchema, "A reset mail goes out if an account has it"),
    errors=[RateLimited, *SERVER_ERRORS],
)
@body(ForgotPasswordRequestSchema)
def forgot_password(loaded: LoadedBody) -> Response:
    """The address in; a reset mail out if an account has it."""
    ratelimit.limit_password_forgot()
    accounts.forgot_password(loaded.fields["email"])
    return accepted()


@bp.post("/password/reset")
@documented(
    summary="Set a new password with a reset link's token",
    description="Good once and for PASSWORD_RESET_TTL_SECONDS; revokes every earlier "
    "access token and counts as proof of the address. With two-factor on, the password "
    "is changed and the answer is 403 MFA_REQUIRED (continue at /login/mfa).",
    tags=["account lifecycle"],
    response=(200, AuthEnvelopeSchema, "The new password is set"),
    errors=[InvalidLink, MfaRequired, *SERVER_ERRORS],
    no_store=True,
)
@body(ResetPasswordRequestSchema)
def reset_password(loaded: LoadedBody) -> Response:
    """The reset link's token and a new password in, a fresh token out."""
    account = accounts.reset_password(loaded.fields["token"], loaded.fields["password"])
    return auth_response(account.user, issue_access_token(account.user, account.credential))


@bp.post("/password/change")
@documented(
    summary="Change the password",
    description="Proved by the current password; every other access token of the account "
    "is revoked. Limited like log-in.",
    tags=["account lifecycle"],
    response=(200, AuthEnvelopeSchema, "The new password is set"),
    errors=[RateLimited, WrongPassword, *SERVER_ERRORS],
    no_store=True,
)
@require_access_token
@body(ChangePasswordRequestSchema)
def change_password(loaded: LoadedBody) -> Response:
    """Current and new password in, a fresh token out."""
    fields = loaded.fields
    ratelimit.limit_password_proof(g.current_user.id)
    account = accounts.change_password(
        g.current_user, fields["current_password"], fields["new_password"]
    )
    return auth_response(account.user, issue_access_token(account.user, account.credential))
