"""Sessions: log-out's optional body and the list of the account's sessions."""

from marshmallow import Schema, fields, validate

from app.schemas.responses import envelope, response_field
from app.schemas.rules import RequestSchema

SCOPES = ("all", "current", "others")


class LogoutRequestSchema(RequestSchema):
    """POST /logout's optional body: which sessions end (all of them by default)."""

    scope = fields.String(
        load_default="all",
        validate=validate.OneOf(SCOPES),
        metadata={"description": "all (the default), current or others"},
    )


class SessionSchema(Schema):
    """A live session of the account."""

    id = response_field(fields.String, metadata={"format": "uuid"})
    created_at = response_field(fields.String, metadata={"format": "date-time"})
    last_used_at = response_field(fields.String, metadata={"format": "date-time"})
    user_agent = response_field(fields.String)
    ip = response_field(fields.String)
    current = response_field(fields.Boolean)


SessionListEnvelopeSchema = envelope(
    Schema.from_dict(
        {"sessions": response_field(fields.List, cls_or_instance=fields.Nested(SessionSchema))},
        name="SessionList",
    ),
    "SessionListEnvelope",
)
