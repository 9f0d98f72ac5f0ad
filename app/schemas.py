"""Marshmallow schemas: the field rules of sign-up and the shape of the user object."""

import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from app.emails import EMAIL_MAX, LONE_SURROGATE, TRIM_CHARACTERS, canonical_email, checked

NAME_MAX = 100
PASSWORD_MIN = 9  # "more than 8 characters"
PASSWORD_MAX = 128


class TrimmedString(fields.String):
    """A string with surrounding white space removed before any rule runs."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip(TRIM_CHARACTERS)


class EmailAddress(fields.String):
    """An e-mail address in its canonical form (app.emails) before any rule runs."""

    def _deserialize(self, value, attr, data, **kwargs):
        return canonical_email(super()._deserialize(value, attr, data, **kwargs))


# Unicode's control characters (category Cc): C0 including NUL, DEL and C1.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class Rules(validate.Validator):
    """A text field's rules, checked in one pass: its length bounds, then each check; the
    message of every broken rule, in that order, in one ValidationError.

    A list of marshmallow validators does the same, but raises and catches an exception
    for each broken rule, which made up a third of the cost of rejecting a bad sign-up
    (bench/README.md). `min` and `max` are read by apispec as minLength and maxLength, as
    it reads them from validate.Length. A check returns None when the value passes, else
    its message (or a list of them).
    """

    equal = None  # no exact length (apispec asks)

    def __init__(self, *checks, min=None, max=None, too_short=None, too_long=None):
        self.checks = checks
        self.min, self.max = min, max
        self.too_short = too_short or f"Must be at least {min} characters."
        self.too_long = too_long or f"Must be at most {max} characters."

    def __call__(self, value):
        errors = []
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


def _has_lone_surrogate(value):
    """True when the text holds a UTF-16 surrogate that is not part of a character."""
    return LONE_SURROGATE.search(value) is not None


def lone_surrogates(value):
    """Lone surrogates cannot be stored or hashed as text."""
    if _has_lone_surrogate(value):
        return "Must be valid Unicode text (no lone surrogates)."
    return None


def control_characters(value):
    """NUL and the other C0/C1 control characters are refused."""
    if CONTROL_CHARACTER.search(value):
        return "Must not contain control characters."
    return None


def email_syntax(value):
    """The address as email-validator checks it, without DNS look-ups."""
    if _has_lone_surrogate(value):
        return None  # reported by its own rule
    normalised, error = checked(value)
    if normalised is not None:
        return None
    if len(value) > EMAIL_MAX and "too long" in error:
        return None  # the length rule says so already
    return f"Not a valid e-mail address: {error}"


def _is_special(char):
    """Anything that is not a letter, a digit or white space."""
    return not (char.isalnum() or char.isspace())


# The kinds of character a password must contain, each with its message.
PASSWORD_CHARACTER_KINDS = (
    (str.isupper, "Must contain at least one upper-case letter."),
    (str.islower, "Must contain at least one lower-case letter."),
    (str.isdigit, "Must contain at least one digit."),
    (_is_special, "Must contain at least one special character."),
)


def missing_character_kinds(value):
    """One message for each kind of character the password lacks, in the order above."""
    return [message for test, message in PASSWORD_CHARACTER_KINDS if not any(map(test, value))]


NOT_EMPTY = "Must not be empty."


def name_field():
    """first_name / last_name: required, trimmed, 1-100 code points, no control characters."""
    return TrimmedString(
        required=True,
        validate=Rules(
            control_characters, lone_surrogates, min=1, max=NAME_MAX, too_short=NOT_EMPTY
        ),
    )


class SignupRequestSchema(Schema):
    """The four sign-up fields. Anything else in the body is ignored."""

    class Meta:
        unknown = EXCLUDE

    first_name = name_field()
    last_name = name_field()
    email = EmailAddress(
        required=True, validate=Rules(lone_surrogates, email_syntax, max=EMAIL_MAX)
    )
    password = fields.String(
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


class LoginRequestSchema(Schema):
    """Log-in fields: no strength rules (the account has them already), only what keeps
    a lookup and a hash safe: strings, bounded, storable text."""

    class Meta:
        unknown = EXCLUDE

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


def out(field_class, **kwargs):
    """A response field: always present in the output, so listed as required in OpenAPI."""
    return field_class(required=True, **kwargs)


class CompanySchema(Schema):
    """The company object; a customer gets the same keys, all empty."""

    id = out(fields.String)
    name = out(fields.String)
    phone = out(fields.String)
    address = out(fields.String)
    describe = out(fields.String)
    email = out(fields.String)


EMPTY_COMPANY = {key: "" for key in CompanySchema().fields}


class CompanyOrEmpty(fields.Nested):
    """An admin's company, or, for a customer (no company), the same keys all empty."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return dict(EMPTY_COMPANY)
        return super()._serialize(value, attr, obj, **kwargs)


class GrantSchema(Schema):
    """One permission: may the role do everything, may it view."""

    all = out(fields.Boolean)
    view = out(fields.Boolean)


class PlatformPermissionSchema(Schema):
    """Permissions on the platform."""

    applications = out(fields.Nested, nested=GrantSchema)
    admins = out(fields.Nested, nested=GrantSchema)
    roles = out(fields.Nested, nested=GrantSchema)
    billing = out(fields.Nested, nested=GrantSchema)


class ApplicationPermissionSchema(Schema):
    """Permissions inside an application (`applications` is always null)."""

    applications = out(fields.Raw, allow_none=True, metadata={"type": "object"})
    tickets = out(fields.Nested, nested=GrantSchema)
    agents = out(fields.Nested, nested=GrantSchema)
    customers = out(fields.Nested, nested=GrantSchema)
    live_map = out(fields.Nested, nested=GrantSchema)
    labels = out(fields.Nested, nested=GrantSchema)
    settings = out(fields.Nested, nested=GrantSchema)


class PermissionSchema(Schema):
    """A role's permission tree."""

    platform = out(fields.Nested, nested=PlatformPermissionSchema)
    application = out(fields.Nested, nested=ApplicationPermissionSchema)


class RoleSchema(Schema):
    """A role with its permission tree, as stored."""

    name = out(fields.String)
    description = out(fields.String)
    category = out(fields.String)
    permission = out(fields.Nested, nested=PermissionSchema)


class UserSchema(Schema):
    """The full user object of the contract: exactly these keys, never a password or hash."""

    id = out(fields.String, metadata={"format": "uuid"})
    first_name = out(fields.String)
    last_name = out(fields.String)
    phone = out(fields.String)
    email = out(fields.String)
    country = out(fields.String)
    city = out(fields.String)
    avatar = out(fields.String)
    company = out(CompanyOrEmpty, nested=CompanySchema)
    role = out(fields.Nested, nested=RoleSchema)
    address = out(fields.String, allow_none=True)
    state = out(fields.String, metadata={"enum": ["CARD_NOT_FOUND", "ACTIVED"]})
    language = out(fields.String)
    timezone = out(fields.String)
    default_app = out(fields.String)


class AuthResultSchema(Schema):
    """The `data` of a sign-up or log-in response."""

    access_token = out(fields.String, metadata={"description": "HS256 JWT"})
    user = out(fields.Nested, nested=UserSchema)


class UserResultSchema(Schema):
    """The `data` of a /me response."""

    user = out(fields.Nested, nested=UserSchema)


class StatusSchema(Schema):
    """The `data` of /healthz and /readyz."""

    status = out(fields.String, metadata={"enum": ["ok", "ready"]})


def null_field():
    """A key that is present and always null."""
    return out(fields.Raw, allow_none=True, metadata={"type": "object", "enum": [None]})


def envelope(data_schema, name):
    """`{"error": null, "data": <data_schema>}`, as every success answers."""
    return Schema.from_dict(
        {"error": null_field(), "data": out(fields.Nested, nested=data_schema)}, name=name
    )


class ErrorSchema(Schema):
    """The `error` object of the envelope."""

    code = out(fields.String)
    message = out(fields.String)
    fields_ = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        data_key="fields",
        metadata={"description": "VALIDATION_ERROR only: every broken rule of every field"},
    )


class ErrorEnvelopeSchema(Schema):
    """`{"error": {...}, "data": null}`, as every error answers."""

    error = out(fields.Nested, nested=ErrorSchema)
    data = null_field()


AuthEnvelopeSchema = envelope(AuthResultSchema, "AuthEnvelope")
UserEnvelopeSchema = envelope(UserResultSchema, "UserEnvelope")
StatusEnvelopeSchema = envelope(StatusSchema, "StatusEnvelope")

SIGNUP_SCHEMA = SignupRequestSchema()
LOGIN_SCHEMA = LoginRequestSchema()
USER_SCHEMA = UserSchema()
AUTH_RESULT_SCHEMA = AuthResultSchema()
