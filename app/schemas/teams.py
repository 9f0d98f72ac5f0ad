"""Companies and teams: the request bodies, the query strings of the paged lists, and the
answers (a member, an invitation, a role, an invitation as its link shows it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from app import cursors, permissions
from app.schemas.requests import PatchSchema
from app.schemas.responses import PermissionSchema, envelope, response_field
from app.schemas.rules import (
    NOT_EMPTY,
    RequestSchema,
    Rules,
    TrimmedString,
    control_characters,
    email_field,
    link_token_field,
    lone_surrogates,
    name_field,
    new_password_field,
    optional_text,
)

ROLE_NAME_MAX = 64
ROLE_DESCRIPTION_MAX = 255
PAGE_DEFAULT, PAGE_MAX = 50, 100
INVITATION_STATUSES = ("pending", "accepted", "revoked", "expired")
ROLE_ID_DESCRIPTION = "the Admin role's id or one of this company's custom roles' ids"


# --- fields -----------------------------------------------------------------------------


class PermissionTree(fields.Field[dict[str, Any]]):
    """A permission tree sent in a request: exactly the system roles' shape (every
    section and resource, no other key), `application.applications` null, every other
    leaf `{"all": bool, "view": bool}` with `all` only where `view` (app.permissions)."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> dict[str, Any]:
        errors = permissions.tree_errors(value)
        if errors:
            raise ValidationError(errors)
        return permissions.tree_of(permissions.leaves(value))


class Cursor(fields.String):
    """A list's `cursor`: the `next_cursor` of its page before, of this list only."""

    def __init__(self, list_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.list_name = list_name

    def _deserialize(  # type: ignore[override]
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> cursors.Position:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return cursors.decode(self.list_name, text)
        except ValueError:
            raise ValidationError(
                "Not a cursor of this list: send the next_cursor of a page before."
            ) from None


def role_name_field(*, required: bool) -> TrimmedString:
    """A custom role's name: trimmed, 1-64 characters, no control characters."""
    return TrimmedString(
        required=required,
        validate=Rules(
            control_characters, lone_surrogates, min=1, max=ROLE_NAME_MAX, too_short=NOT_EMPTY
        ),
    )


def role_id_field() -> fields.String:
    """A role id in a body: a string; whether it is one of the company's roles is the
    view's check (reported with these rules: app.api.teams)."""
    return fields.String(required=True, metadata={"description": ROLE_ID_DESCRIPTION})


def limit_field() -> fields.Integer:
    return fields.Integer(
        load_default=PAGE_DEFAULT,
        validate=validate.Range(min=1, max=PAGE_MAX),
        metadata={"description": f"items per page, 1-{PAGE_MAX} ({PAGE_DEFAULT} by default)"},
    )


# --- query strings ----------------------------------------------------------------------


class QuerySchema(Schema):
    """A query string: other parameters are ignored."""

    class Meta:
        unknown = "exclude"


class MemberListQuerySchema(QuerySchema):
    """GET /company/members: a page, and an optional search."""

    limit = limit_field()
    cursor = Cursor("members", metadata={"description": "the next_cursor of the page before"})
    q = TrimmedString(
        load_default="",
        validate=Rules(control_characters, lone_surrogates, max=254),
        metadata={"description": "a case-insensitive substring of a name or the address"},
    )


class InvitationListQuerySchema(QuerySchema):
    """GET /company/invitations: a page, and an optional status."""

    limit = limit_field()
    cursor = Cursor("invitations", metadata={"description": "the next_cursor of the page before"})
    status = fields.String(validate=validate.OneOf(INVITATION_STATUSES))


# --- bodies -----------------------------------------------------------------------------


class MemberPatchSchema(PatchSchema):
    """PATCH /company/members/{user_id}: the member's new role."""

    role_id = role_id_field()


class InvitationRequestSchema(RequestSchema):
    """POST /company/invitations: the address and the role it will have."""

    email = email_field()
    role_id = role_id_field()


class RoleRequestSchema(RequestSchema):
    """POST /company/roles: a custom role."""

    name = role_name_field(required=True)
    description = optional_text(ROLE_DESCRIPTION_MAX)
    permission = PermissionTree(required=True, metadata={"type": "object"})


class RolePatchSchema(PatchSchema):
    """PATCH /company/roles/{id}: one or more of the role's fields."""

    name = role_name_field(required=False)
    description = optional_text(ROLE_DESCRIPTION_MAX)
    permission = PermissionTree(metadata={"type": "object"})


class InvitationSignupSchema(RequestSchema):
    """POST /invitations/accept without a bearer token: the link's token and a new
    account's fields (the sign-up rules; the address is the invitation's)."""

    token = link_token_field()
    first_name = name_field()
    last_name = name_field()
    password = new_password_field()


# --- answers ----------------------------------------------------------------------------


class RoleRefSchema(Schema):
    """A role as a member or an invitation names it."""

    id = response_field(fields.String, metadata={"format": "uuid"})
    name = response_field(fields.String)
    category = response_field(fields.String, metadata={"enum": ["SYSTEM ROLE", "CUSTOM ROLE"]})


class MemberSchema(Schema):
    """A member of the company."""

    id = response_field(fields.String, metadata={"format": "uuid"})
    first_name = response_field(fields.String)
    last_name = response_field(fields.String)
    email = response_field(fields.String)
    avatar = response_field(fields.String)
    email_verified = response_field(fields.Boolean)
    role = response_field(fields.Nested, nested=RoleRefSchema)
    joined_at = response_field(fields.String, metadata={"format": "date-time"})


class InviterSchema(Schema):
    """Who sent an invitation (null once that account is gone)."""

    id = response_field(fields.String, metadata={"format": "uuid"})
    first_name = response_field(fields.String)
    last_name = response_field(fields.String)


class InvitationSchema(Schema):
    """An invitation of the company."""

    id = response_field(fields.String, metadata={"format": "uuid"})
    email = response_field(fields.String)
    role = response_field(fields.Nested, nested=RoleRefSchema)
    status = response_field(fields.String, metadata={"enum": list(INVITATION_STATUSES)})
    invited_by = response_field(fields.Nested, nested=InviterSchema, allow_none=True)
    created_at = response_field(fields.String, metadata={"format": "date-time"})
    expires_at = response_field(fields.String, metadata={"format": "date-time"})


class TeamRoleSchema(Schema):
    """A role of the company, with how many members have it."""

    id = response_field(fields.String, metadata={"format": "uuid"})
    name = response_field(fields.String)
    description = response_field(fields.String)
    category = response_field(fields.String, metadata={"enum": ["SYSTEM ROLE", "CUSTOM ROLE"]})
    permission = response_field(fields.Nested, nested=PermissionSchema)
    members = response_field(fields.Integer)


class CompanyRefSchema(Schema):
    id = response_field(fields.String, metadata={"format": "uuid"})
    name = response_field(fields.String)


class InviterNameSchema(Schema):
    first_name = response_field(fields.String)
    last_name = response_field(fields.String)


class InvitationLookupSchema(Schema):
    """What an invitation's link invites to, for the page behind it."""

    email = response_field(fields.String)
    company = response_field(fields.Nested, nested=CompanyRefSchema)
    role = response_field(fields.Nested, nested=RoleRefSchema)
    invited_by = response_field(fields.Nested, nested=InviterNameSchema, allow_none=True)
    expires_at = response_field(fields.String, metadata={"format": "date-time"})
    account_exists = response_field(fields.Boolean)


def _page(name: str, item: type[Schema]) -> type[Schema]:
    return Schema.from_dict(
        {
            name: response_field(fields.List, cls_or_instance=fields.Nested(item)),
            "next_cursor": response_field(fields.String, allow_none=True),
        },
        name=f"{name.title()}Page",
    )


def _one(name: str, item: type[Schema]) -> type[Schema]:
    return Schema.from_dict(
        {name: response_field(fields.Nested, nested=item)}, name=f"{name.title()}Result"
    )


MemberPageEnvelopeSchema = envelope(_page("members", MemberSchema), "MemberPageEnvelope")
MemberEnvelopeSchema = envelope(_one("member", MemberSchema), "MemberEnvelope")
InvitationPageEnvelopeSchema = envelope(
    _page("invitations", InvitationSchema), "InvitationPageEnvelope"
)
InvitationEnvelopeSchema = envelope(_one("invitation", InvitationSchema), "InvitationEnvelope")
RoleListEnvelopeSchema = envelope(
    Schema.from_dict(
        {"roles": response_field(fields.List, cls_or_instance=fields.Nested(TeamRoleSchema))},
        name="RoleList",
    ),
    "RoleListEnvelope",
)
RoleEnvelopeSchema = envelope(_one("role", TeamRoleSchema), "RoleEnvelope")
InvitationLookupEnvelopeSchema = envelope(InvitationLookupSchema, "InvitationLookupEnvelope")
