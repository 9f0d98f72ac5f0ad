"""Two-factor: the request bodies (a password, a code, an mfa_token) and the answers."""

from marshmallow import Schema, fields

from app.schemas.responses import envelope, response_field
from app.schemas.rules import (
    NOT_EMPTY,
    RequestSchema,
    Rules,
    TrimmedString,
    link_token_field,
    proof_password_field,
)


def code_field() -> TrimmedString:
    """A two-factor code: a non-empty string (trimmed); whether it is good is the use
    case's 401 INVALID_CODE."""
    return TrimmedString(
        required=True,
        load_only=True,
        validate=Rules(min=1, too_short=NOT_EMPTY),
        metadata={
            "description": "a 6-digit TOTP code, or (but at /mfa/totp/confirm) a recovery "
            "code xxxxx-xxxxx, with or without the hyphen, in any case",
            "example": "123456",
        },
    )


class MfaPasswordRequestSchema(RequestSchema):
    """A TOTP set-up: the password, as proof."""

    password = proof_password_field()


class MfaCodeRequestSchema(RequestSchema):
    """A confirmation: a code of the pending secret."""

    code = code_field()


class MfaProofRequestSchema(RequestSchema):
    """New recovery codes or disabling: the password and a code, as proof."""

    password = proof_password_field()
    code = code_field()


class MfaLoginRequestSchema(RequestSchema):
    """A log-in's second step: the mfa_token of a 403 MFA_REQUIRED and a code."""

    mfa_token = link_token_field()
    code = code_field()


class MfaStatusSchema(Schema):
    """Whether two-factor is on, and how many recovery codes are left."""

    totp = response_field(fields.Boolean)
    recovery_codes_left = response_field(fields.Integer, metadata={"minimum": 0})


class TotpSetupSchema(Schema):
    """A new TOTP secret waiting for its confirmation."""

    secret = response_field(fields.String, metadata={"description": "base32, 160 bits"})
    otpauth_uri = response_field(
        fields.String,
        metadata={"example": "otpauth://totp/Lumyri:admin@example.org?secret=...&issuer=Lumyri"},
    )
    qr_svg = response_field(fields.String, metadata={"description": "the URI as a QR code, SVG"})


def _codes() -> fields.List[str]:
    """Ten recovery codes, shown once."""
    return response_field(
        fields.List,
        cls_or_instance=fields.String(metadata={"pattern": "^[a-z0-9]{5}-[a-z0-9]{5}$"}),
        metadata={"minItems": 10, "maxItems": 10},
    )


class MfaEnabledSchema(Schema):
    """Two-factor on: a fresh token (every earlier session ended) and the codes."""

    access_token = response_field(fields.String)
    recovery_codes = _codes()


MfaStatusEnvelopeSchema = envelope(MfaStatusSchema, "MfaStatusEnvelope")
TotpSetupEnvelopeSchema = envelope(TotpSetupSchema, "TotpSetupEnvelope")
MfaEnabledEnvelopeSchema = envelope(MfaEnabledSchema, "MfaEnabledEnvelope")
RecoveryCodesEnvelopeSchema = envelope(
    Schema.from_dict({"recovery_codes": _codes()}, name="RecoveryCodes"),
    "RecoveryCodesEnvelope",
)
