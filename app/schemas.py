"""Marshmallow schemas: the field rules of sign-up and the shape of the user object."""

import unicodedata

from email_validator import EmailNotValidError, validate_email
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

NAME_MAX = 100
EMAIL_MAX = 254
PASSWORD_MIN = 9  # "more than 8 characters"
PASSWORD_MAX = 128


class TrimmedString(fields.String):
    """A string with surrounding white space removed before any rule runs."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


class LowercaseEmail(TrimmedString):
    """A trimmed, lower-cased e-mail address."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).lower()


def _has_lone_surrogate(value):
    """True when the text holds a UTF-16 surrogate that is not part of a character."""
    return any("\ud800" <= char <= "\udfff" for char in value)


def _is_control(char):
    """C0 (including NUL), DEL and C1 control characters."""
    return unicodedata.category(char) == "Cc"


def valid_unicode(value):
    """Refuse lone surrogates: they cannot be stored or hashed as text."""
    if _has_lone_surrogate(value):
        raise ValidationError("Must be valid Unicode text (no lone surrogates).")


def no_control_characters(value):
    """Refuse NUL and the other C0/C1 control characters."""
    if any(_is_control(char) for char in value):
        raise ValidationError("Must not contain control characters.")


def valid_email_syntax(value):
    """Check the address with email-validator, without DNS look-ups."""
    if len(value) > EMAIL_MAX or _has_lone_surrogate(value):
        return  # reported by its own rule
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValidationError(f"Not a valid e-mail address: {error}") from None


def normalised_email(address):
    """The form an address is stored in: email-validator's normalised form (NFC local
    part, IDNA-checked domain), lower-cased; an address it refuses is kept as given."""
    try:
        return validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return address


def _requires(test, message):
    """Build a validator that raises `message` unless some character passes `test`."""

    def validator(value):
        if not any(test(char) for char in value):
            raise ValidationError(message)

    return validator


def _is_special(char):
    """Anything that is not a letter, a digit or white space."""
    return not (char.isalnum() or char.isspace())


def name_field():
    """first_name / last_name: required, trimmed, 1-100 code points, no control characters."""
    return TrimmedString(
        required=True,
        validate=[
            validate.Length(min=1, error="Must not be empty."),
            validate.Length(max=NAME_MAX, error=f"Must be at most {NAME_MAX} characters."),
            no_control_characters,
            valid_unicode,
        ],
    )


class SignupSchema(Schema):
    """The four sign-up fields. Anything else in the body is ignored."""

    class Meta:
        unknown = EXCLUDE

    first_name = name_field()
    last_name = name_field()
    email = LowercaseEmail(
        required=True,
        validate=[
            validate.Length(max=EMAIL_MAX, error=f"Must be at most {EMAIL_MAX} characters."),
            valid_unicode,
            valid_email_syntax,
        ],
    )
    password = fields.String(
        required=True,
        load_only=True,
        validate=[
            validate.Length(
                min=PASSWORD_MIN, error=f"Must be more than {PASSWORD_MIN - 1} characters."
            ),
            validate.Length(max=PASSWORD_MAX, error=f"Must be at most {PASSWORD_MAX} characters."),
            _requires(str.isupper, "Must contain at least one upper-case letter."),
            _requires(str.islower, "Must contain at least one lower-case letter."),
            _requires(str.isdigit, "Must contain at least one digit."),
            _requires(_is_special, "Must contain at least one special character."),
            valid_unicode,
        ],
    )

    @post_load
    def normalise_email(self, data, **kwargs):
        """Store the validator's normalised form, lower-cased."""
        data["email"] = normalised_email(data["email"])
        return data


class LoginSchema(Schema):
    """Log-in fields: no strength rules (the account has them already), only what keeps
    a lookup and a hash safe: strings, bounded, storable text."""

    class Meta:
        unknown = EXCLUDE

    email = LowercaseEmail(
        required=True,
        validate=[
            validate.Length(min=1, error="Must not be empty."),
            validate.Length(max=EMAIL_MAX, error=f"Must be at most {EMAIL_MAX} characters."),
            no_control_characters,
            valid_unicode,
        ],
    )
    password = fields.String(
        required=True,
        load_only=True,
        validate=[
            validate.Length(min=1, error="Must not be empty."),
            validate.Length(max=PASSWORD_MAX, error=f"Must be at most {PASSWORD_MAX} characters."),
            valid_unicode,
        ],
    )

    @post_load
    def normalise_email(self, data, **kwargs):
        """Look the address up in the form sign-up stored it in."""
        data["email"] = normalised_email(data["email"])
        return data


class CompanySchema(Schema):
    """The company object; a customer gets the same keys, all empty."""

    id = fields.String()
    name = fields.String()
    phone = fields.String()
    address = fields.String()
    describe = fields.String()
    email = fields.String()


class RoleSchema(Schema):
    """A role with its permission tree, as stored."""

    name = fields.String()
    description = fields.String()
    category = fields.String()
    permission = fields.Raw()


EMPTY_COMPANY = {key: "" for key in CompanySchema().fields}


class UserSchema(Schema):
    """The full user object of the contract: exactly these keys, never a password or hash."""

    id = fields.String()
    first_name = fields.String()
    last_name = fields.String()
    phone = fields.String()
    email = fields.String()
    country = fields.String()
    city = fields.String()
    avatar = fields.String()
    company = fields.Method("dump_company")
    role = fields.Nested(RoleSchema)
    address = fields.String(allow_none=True)
    state = fields.String()
    language = fields.String()
    timezone = fields.String()
    default_app = fields.String()

    def dump_company(self, user):
        """An admin's company, or the all-empty company of a customer."""
        if user.company is None:
            return dict(EMPTY_COMPANY)
        return COMPANY_SCHEMA.dump(user.company)


class AuthResultSchema(Schema):
    """The `data` of a sign-up (and, later, login) response."""

    access_token = fields.String()
    user = fields.Nested(UserSchema)


COMPANY_SCHEMA = CompanySchema()
SIGNUP_SCHEMA = SignupSchema()
LOGIN_SCHEMA = LoginSchema()
USER_SCHEMA = UserSchema()
AUTH_RESULT_SCHEMA = AuthResultSchema()
