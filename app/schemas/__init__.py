"""Marshmallow schemas: the field rules of every request and the shape of every answer.

`rules` holds the field types and text rules, `requests` the request bodies (each loaded
by a view's @body), `responses` the user object and the envelopes; what the rest of the
app uses is re-exported here.
"""

from app.schemas.requests import (
    SIGNUP_SCHEMA,
    ChangePasswordRequestSchema,
    CompanyPatchSchema,
    DeleteAccountRequestSchema,
    EmailChangeRequestSchema,
    ForgotPasswordRequestSchema,
    LinkTokenRequestSchema,
    LoginRequestSchema,
    ProfilePatchSchema,
    ResetPasswordRequestSchema,
    SignupRequestSchema,
)
from app.schemas.responses import (
    AUTH_RESULT_SCHEMA,
    USER_SCHEMA,
    AcceptedEnvelopeSchema,
    AuthEnvelopeSchema,
    ErrorEnvelopeSchema,
    IdentityEnvelopeSchema,
    IntrospectionSchema,
    StatusEnvelopeSchema,
    UserEnvelopeSchema,
)

__all__ = [
    "AUTH_RESULT_SCHEMA",
    "AcceptedEnvelopeSchema",
    "AuthEnvelopeSchema",
    "ChangePasswordRequestSchema",
    "CompanyPatchSchema",
    "DeleteAccountRequestSchema",
    "EmailChangeRequestSchema",
    "ErrorEnvelopeSchema",
    "ForgotPasswordRequestSchema",
    "IdentityEnvelopeSchema",
    "IntrospectionSchema",
    "LinkTokenRequestSchema",
    "LoginRequestSchema",
    "ProfilePatchSchema",
    "ResetPasswordRequestSchema",
    "SIGNUP_SCHEMA",
    "SignupRequestSchema",
    "StatusEnvelopeSchema",
    "USER_SCHEMA",
    "UserEnvelopeSchema",
]
