"""The profile blueprint: self-service changes of the profile, the company and the
address, and deleting the account (the contract's "Changing the profile, the company
and the e-mail" and "Deleting the account")."""

from flask import Blueprint, Response, g

from app import accounts, ratelimit
from app.api.body import load_fields, load_json, read_json_object
from app.api.docs import BODY_ERRORS, SERVER_ERRORS, documented
from app.api.responses import accepted, no_content, user_response
from app.errors import (
    EmailTaken,
    Forbidden,
    InvalidLink,
    InvalidToken,
    RateLimited,
    WrongPassword,
)
from app.schemas import (
    COMPANY_PATCH_SCHEMA,
    DELETE_ACCOUNT_SCHEMA,
    EMAIL_CHANGE_SCHEMA,
    LINK_TOKEN_SCHEMA,
    PROFILE_PATCH_SCHEMA,
    AcceptedEnvelopeSchema,
    CompanyPatchSchema,
    DeleteAccountRequestSchema,
    EmailChangeRequestSchema,
    LinkTokenRequestSchema,
    ProfilePatchSchema,
    UserEnvelopeSchema,
)
from app.tokens import require_access_token

bp = Blueprint("profile", __name__, url_prefix="/api/v1/auth")


@bp.patch("/me")
@documented(
    summary="Change the profile",
    description="One or more fields; every broken rule is reported at once and nothing "
    "changes unless all are valid. email and password have endpoints of their own; any "
    "other key is refused.",
    tags=["self-service"],
    bearer=True,
    body=ProfilePatchSchema,
    response=(200, UserEnvelopeSchema, "The changed user"),
    errors=[InvalidToken, *BODY_ERRORS, *SERVER_ERRORS],
    no_store=True,
)
@require_access_token
def update_profile() -> Response:
    """Profile fields in, the user out."""
    fields = load_json(PROFILE_PATCH_SCHEMA).fields
    return user_response(accounts.update_profile(g.current_user, fields))


@bp.patch("/company")
@documented(
    summary="Change the company (admins only)",
    description="One or more fields; all or nothing; a customer gets 403 FORBIDDEN.",
    tags=["self-service"],
    bearer=True,
    body=CompanyPatchSchema,
    response=(200, UserEnvelopeSchema, "The user, with the changed company"),
    errors=[InvalidToken, *BODY_ERRORS, Forbidden, *SERVER_ERRORS],
    no_store=True,
)
@require_access_token
def update_company() -> Response:
    """Company fields in, the user out (the body is read before the role is checked)."""
    body = read_json_object()
    accounts.require_company(g.current_user)
    fields = load_fields(COMPANY_PATCH_SCHEMA, body).fields
    return user_response(accounts.update_company(g.current_user, fields))


@bp.post("/email/change")
@documented(
    summary="Ask to change the e-mail address",
    description="A confirm_email_change mail goes to the new address; nothing changes "
    "until it is confirmed. Limited like the verification mail.",
    tags=["self-service"],
    bearer=True,
    body=EmailChangeRequestSchema,
    response=(202, AcceptedEnvelopeSchema, "The confirmation mail will go out"),
    errors=[InvalidToken, *BODY_ERRORS, RateLimited, WrongPassword, EmailTaken, *SERVER_ERRORS],
)
@require_access_token
def request_email_change() -> Response:
    """New address and password in; a confirmation mail out."""
    fields = load_json(EMAIL_CHANGE_SCHEMA).fields
    accounts.request_email_change(g.current_user, fields["new_email"], fields["password"])
    return accepted()


@bp.post("/email/change/confirm")
@documented(
    summary="Confirm the new e-mail address with the link's token",
    description="Good once, for EMAIL_CHANGE_TTL_SECONDS, while the account's address is "
    "the one it was asked from; an email_changed mail goes to the old address.",
    tags=["self-service"],
    body=LinkTokenRequestSchema,
    response=(200, UserEnvelopeSchema, "The new address, verified"),
    errors=[*BODY_ERRORS, InvalidLink, EmailTaken, *SERVER_ERRORS],
    no_store=True,
)
def confirm_email_change() -> Response:
    """The link's token in, the changed account out."""
    fields = load_json(LINK_TOKEN_SCHEMA).fields
    return user_response(accounts.confirm_email_change(fields["token"]))


@bp.post("/me/delete")
@documented(
    summary="Delete the account",
    description="Proved by the password. The user, its credentials (every token), its "
    "idempotency keys, its unsent mails and its company (with its last member) are gone "
    "at once; the address may sign up again. Limited like log-in.",
    tags=["self-service"],
    bearer=True,
    body=DeleteAccountRequestSchema,
    response=(204, None, "Deleted"),
    errors=[InvalidToken, *BODY_ERRORS, RateLimited, WrongPassword, *SERVER_ERRORS],
)
@require_access_token
def delete_account() -> Response:
    """The password in; nothing out."""
    fields = load_json(DELETE_ACCOUNT_SCHEMA).fields
    ratelimit.limit_password_proof(g.current_user.id)
    accounts.delete_account(g.current_user, fields["password"])
    return no_content()
