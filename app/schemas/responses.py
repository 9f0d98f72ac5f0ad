"""The answers: the user object exactly as the contract shows it, the envelopes, and what
/verify and introspection report."""

from typing import Any, TypeVar

from marshmallow import Schema, fields

AnyField = TypeVar("AnyField", bound=fields.Field[Any])


def response_field(field_class: type[AnyField], **kwargs: Any) -> AnyField:
    """A response field: always present in the output, so listed as required in OpenAPI."""
    return field_class(required=True, **kwargs)


class CompanySchema(Schema):
    """The company object; a customer gets the same keys, all empty."""

    id = response_field(fields.String)
    name = response_field(fields.String)
    phone = response_field(fields.String)
    address = response_field(fields.String)
    describe = response_field(fields.String)
    email = response_field(fields.String)


EMPTY_COMPANY = {key: "" for key in CompanySchema().fields}


class CompanyOrEmpty(fields.Nested):
    """An admin's company, or, for a customer (no company), the same keys all empty."""

    # marshmallow's Nested names the first parameter `nested_obj`, its base Field `value`
    # (it is passed by position): no name satisfies both.
    def _serialize(  # type: ignore[override]
        self, value: Any, attr: str | None, obj: Any, **kwargs: Any
    ) -> Any:
        if value is None:
            return dict(EMPTY_COMPANY)
        return super()._serialize(value, attr, obj, **kwargs)  # type: ignore[no-untyped-call]


class GrantSchema(Schema):
    """One permission: may the role do everything, may it view."""

    all = response_field(fields.Boolean)
    view = response_field(fields.Boolean)


class PlatformPermissionSchema(Schema):
    """Permissions on the platform."""

    applications = response_field(fields.Nested, nested=GrantSchema)
    admins = response_field(fields.Nested, nested=GrantSchema)
    roles = response_field(fields.Nested, nested=GrantSchema)
    billing = response_field(fields.Nested, nested=GrantSchema)


class ApplicationPermissionSchema(Schema):
    """Permissions inside an application (`applications` is always null)."""

    applications = response_field(fields.Raw, allow_none=True, metadata={"type": "object"})
    tickets = response_field(fields.Nested, nested=GrantSchema)
    agents = response_field(fields.Nested, nested=GrantSchema)
    customers = response_field(fields.Nested, nested=GrantSchema)
    live_map = response_field(fields.Nested, nested=GrantSchema)
    labels = response_field(fields.Nested, nested=GrantSchema)
    settings = response_field(fields.Nested, nested=GrantSchema)


class PermissionSchema(Schema):
    """A role's permission tree."""

    platform = response_field(fields.Nested, nested=PlatformPermissionSchema)
    application = response_field(fields.Nested, nested=ApplicationPermissionSchema)


class RoleSchema(Schema):
    """A role with its permission tree, as stored."""

    name = response_field(fields.String)
    description = response_field(fields.String)
    category = response_field(fields.String)
    permission = response_field(fields.Nested, nested=PermissionSchema)


class SystemRole(fields.Nested):
    """A system role: its dump (a permission tree of some twenty nested objects) is made
    once per role and process and reused while the role is unchanged; every sign-up and
    log-in answers with it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(RoleSchema, **kwargs)
        self._dumps: dict[str, tuple[tuple[Any, ...], Any]] = {}

    def _serialize(  # type: ignore[override]  # see CompanyOrEmpty
        self, value: Any, attr: str | None, obj: Any, **kwargs: Any
    ) -> Any:
        if value is None:
            return None
        source = (value.name, value.description, value.category, value.permission)
        cached = self._dumps.get(value.id)
        if cached is None or cached[0] != source:
            dumped = super()._serialize(value, attr, obj)  # type: ignore[no-untyped-call]
            cached = self._dumps[value.id] = (source, dumped)
        return cached[1]


class UserSchema(Schema):
    """The full user object of the contract: exactly these keys, never a password or hash."""

    id = response_field(fields.String, metadata={"format": "uuid"})
    first_name = response_field(fields.String)
    last_name = response_field(fields.String)
    phone = response_field(fields.String)
    email = response_field(fields.String)
    country = response_field(fields.String)
    city = response_field(fields.String)
    avatar = response_field(fields.String)
    company = response_field(CompanyOrEmpty, nested=CompanySchema)
    role = response_field(SystemRole)
    address = response_field(fields.String, allow_none=True)
    state = response_field(fields.String, metadata={"enum": ["CARD_NOT_FOUND", "ACTIVED"]})
    language = response_field(fields.String)
    timezone = response_field(fields.String)
    default_app = response_field(fields.String)


class AuthResultSchema(Schema):
    """The `data` of a sign-up or log-in response."""

    access_token = response_field(fields.String, metadata={"description": "HS256 JWT"})
    user = response_field(fields.Nested, nested=UserSchema)


class UserResultSchema(Schema):
    """The `data` of a /me response: the user and whether its address is verified."""

    user = response_field(fields.Nested, nested=UserSchema)
    email_verified = response_field(fields.Boolean)


class StatusSchema(Schema):
    """The `data` of /healthz and /readyz."""

    status = response_field(fields.String, metadata={"enum": ["ok", "ready"]})


class IdentitySchema(Schema):
    """The `data` of /verify: who the token stands for (also sent as X-* headers)."""

    user_id = response_field(fields.String, metadata={"format": "uuid"})
    company_id = response_field(
        fields.String, metadata={"description": 'The company\'s id; "" for a customer'}
    )
    role = response_field(
        fields.String,
        metadata={"description": "The role's name: Admin, Customer or a custom role's"},
    )
    role_id = response_field(fields.String, metadata={"format": "uuid"})
    permissions = response_field(
        fields.List,
        cls_or_instance=fields.String(),
        metadata={
            "description": "The role's `true` permission leaves as section.resource.level "
            "(e.g. platform.admins.view), sorted; empty for none"
        },
    )
    session_id = response_field(
        fields.String, metadata={"description": "The session's (signing credential's) id"}
    )
    email_verified = response_field(fields.Boolean)


class IntrospectionSchema(Schema):
    """RFC 7662's answer, bare (no envelope): `{"active": false}` alone for any token
    that is not valid now; every other key only for an active one."""

    active = response_field(fields.Boolean)
    token_type = fields.String(metadata={"enum": ["access_token"]})
    sub = fields.String(metadata={"description": "the user's id"})
    user_id = fields.String()
    company_id = fields.String()
    role = fields.String(metadata={"description": "The role's name"})
    role_id = fields.String()
    permissions = fields.List(
        fields.String(), metadata={"description": "As /verify's: the role's leaves, sorted"}
    )
    session_id = fields.String(metadata={"description": "The session's (signing credential's) id"})
    email_verified = fields.Boolean()
    iss = fields.String(metadata={"description": "the signing credential's key"})
    iat = fields.Integer()
    exp = fields.Integer()


def null_field() -> fields.Raw:
    """A key that is present and always null."""
    return response_field(fields.Raw, allow_none=True, metadata={"type": "object", "enum": [None]})


def envelope(data_schema: type[Schema], name: str) -> type[Schema]:
    """`{"error": null, "data": <data_schema>}`, as every success answers."""
    return Schema.from_dict(
        {"error": null_field(), "data": response_field(fields.Nested, nested=data_schema)},
        name=name,
    )


class ErrorSchema(Schema):
    """The `error` object of the envelope."""

    code = response_field(fields.String)
    message = response_field(fields.String)
    fields_ = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        data_key="fields",
        metadata={"description": "VALIDATION_ERROR only: every broken rule of every field"},
    )
    mfa_token = fields.String(
        metadata={"description": "MFA_REQUIRED only: continues the log-in at /login/mfa"}
    )


class ErrorEnvelopeSchema(Schema):
    """`{"error": {...}, "data": null}`, as every error answers."""

    error = response_field(fields.Nested, nested=ErrorSchema)
    data = null_field()


class AcceptedEnvelopeSchema(Schema):
    """`{"error": null, "data": null}`: a 202, the mail will go out."""

    error = null_field()
    data = null_field()


AuthEnvelopeSchema = envelope(AuthResultSchema, "AuthEnvelope")
UserEnvelopeSchema = envelope(UserResultSchema, "UserEnvelope")
StatusEnvelopeSchema = envelope(StatusSchema, "StatusEnvelope")
IdentityEnvelopeSchema = envelope(IdentitySchema, "IdentityEnvelope")

USER_SCHEMA = UserSchema()
AUTH_RESULT_SCHEMA = AuthResultSchema()
