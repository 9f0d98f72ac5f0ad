"""The teams blueprint: a company's members, invitations and custom roles, and accepting
an invitation (the contract's "Companies and teams").

Each view checks, in the contract's order: the bearer token, the body's JSON, the
permission its endpoint needs (403), what the path names (404), the body's rules (400),
then hands over to the use cases (app.teams, app.invitations, app.roles), which check
the rest under the company's lock.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request

from app import idempotency, invitations, permissions, roles, teams
from app.api.body import LoadedBody, body, load_fields, load_query, read_json_object
from app.api.docs import BODY_ERRORS, SERVER_ERRORS, documented
from app.api.responses import auth_response, no_content, not_cached, success
from app.errors import (
    AlreadyInCompany,
    AlreadyMember,
    EmailTaken,
    Forbidden,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    InvalidLink,
    InvalidToken,
    InvitationClosed,
    InvitationEmailMismatch,
    InvitationPending,
    LastAdmin,
    NotFound,
    PermissionNotHeld,
    RateLimited,
    RoleInUse,
    RoleNameTaken,
    ValidationFailed,
)
from app.schemas import AuthEnvelopeSchema, LinkTokenRequestSchema
from app.schemas.teams import (
    InvitationEnvelopeSchema,
    InvitationListQuerySchema,
    InvitationLookupEnvelopeSchema,
    InvitationPageEnvelopeSchema,
    InvitationRequestSchema,
    InvitationSignupSchema,
    MemberEnvelopeSchema,
    MemberListQuerySchema,
    MemberPageEnvelopeSchema,
    MemberPatchSchema,
    RoleEnvelopeSchema,
    RoleListEnvelopeSchema,
    RolePatchSchema,
    RoleRequestSchema,
)
from app.tokens import bearer_token, issue_access_token, require_access_token, verify_access_token

bp = Blueprint("teams", __name__, url_prefix="/api/v1/auth")

MEMBER_QUERY = MemberListQuerySchema()
INVITATION_QUERY = InvitationListQuerySchema()
TOKEN_BODY = LinkTokenRequestSchema()
NEW_ACCOUNT_BODY = InvitationSignupSchema()
TEAM_ERRORS = (Forbidden, *SERVER_ERRORS)


def _query_parameters(schema: type[Any]) -> list[dict[str, Any]]:
    """The OpenAPI query parameters of a list's query schema."""
    return [{"in": "query", "schema": schema}]


def _path_id(name: str) -> str:
    """The id a path names (the route matched, so it is there)."""
    return str((request.view_args or {})[name])


# --- members ----------------------------------------------------------------------------


@bp.get("/company/members")
@documented(
    summary="List the company's members",
    description="Oldest member first, a page at a time (limit, cursor); q searches first "
    "name, last name and address (case-insensitive). Needs platform.admins.view.",
    tags=["teams"],
    parameters=_query_parameters(MemberListQuerySchema),
    response=(200, MemberPageEnvelopeSchema, "A page of members"),
    errors=[ValidationFailed, *TEAM_ERRORS],
    no_store=True,
)
@require_access_token
def list_members() -> Response:
    """A page of members."""
    teams.require(g.current_user, permissions.ADMINS_VIEW)
    query = load_query(MEMBER_QUERY)
    members, next_cursor = teams.list_members(
        g.current_user, query=query["q"], cursor=query.get("cursor"), limit=query["limit"]
    )
    return not_cached(success({"members": members, "next_cursor": next_cursor}))


def _before_member_change(raw: dict[str, Any]) -> dict[str, list[str]]:
    """403 without platform.admins.all, 404 for a member of another company, and the
    role id's own rule (reported with the body's)."""
    teams.require(g.current_user, permissions.ADMINS_ALL)
    teams.member_in_path(g.current_user, _path_id("member_id"))
    return teams.role_id_errors(g.current_user, raw)


@bp.patch("/company/members/<member_id>")
@documented(
    summary="Give a member another role",
    description="The Admin role or one of the company's custom roles. Needs "
    "platform.admins.all; not a role, nor a member, holding more than the caller's role; "
    "never the company's last Admin.",
    tags=["teams"],
    response=(200, MemberEnvelopeSchema, "The member, with its new role"),
    errors=[NotFound, PermissionNotHeld, LastAdmin, *TEAM_ERRORS],
    no_store=True,
)
@require_access_token
@body(MemberPatchSchema, before_rules=_before_member_change)
def change_member_role(loaded: LoadedBody, member_id: str) -> Response:
    """The new role id in, the member out."""
    member = teams.change_member_role(g.current_user, member_id, loaded.fields["role_id"])
    return not_cached(success({"member": member}))


@bp.delete("/company/members/<member_id>")
@documented(
    summary="Remove a member, or leave the company",
    description="Removing another member needs platform.admins.all (and a member holding "
    "no more than the caller's role); anyone may leave. The account keeps its sign-in, "
    "without company, with the Customer role; every session of it ends; a member_removed "
    "mail unless it left. Never the company's last Admin.",
    tags=["teams"],
    response=(204, None, "Removed"),
    errors=[NotFound, PermissionNotHeld, LastAdmin, *TEAM_ERRORS],
)
@require_access_token
def remove_member(member_id: str) -> Response:
    """Nothing in, nothing out."""
    user = g.current_user
    teams.company_of(user)
    if member_id.lower() != user.id:
        teams.require(user, permissions.ADMINS_ALL)
        teams.member_in_path(user, member_id)
    teams.remove_member(user, member_id)
    return no_content()


# --- invitations ------------------------------------------------------------------------


def _before_invitation(raw: dict[str, Any]) -> dict[str, list[str]]:
    """403 without platform.admins.all; the Idempotency-Key header's and the role id's
    errors (reported with the body's)."""
    teams.require(g.current_user, permissions.ADMINS_ALL)
    return {
        **idempotency.read_key_header().errors,
        **teams.role_id_errors(g.current_user, raw),
    }


@bp.post("/company/invitations")
@documented(
    summary="Invite an address into the company",
    description="With the Admin role or a custom role; an invitation mail goes to the "
    "address (the same answer whether or not it has an account). Needs "
    "platform.admins.all; RATELIMIT_INVITATIONS per company; an optional Idempotency-Key "
    "(per caller).",
    tags=["teams"],
    parameters=[
        {
            "in": "header",
            "name": "Idempotency-Key",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ],
    response=(201, InvitationEnvelopeSchema, "The invitation"),
    errors=[
        RateLimited,
        PermissionNotHeld,
        AlreadyMember,
        InvitationPending,
        IdempotencyKeyInProgress,
        IdempotencyKeyReused,
        *TEAM_ERRORS,
    ],
    no_store=True,
)
@require_access_token
@body(InvitationRequestSchema, before_rules=_before_invitation)
def invite(loaded: LoadedBody) -> Response:
    """Address and role in, the invitation out."""
    invitation = invitations.invite(
        g.current_user,
        email=loaded.fields["email"],
        role_id=loaded.fields["role_id"],
        key=idempotency.read_key_header().key,
        body=loaded.body,
    )
    return not_cached(success({"invitation": invitation}, status=201))


@bp.get("/company/invitations")
@documented(
    summary="List the company's invitations",
    description="Newest first, a page at a time (limit, cursor), optionally of one status "
    "(pending, accepted, revoked, expired). Needs platform.admins.view.",
    tags=["teams"],
    parameters=_query_parameters(InvitationListQuerySchema),
    response=(200, InvitationPageEnvelopeSchema, "A page of invitations"),
    errors=[ValidationFailed, *TEAM_ERRORS],
    no_store=True,
)
@require_access_token
def list_invitations() -> Response:
    """A page of invitations."""
    teams.require(g.current_user, permissions.ADMINS_VIEW)
    query = load_query(INVITATION_QUERY)
    items, next_cursor = invitations.list_invitations(
        g.current_user, status=query.get("status"), cursor=query.get("cursor"), limit=query["limit"]
    )
    return not_cached(success({"invitations": items, "next_cursor": next_cursor}))


@bp.post("/company/invitations/<invitation_id>/resend")
@documented(
    summary="Resend an invitation",
    description="A pending or expired invitation: a new link (every earlier one dies), a "
    "new expires_at, a new mail. Any body is ignored. Needs platform.admins.all.",
    tags=["teams"],
    response=(200, InvitationEnvelopeSchema, "The invitation"),
    errors=[NotFound, PermissionNotHeld, InvitationClosed, InvitationPending, *TEAM_ERRORS],
    no_store=True,
)
@require_access_token
def resend_invitation(invitation_id: str) -> Response:
    """Nothing in, the invitation out."""
    teams.require(g.current_user, permissions.ADMINS_ALL)
    invitations.invitation_in_path(g.current_user, invitation_id)
    return not_cached(success({"invitation": invitations.resend(g.current_user, invitation_id)}))


@bp.delete("/company/invitations/<invitation_id>")
@documented(
    summary="Revoke an invitation",
    description="Its status becomes revoked and its link dies. Needs platform.admins.all.",
    tags=["teams"],
    response=(204, None, "Revoked"),
    errors=[NotFound, InvitationClosed, *TEAM_ERRORS],
)
@require_access_token
def revoke_invitation(invitation_id: str) -> Response:
    """Nothing in, nothing out."""
    teams.require(g.current_user, permissions.ADMINS_ALL)
    invitations.invitation_in_path(g.current_user, invitation_id)
    invitations.revoke(g.current_user, invitation_id)
    return no_content()


@bp.post("/invitations/lookup")
@documented(
    summary="What an invitation's link invites to",
    description="For the page behind the link: the address, the company, the role, who "
    "invited, until when, and whether the address has an account (log in or sign up).",
    tags=["teams"],
    response=(200, InvitationLookupEnvelopeSchema, "The invitation"),
    errors=[InvalidLink, *SERVER_ERRORS],
    no_store=True,
)
@body(LinkTokenRequestSchema)
def lookup_invitation(loaded: LoadedBody) -> Response:
    """The link's token in, what it invites to out."""
    return not_cached(success(invitations.lookup(loaded.fields["token"])))


@bp.post("/invitations/accept")
@documented(
    summary="Accept an invitation",
    description="With the invited account's bearer token: {token} only, 200 and the login "
    "body (every earlier session ends). Without one: {token, first_name, last_name, "
    "password} (the sign-up rules), 201 and the login body of a new, verified account. A "
    "bearer token that is sent must be good.",
    tags=["teams"],
    body=InvitationSignupSchema,
    response=(200, AuthEnvelopeSchema, "Joined (201: a new account joined)"),
    errors=[
        *BODY_ERRORS,
        InvalidToken,
        InvalidLink,
        InvitationEmailMismatch,
        AlreadyInCompany,
        EmailTaken,
        *SERVER_ERRORS,
    ],
    no_store=True,
)
def accept_invitation() -> Response:
    """The link's token (and a new account's fields, without a bearer token) in; the
    login body out."""
    user = verify_access_token(bearer_token()) if "Authorization" in request.headers else None
    raw = read_json_object()
    if user is not None:
        token = load_fields(TOKEN_BODY, raw).fields["token"]
        account = invitations.accept_with_account(token, user)
        status = 200
    else:
        fields = load_fields(NEW_ACCOUNT_BODY, raw).fields
        account = invitations.accept_as_new_account(fields["token"], fields)
        status = 201
    return auth_response(account.user, issue_access_token(account.user, account.credential), status)


# --- roles ------------------------------------------------------------------------------


@bp.get("/company/roles")
@documented(
    summary="List the company's roles",
    description="The Admin system role first, then the company's custom roles by name, "
    "each with how many members have it. Needs platform.roles.view.",
    tags=["teams"],
    response=(200, RoleListEnvelopeSchema, "The roles"),
    errors=[*TEAM_ERRORS],
)
@require_access_token
def list_roles() -> Response:
    """The roles."""
    teams.require(g.current_user, permissions.ROLES_VIEW)
    return success({"roles": roles.list_roles(g.current_user)})


def _before_role_create(_raw: dict[str, Any]) -> None:
    """403 without platform.roles.all."""
    teams.require(g.current_user, permissions.ROLES_ALL)


@bp.post("/company/roles")
@documented(
    summary="Create a custom role",
    description="A name unique in the company (by case folding; not Admin or Customer) and "
    "a whole permission tree, granting nothing the caller's role does not hold. Needs "
    "platform.roles.all.",
    tags=["teams"],
    response=(201, RoleEnvelopeSchema, "The role"),
    errors=[PermissionNotHeld, RoleNameTaken, *TEAM_ERRORS],
)
@require_access_token
@body(RoleRequestSchema, before_rules=_before_role_create)
def create_role(loaded: LoadedBody) -> Response:
    """The role's fields in, the role out."""
    return success({"role": roles.create_role(g.current_user, loaded.fields)}, status=201)


def _before_role_change(_raw: dict[str, Any]) -> None:
    """403 without platform.roles.all or for a system role, 404 for another company's."""
    teams.require(g.current_user, permissions.ROLES_ALL)
    roles.role_in_path(g.current_user, _path_id("role_id"))


@bp.patch("/company/roles/<role_id>")
@documented(
    summary="Change a custom role",
    description="One or more of name, description, permission; not a role holding more "
    "than the caller's, nor to a tree that does. A system role: 403. Needs "
    "platform.roles.all.",
    tags=["teams"],
    response=(200, RoleEnvelopeSchema, "The role"),
    errors=[NotFound, PermissionNotHeld, RoleNameTaken, *TEAM_ERRORS],
)
@require_access_token
@body(RolePatchSchema, before_rules=_before_role_change)
def update_role(loaded: LoadedBody, role_id: str) -> Response:
    """The changed fields in, the role out."""
    return success({"role": roles.update_role(g.current_user, role_id, loaded.fields)})


@bp.delete("/company/roles/<role_id>")
@documented(
    summary="Delete a custom role",
    description="Not while a member or a pending (or expired) invitation has it; closed "
    "invitations keep naming it. A system role: 403. Needs platform.roles.all.",
    tags=["teams"],
    response=(204, None, "Deleted"),
    errors=[NotFound, PermissionNotHeld, RoleInUse, *TEAM_ERRORS],
)
@require_access_token
def delete_role(role_id: str) -> Response:
    """Nothing in, nothing out."""
    teams.require(g.current_user, permissions.ROLES_ALL)
    roles.role_in_path(g.current_user, role_id)
    roles.delete_role(g.current_user, role_id)
    return no_content()
