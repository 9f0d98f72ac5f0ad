"""The mfa blueprint: two-factor's state, set-up, confirmation, recovery codes and
disabling, and a log-in's second step (the contract's "Two-factor (TOTP)"). Thin views:
the schema checks the fields, app.mfa does the rest in the contract's order."""

from flask import Blueprint, Response, g

from app import mfa
from app.api.body import LoadedBody, body
from app.api.docs import SERVER_ERRORS, documented
from app.api.responses import auth_response, no_content, not_cached, success
from app.errors import (
    InvalidCode,
    MfaAlreadyEnabled,
    MfaNotEnabled,
    RateLimited,
    WrongPassword,
)
from app.schemas import AuthEnvelopeSchema
from app.schemas.mfa import (
    MfaCodeRequestSchema,
    MfaEnabledEnvelopeSchema,
    MfaLoginRequestSchema,
    MfaPasswordRequestSchema,
    MfaProofRequestSchema,
    MfaStatusEnvelopeSchema,
    RecoveryCodesEnvelopeSchema,
    TotpSetupEnvelopeSchema,
)
from app.tokens import issue_access_token, require_access_token

bp = Blueprint("mfa", __name__, url_prefix="/api/v1/auth")
PROOF_ERRORS = (RateLimited, MfaNotEnabled, InvalidCode, WrongPassword, *SERVER_ERRORS)


@bp.get("/mfa")
@documented(
    summary="Two-factor's state",
    tags=["two-factor"],
    response=(200, MfaStatusEnvelopeSchema, "Whether it is on, and recovery codes left"),
    errors=[*SERVER_ERRORS],
    no_store=True,
)
@require_access_token
def status() -> Response:
    """The bearer's two-factor state."""
    return not_cached(success(mfa.status(g.current_user)))


@bp.post("/mfa/totp/setup")
@documented(
    summary="Set up TOTP: a new secret to confirm",
    description="RFC 6238 (SHA-1, 6 digits, 30 s), a 160-bit secret, its otpauth URI and "
    "QR code. Nothing is on until it is confirmed; a new set-up replaces an unconfirmed "
    "one. Limited like log-in.",
    tags=["two-factor"],
    response=(200, TotpSetupEnvelopeSchema, "The secret to confirm"),
    errors=[RateLimited, MfaAlreadyEnabled, WrongPassword, *SERVER_ERRORS],
    no_store=True,
)
@require_access_token
@body(MfaPasswordRequestSchema)
def set_up(loaded: LoadedBody) -> Response:
    """The password in, the pending secret out."""
    return not_cached(success(mfa.set_up(g.current_user, loaded.fields["password"])))


@bp.post("/mfa/totp/confirm")
@documented(
    summary="Confirm TOTP: two-factor on",
    description="A code of the pending secret (a recovery code will not do). Every "
    "earlier session ends, the fresh token starts a new one; the 10 recovery codes are "
    "shown once; an mfa_enabled mail. A wrong code leaves the set-up pending. At most "
    "RATELIMIT_MFA code checks per account.",
    tags=["two-factor"],
    response=(200, MfaEnabledEnvelopeSchema, "Two-factor is on"),
    errors=[RateLimited, MfaAlreadyEnabled, MfaNotEnabled, InvalidCode, *SERVER_ERRORS],
    no_store=True,
)
@require_access_token
@body(MfaCodeRequestSchema)
def confirm(loaded: LoadedBody) -> Response:
    """A code in; a fresh token and the recovery codes out."""
    user = g.current_user
    credential, codes = mfa.confirm(user, loaded.fields["code"])
    token = issue_access_token(user, credential)
    return not_cached(success({"access_token": token, "recovery_codes": codes}))


@bp.post("/mfa/recovery-codes")
@documented(
    summary="New recovery codes",
    description="Proved by the password and a code (TOTP or recovery); the old codes "
    "die; the 10 new ones are shown once.",
    tags=["two-factor"],
    response=(200, RecoveryCodesEnvelopeSchema, "The new recovery codes"),
    errors=list(PROOF_ERRORS),
    no_store=True,
)
@require_access_token
@body(MfaProofRequestSchema)
def recovery_codes(loaded: LoadedBody) -> Response:
    """Password and code in, ten new recovery codes out."""
    fields = loaded.fields
    codes = mfa.new_recovery_codes(g.current_user, fields["password"], fields["code"])
    return not_cached(success({"recovery_codes": codes}))


@bp.post("/mfa/disable")
@documented(
    summary="Turn two-factor off",
    description="Proved by the password and a code (TOTP or recovery); the recovery codes "
    "go; an mfa_disabled mail.",
    tags=["two-factor"],
    response=(204, None, "Two-factor is off"),
    errors=list(PROOF_ERRORS),
)
@require_access_token
@body(MfaProofRequestSchema)
def disable(loaded: LoadedBody) -> Response:
    """Password and code in, nothing out."""
    mfa.disable(g.current_user, loaded.fields["password"], loaded.fields["code"])
    return no_content()


@bp.post("/login/mfa")
@documented(
    summary="Log in, second step",
    description="The mfa_token of a 403 MFA_REQUIRED (good for 5 minutes, once, for 5 "
    "wrong codes, while the password is unchanged) and a code (TOTP or recovery). A dead "
    "mfa_token is 401 INVALID_CODE.",
    tags=["sessions", "two-factor"],
    response=(200, AuthEnvelopeSchema, "Logged in"),
    errors=[RateLimited, InvalidCode, *SERVER_ERRORS],
    no_store=True,
)
@body(MfaLoginRequestSchema)
def log_in(loaded: LoadedBody) -> Response:
    """The mfa_token and a code in; a fresh token and the user out."""
    account = mfa.log_in(loaded.fields["mfa_token"], loaded.fields["code"])
    return auth_response(account.user, issue_access_token(account.user, account.credential))
