"""The request bodies: sign-up, log-in, the account lifecycle and self-service (the
contract's field rules, every broken rule reported at once)."""

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validates_schema

from app import profile_rules
from app.email_address import EMAIL_MAX
from app.schemas.rules import (
    LANGUAGE_MAX,
    NOT_EMPTY,
    PASSWORD_MAX,
    PHONE_RULE,
    EmailAddress,
    Normalised,
    Refused,
    RequestSchema,
    Rules,
    control_characters,
    email_field,
    link_token_field,
    lone_surrogates,
    name_field,
    new_password_field,
    optional_email_syntax,
    optional_name,
    optional_text,
    proof_password_field,
)


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


SIGNUP_SCHEMA = SignupRequestSchema()  # the CLI's (a view's own comes from @body)
