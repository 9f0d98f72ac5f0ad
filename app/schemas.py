"""Marshmallow schemas: the field rules of sign-up and the shape of the user object."""

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from app import profile_rules
from app.emails import EMAIL_MAX, LONE_SURROGATE, TRIM_CHARACTERS, canonical_email, checked

NAME_MAX = 100
PASSWORD_MIN = 9  # "more than 8 characters"
PASSWORD_MAX = 128

# A text rule's check: None when the value passes, else its message (or a list of them).
Check = Callable[[str], str | list[str] | None]
AnyField = TypeVar("AnyField", bound=fields.Field)


class TrimmedString(fields.String):
    """A string with surrounding white space removed before any rule runs."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip(TRIM_CHARACTERS)


class EmailAddress(fields.String):
    """An e-mail address in its canonical form (app.emails) before any rule runs."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        return canonical_email(super()._deserialize(value, attr, data, **kwargs))


# Unicode's control characters (category Cc): C0 including NUL, DEL and C1.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class Rules(validate.Validator):
    """A text field's rules, checked in one pass: its length bounds, then each check; the
    message of every broken rule, in that order, in one ValidationError.

    A list of marshmallow validators does the same, but raises and catches an exception
    for each broken rule, which was measurably slower on the rejection path
    (bench/README.md, "Figures behind the code's choices"). `min` and `max` are read by
    apispec as minLength and maxLength, as it reads them from validate.Length. A check
    returns None when the value passes, else its message (or a list of them).
    """

    equal = None  # no exact length (apispec asks)

    def __init__(
        self,
        *checks: Check,
        min: int | None = None,
        max: int | None = None,
        too_short: str | None = None,
        too_long: str | None = None,
    ) -> None:
        self.checks = checks
        self.min, self.max = min, max
        self.too_short = too_short or f"Must be at least {min} characters."
        self.too_long = too_long or f"Must be at most {max} characters."

    def __call__(self, value: str) -> str:
        errors: list[str] = []
        if self.min is not None and len(value) < self.min:
            errors.append(self.too_short)
        if self.max is not None and len(value) > self.max:
            errors.append(self.too_long)
        for check in self.checks:
            message = check(value)
            if message:
                errors.extend([message] if isinstance(message, str) else message)
        if errors:
            raise ValidationError(errors)
        return value


def _has_lone_surrogate(value: str) -> bool:
    """True when the text holds a UTF-16 surrogate that is not part of a character."""
    return LONE_SURROGATE.search(value) is not None


def lone_surrogates(value: str) -> str | None:
    """Lone surrogates cannot be stored or hashed as text."""
    if _has_lone_surrogate(value):
        return "Must be valid Unicode text (no lone surrogates)."
    return None


def control_characters(value: str) -> str | None:
    """NUL and the other C0/C1 control characters are refused."""
    if CONTROL_CHARACTER.search(value):
        return "Must not contain control characters."
    return None


def optional_email_syntax(value: str) -> str | None:
    """ "" or a valid address."""
    return None if value == "" else email_syntax(value)


def email_syntax(value: str) -> str | None:
    """The address as email-validator checks it, without DNS look-ups."""
    if _has_lone_surrogate(value):
        return None  # reported by its own rule
    normalised, error = checked(value)
    if normalised is not None:
        return None
    assert error is not None  # checked() gives a reason whenever it gives no address
    if len(value) > EMAIL_MAX and "too long" in error:
        return None  # the length rule says so already
    return f"Not a valid e-mail address: {error}"


def _is_special(char: str) -> bool:
    """Anything that is not a letter, a digit or white space."""
    return not (char.isalnum() or char.isspace())


# The kinds of character a password must contain, each with its message.
PASSWORD_CHARACTER_KINDS = (
    (str.isupper, "Must contain at least one upper-case letter."),
    (str.islower, "Must contain at least one lower-case letter."),
    (str.isdigit, "Must contain at least one digit."),
    (_is_special, "Must contain at least one special character."),
)


def missing_character_kinds(value: str) -> list[str]:
    """One message for each kind of character the password lacks, in the order above."""
    return [message for test, message in PASSWORD_CHARACTER_KINDS if not any(map(test, value))]


NOT_EMPTY = "Must not be empty."


def name_field() -> TrimmedString:
    """first_name / last_name: required, trimmed, 1-100 code points, no control characters."""
    return TrimmedString(
        required=True,
        validate=Rules(
            control_characters, lone_surrogates, min=1, max=NAME_MAX, too_short=NOT_EMPTY
        ),
    )


class RequestSchema(Schema):
    """A request body: keys not in the schema are ignored (nothing a client sends can
    choose a role, a company, a state or an id)."""

    class Meta:
        unknown = EXCLUDE


def email_field() -> EmailAddress:
    """A required, valid address, in its canonical form (sign-up, forgotten password)."""
    return EmailAddress(required=True, validate=Rules(lone_surrogates, email_syntax, max=EMAIL_MAX))


def new_password_field() -> fields.String:
    """A password being set (sign-up, reset, change): the strength rules."""
    return fields.String(
        required=True,
        load_only=True,
        validate=Rules(
            missing_character_kinds,
            lone_surrogates,
            min=PASSWORD_MIN,
            max=PASSWORD_MAX,
            too_short=f"Must be more than {PASSWORD_MIN - 1} characters.",
        ),
    )


PROOF_PASSWORD_MAX = 1024


def proof_password_field() -> fields.String:
    """A password given to prove who one is: only compared, any string up to 1,024."""
    return fields.String(
        required=True, load_only=True, validate=Rules(lone_surrogates, max=PROOF_PASSWORD_MAX)
    )


def link_token_field() -> fields.String:
    """The token of a link from a mail: a non-empty string. Whether it is good now
    (however long, whatever it holds) is the use case's INVALID_LINK."""
    return fields.String(required=True, load_only=True, validate=Rules(min=1, too_short=NOT_EMPTY))


class Normalised(TrimmedString):
    """Trimmed text that a library checks and normalises (app.profile_rules): its
    ValueError becomes the field's message; control characters are refused first."""

    def __init__(self, normalise: Callable[[str], str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.normalise = normalise

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        problem = control_characters(text) or lone_surrogates(text)
        if problem:
            raise ValidationError(problem)
        try:
            return self.normalise(text)
        except ValueError as error:
            raise ValidationError(str(error)) from None


class Refused(fields.Field):
    """A key that may not be sent here: its message says where it belongs."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(load_only=True, metadata={"description": message}, **kwargs)
        self.message = message

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        raise ValidationError(self.message)


def optional_text(maximum: int, description: str = "") -> TrimmedString:
    """Optional trimmed text of 0-`maximum` characters without control characters."""
    return TrimmedString(
        validate=Rules(control_characters, lone_surrogates, max=maximum),
        metadata={"description": description} if description else {},
    )


def optional_name() -> TrimmedString:
    """first_name / last_name when changed: the sign-up rules, not required."""
    return TrimmedString(
        validate=Rules(
            control_characters, lone_surrogates, min=1, max=NAME_MAX, too_short=NOT_EMPTY
        )
    )


PHONE_RULE = (
    '"" or a valid number (one that exists in its country\'s plan) in international '
    "form (+ and the country code); stored in E.164 (+14155550123)"
)
LANGUAGE_MAX = 64


class PatchSchema(Schema):
    """A PATCH body: one or more of the fields, every rule reported at once; any other
    key is refused ("Unknown field."); nothing changes unless all is valid."""

    class Meta:
        unknown = RAISE

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def not_empty(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        """An empty object changes nothing: refused."""
        if not original:
            raise ValidationError("Send at least one field to change.")


class ProfilePatchSchema(PatchSchema):
    """PATCH /me: the profile fields of the user object."""

    first_name = optional_name()
    last_name = optional_name()
    phone = Normalised(profile_rules.phone, metadata={"description": PHONE_RULE})
    country = Normalised(
        profile_rules.country,
        metadata={
            "description": '"" or an officially assigned ISO 3166-1 alpha-2 code; stored upper-case'
        },
    )
    city = optional_text(100)
    avatar = Normalised(
        profile_rules.avatar,
        validate=Rules(max=profile_rules.AVATAR_MAX),
        metadata={"description": '"" or an absolute https:// URL', "format": "uri"},
    )
    language = Normalised(
        profile_rules.language,
        validate=Rules(max=LANGUAGE_MAX),
        metadata={
            "description": '"" or a valid BCP 47 tag (every subtag in the IANA registry), '
            "stored in canonical case (pt-BR)"
        },
    )
    timezone = Normalised(
        profile_rules.timezone, metadata={"description": '"" or an IANA time zone name'}
    )
    default_app = optional_text(100)
    email = Refused("Change the e-mail with POST /api/v1/auth/email/change.")
    password = Refused("Change the password with POST /api/v1/auth/password/change.")


class CompanyPatchSchema(PatchSchema):
    """PATCH /company: the company's fields (admins only)."""

    name = optional_text(200)
    phone = Normalised(profile_rules.phone, metadata={"description": PHONE_RULE})
    address = optional_text(500)
    describe = optional_text(2000)
    email = EmailAddress(
        validate=Rules(lone_surrogates, optional_email_syntax, max=EMAIL_MAX),
        metadata={"description": '"" or a valid address, normalised like a sign-up address'},
    )


class EmailChangeRequestSchema(RequestSchema):
    """The new address, and the current password as proof."""

    new_email = email_field()
    password = proof_password_field()


class DeleteAccountRequestSchema(RequestSchema):
    """The current password, as proof."""

    password = proof_password_field()


class SignupRequestSchema(RequestSchema):
    """The four sign-up fields. Anything else in the body is ignored."""

    first_name = name_field()
    last_name = name_field()
    email = email_field()
    password = new_password_field()


class LinkTokenRequestSchema(RequestSchema):
    """A link's token (verifying the address)."""

    token = link_token_field()


class ForgotPasswordRequestSchema(RequestSchema):
    """The address of the account whose password was forgotten."""

    email = email_field()


class ResetPasswordRequestSchema(RequestSchema):
    """A reset link's token and the new password."""

    token = link_token_field()
    password = new_password_field()


class ChangePasswordRequestSchema(RequestSchema):
    """The current password (proof) and the new one."""

    current_password = proof_password_field()
    new_password = new_password_field()


class LoginRequestSchema(RequestSchema):
    """Log-in fields: no strength rules (the account has them already), only what keeps
    a lookup and a hash safe: strings, bounded, storable text."""

    email = EmailAddress(
        required=True,
        validate=Rules(
            control_characters, lone_surrogates, min=1, max=EMAIL_MAX, too_short=NOT_EMPTY
        ),
    )
    password = fields.String(
        required=True,
        load_only=True,
        validate=Rules(lone_surrogates, min=1, max=PASSWORD_MAX, too_short=NOT_EMPTY),
    )


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
        return super()._serialize(value, attr, obj, **kwargs)


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
            cached = self._dumps[value.id] = (source, super()._serialize(value, attr, obj))
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


ROLE_NAMES = ["Admin", "Customer"]


class IdentitySchema(Schema):
    """The `data` of /verify: who the token stands for (also sent as X-* headers)."""

    user_id = response_field(fields.String, metadata={"format": "uuid"})
    company_id = response_field(
        fields.String, metadata={"description": 'The company\'s id; "" for a customer'}
    )
    role = response_field(fields.String, metadata={"enum": ROLE_NAMES})
    email_verified = response_field(fields.Boolean)


class IntrospectionSchema(Schema):
    """RFC 7662's answer, bare (no envelope): `{"active": false}` alone for any token
    that is not valid now; every other key only for an active one."""

    active = response_field(fields.Boolean)
    token_type = fields.String(metadata={"enum": ["access_token"]})
    sub = fields.String(metadata={"description": "the user's id"})
    user_id = fields.String()
    company_id = fields.String()
    role = fields.String(metadata={"enum": ROLE_NAMES})
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

SIGNUP_SCHEMA = SignupRequestSchema()
USER_SCHEMA = UserSchema()
AUTH_RESULT_SCHEMA = AuthResultSchema()
