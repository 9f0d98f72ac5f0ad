"""The profile blueprint: self-service changes of the profile, the company and the
address, and deleting the account (the contract's "Changing the profile, the company
and the e-mail" and "Deleting the account")."""

from flask import Blueprint, Response, g

from app import accounts, ratelimit, teams
from app.api.body import LoadedBody, body
from app.api.docs import SERVER_ERRORS, documented
from app.api.responses import accepted, no_content, user_response
from app.errors import (
    EmailTaken,
    Forbidden,
    InvalidLink,
    LastAdmin,
    RateLimited,
    WrongPassword,
)
from app.schemas import (
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
    response=(200, UserEnvelopeSchema, "The changed user"),
    errors=[*SERVER_ERRORS],
    no_store=True,
)
@require_access_token
@body(ProfilePatchSchema)
def update_profile(loaded: LoadedBody) -> Response:
    """Profile fields in, the user out."""
    return user_response(accounts.update_profile(g.current_user, loaded.fields))


@bp.patch("/company")
@documented(
    summary="Change the company",
    description="Members whose role holds platform.admins.all. One or more fields; all or "
    "nothing; a customer or another member gets 403 FORBIDDEN.",
    tags=["self-service"],
    response=(200, UserEnvelopeSchema, "The user, with the changed company"),
    errors=[Forbidden, *SERVER_ERRORS],
    no_store=True,
)
@require_access_token
@body(CompanyPatchSchema, before_rules=lambda _: teams.require_company_admin(g.current_user))
def update_company(loaded: LoadedBody) -> Response:
    """Company fields in, the user out (the body is read before the permission is checked)."""
    return user_response(teams.update_company(g.current_user, loaded.fields))


@bp.post("/email/change")
@documented(
    summary="Ask to change the e-mail address",
    description="A confirm_email_change mail goes to the new address; nothing changes "
    "until it is confirmed. Limited like the verification mail.",
    tags=["self-service"],
    response=(202, AcceptedEnvelopeSchema, "The confirmation mail will go out"),
    errors=[RateLimited, WrongPassword, EmailTaken, *SERVER_ERRORS],
)
@require_access_token
@body(EmailChangeRequestSchema)
def request_email_change(loaded: LoadedBody) -> Response:
    """New address and password in; a confirmation mail out."""
    fields = loaded.fields
    accounts.request_email_change(g.current_user, fields["new_email"], fields["password"])
    return accepted()


@bp.post("/email/change/confirm")
@documented(
    summary="Confirm the new e-mail address with the link's token",
    description="Good once, for EMAIL_CHANGE_TTL_SECONDS, while the account's address is "
    "the one it was asked from; an email_changed mail goes to the old address.",
    tags=["self-service"],
    response=(200, UserEnvelopeSchema, "The new address, verified"),
    errors=[InvalidLink, EmailTaken, *SERVER_ERRORS],
    no_store=True,
)
@body(LinkTokenRequestSchema)
def confirm_email_change(loaded: LoadedBody) -> Response:
    """The link's token in, the changed account out."""
    return user_response(accounts.confirm_email_change(loaded.fields["token"]))


@bp.post("/me/delete")
@documented(
    summary="Delete the account",
    description="Proved by the password. The user, its credentials (every token), its "
    "idempotency keys, its unsent mails and its company (with its last member) are gone "
    "at once; the address may sign up again. The last Admin of a company with other "
    "members: 409 LAST_ADMIN. Limited like log-in.",
    tags=["self-service"],
    response=(204, None, "Deleted"),
    errors=[RateLimited, WrongPassword, LastAdmin, *SERVER_ERRORS],
)
@require_access_token
@body(DeleteAccountRequestSchema)
def delete_account(loaded: LoadedBody) -> Response:
    """The password in; nothing out."""
    ratelimit.limit_password_proof(g.current_user.id)
    accounts.delete_account(g.current_user, loaded.fields["password"])
    return no_content()
