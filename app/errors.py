"""The JSON envelope, and every error code of the contract, each defined once.

`{"error": {"code", "message"[, "fields"]}, "data": null}` with a JSON content type:
no Werkzeug or gunicorn HTML page, stack trace, SQL or secret ever reaches a client.

An error code is one class below: its status, code, message, the headers it always
carries, and the prose the OpenAPI document shows for it. The handlers
(app.error_handlers), the OpenAPI document (app.api.docs), the pages gunicorn writes
itself (gunicorn.conf.py) and a test of the README's table all read these classes. This
module imports nothing else of the app.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

# The envelope as jsonify writes it outside debug mode (compact, ASCII, keys in order),
# with one encoder made once: every answer is encoded here (bench/README.md).
_encode = json.JSONEncoder(separators=(",", ":")).encode
JSON_MIMETYPE = "application/json"


def envelope(data: Any = None, error: dict[str, Any] | None = None) -> str:
    """The envelope's text: `{"error": ..., "data": ...}` and a newline. Successes,
    errors and gunicorn's own error pages are all written by this one function."""
    return _encode({"error": error, "data": data}) + "\n"


# Every error class by its code, filled in as the classes are defined.
ERRORS: dict[str, type[APIError]] = {}


class APIError(Exception):
    """An error with a status, a contract code and a client-safe message.

    `headers` are sent with every answer of this code; `documented_headers` are their
    OpenAPI header objects; `description` is the prose the OpenAPI document shows."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "BAD_REQUEST"
    message: str = "The request could not be understood."
    description: ClassVar[str] = "what HTTP itself cannot take"
    headers: dict[str, str]
    default_headers: ClassVar[dict[str, str]] = {}
    documented_headers: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        ERRORS[cls.code] = cls

    def __init__(
        self,
        message: str | None = None,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.fields = fields
        self.headers = {**self.default_headers, **(headers or {})}

    def body(self) -> str:
        """This error's envelope text."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields is not None:
            error["fields"] = self.fields
        return envelope(error=error)


RETRY_AFTER_DOC = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}, "required": True}}


class BadRequest(APIError):
    """A request HTTP itself cannot take (a broken request line or chunked body)."""

    description = "BAD_REQUEST: the request (line, headers or chunked body) is broken"


class InvalidJSON(APIError):
    """The body is not a strict JSON object."""

    code = "INVALID_JSON"
    message = "The request body must be a valid UTF-8 JSON object."
    description = (
        "INVALID_JSON: not UTF-8 JSON, not an object, a repeated key, NaN/Infinity, "
        "or nested deeper than 32 levels"
    )


class ValidationFailed(APIError):
    """One or more fields break their rules; `fields` says which and why."""

    code = "VALIDATION_ERROR"
    message = "Some fields are invalid."
    description = "VALIDATION_ERROR: `fields` lists every broken rule of every field"


class InvalidLink(APIError):
    """A verification, reset or e-mail-change token that is not good now."""

    code = "INVALID_LINK"
    message = "This link is invalid, expired or already used; ask for a new one."
    description = "INVALID_LINK: a malformed, forged, expired, used or superseded link token"


class InvalidCredentials(APIError):
    """Log-in with an unknown e-mail or a wrong password: one answer for both."""

    status = 401
    code = "INVALID_CREDENTIALS"
    message = "The e-mail address or the password is wrong."
    description = "INVALID_CREDENTIALS: an unknown e-mail or a wrong password (one answer)"


class InvalidToken(APIError):
    """A missing, malformed, expired, revoked or forged access token."""

    status = 401
    code = "INVALID_TOKEN"
    message = "The access token is missing, invalid or expired."
    description = "INVALID_TOKEN: a missing, malformed, expired, revoked or forged token"
    default_headers = {"WWW-Authenticate": "Bearer"}
    documented_headers = {"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}}


class InvalidCode(APIError):
    """A wrong, reused or expired two-factor code, or a dead mfa_token."""

    status = 401
    code = "INVALID_CODE"
    message = "The code is wrong, already used or expired."
    description = "INVALID_CODE: a wrong, reused or expired two-factor code, or a dead mfa_token"


class InvalidClient(APIError):
    """Introspection without valid client credentials (HTTP Basic)."""

    status = 401
    code = "INVALID_CLIENT"
    message = "The client credentials are missing or wrong."
    description = "INVALID_CLIENT: no valid HTTP Basic client credentials"
    default_headers = {"WWW-Authenticate": 'Basic realm="introspection"'}
    documented_headers = {
        "WWW-Authenticate": {"schema": {"type": "string", "enum": ['Basic realm="introspection"']}}
    }


class WrongPassword(APIError):
    """The current password given to prove who one is, is wrong."""

    status = 403
    code = "WRONG_PASSWORD"
    message = "The password is wrong."
    description = "WRONG_PASSWORD: the current password given is wrong"


class Forbidden(APIError):
    """The account's role may not do this."""

    status = 403
    code = "FORBIDDEN"
    message = "This account may not do this."
    description = "FORBIDDEN: the account's role may not do this"


class MfaRequired(APIError):
    """A right password (or reset link) of an account with two-factor on: no-store."""

    status = 403
    code = "MFA_REQUIRED"
    message = "Two-factor is on: send a code with the mfa_token to /api/v1/auth/login/mfa."
    description = "MFA_REQUIRED: the password was right; error.mfa_token continues at /login/mfa"
    default_headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    documented_headers = {"Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}}}

    def __init__(self, mfa_token: str) -> None:
        super().__init__()
        self.mfa_token = mfa_token

    def body(self) -> str:
        """The envelope, with the token that continues the log-in as `error.mfa_token`."""
        error = {"code": self.code, "message": self.message, "mfa_token": self.mfa_token}
        return envelope(error=error)


class NotFound(APIError):
    """No such path, or no such member, invitation, role or session of the caller's."""

    status = 404
    code = "NOT_FOUND"
    message = "No such path."
    description = "NOT_FOUND: no such path, or no such member, invitation, role or session"


class MethodNotAllowed(APIError):
    """A method the path does not take (Werkzeug adds the `Allow` header)."""

    status = 405
    code = "METHOD_NOT_ALLOWED"
    message = "This method is not allowed on this path."
    description = "METHOD_NOT_ALLOWED: with an Allow header"


class EmailTaken(APIError):
    """An account with that e-mail (in any spelling) exists."""

    status = 409
    code = "EMAIL_TAKEN"
    message = "An account with this e-mail address already exists."
    description = "EMAIL_TAKEN: an account with this e-mail (in any case or spelling) exists"


class PermissionNotHeld(APIError):
    """A role, an invitation or a role change would grant a permission the acting member
    does not hold, or the member or role acted on holds one."""

    status = 403
    code = "PERMISSION_NOT_HELD"
    message = "This would grant, or act on, a permission you do not hold."
    description = (
        "PERMISSION_NOT_HELD: the role given or acted on holds a permission the acting "
        "member does not"
    )


class InvitationEmailMismatch(APIError):
    """An invitation accepted by an account whose address is not the invited one."""

    status = 403
    code = "INVITATION_EMAIL_MISMATCH"
    message = "This invitation is for another e-mail address."
    description = "INVITATION_EMAIL_MISMATCH: the account's address is not the invited one"


class LastAdmin(APIError):
    """The change would leave a company without a member holding the Admin role."""

    status = 409
    code = "LAST_ADMIN"
    message = "A company keeps at least one Admin; make another member Admin first."
    description = "LAST_ADMIN: the change would leave the company without an Admin"


class AlreadyMember(APIError):
    """An invitation for an address that a member of this company has."""

    status = 409
    code = "ALREADY_MEMBER"
    message = "A member of this company has this e-mail address."
    description = "ALREADY_MEMBER: a member of this company has the address"


class AlreadyInCompany(APIError):
    """An invitation accepted by an account that belongs to a company."""

    status = 409
    code = "ALREADY_IN_COMPANY"
    message = "This account belongs to a company already."
    description = "ALREADY_IN_COMPANY: the accepting account belongs to a company"


class InvitationPending(APIError):
    """An invitation for an address that has a pending one in this company."""

    status = 409
    code = "INVITATION_PENDING"
    message = "This address has a pending invitation; resend it instead."
    description = "INVITATION_PENDING: the address has a pending invitation of this company"


class InvitationClosed(APIError):
    """Resending or revoking an invitation that was accepted or revoked."""

    status = 409
    code = "INVITATION_CLOSED"
    message = "This invitation was accepted or revoked."
    description = "INVITATION_CLOSED: the invitation was accepted or revoked"


class RoleNameTaken(APIError):
    """A role name the company uses already (by case folding), or a system role's."""

    status = 409
    code = "ROLE_NAME_TAKEN"
    message = "A role with this name exists."
    description = "ROLE_NAME_TAKEN: the company has a role of this name, or it is Admin/Customer"


class RoleInUse(APIError):
    """Deleting a role that a member or a pending invitation has."""

    status = 409
    code = "ROLE_IN_USE"
    message = "Members or pending invitations have this role."
    description = "ROLE_IN_USE: a member or a pending (or expired) invitation has the role"


class MfaAlreadyEnabled(APIError):
    """A TOTP set-up or confirmation asked for by an account with two-factor on."""

    status = 409
    code = "MFA_ALREADY_ENABLED"
    message = "Two-factor is on already."
    description = "MFA_ALREADY_ENABLED: the account has two-factor on"


class MfaNotEnabled(APIError):
    """Recovery codes or disabling without two-factor, or a confirmation without set-up."""

    status = 409
    code = "MFA_NOT_ENABLED"
    message = "Two-factor is not on, or no set-up is waiting for its confirmation."
    description = "MFA_NOT_ENABLED: two-factor is off, or no set-up is pending"


class EmailAlreadyVerified(APIError):
    """A new verification mail was asked for an address that is verified already."""

    status = 409
    code = "EMAIL_ALREADY_VERIFIED"
    message = "This e-mail address is verified already."
    description = "EMAIL_ALREADY_VERIFIED: the address is verified already"


class IdempotencyKeyInProgress(APIError):
    """The first request with this Idempotency-Key is still being processed."""

    status = 409
    code = "IDEMPOTENCY_KEY_IN_PROGRESS"
    message = "A request with this Idempotency-Key is still being processed; retry later."
    description = "IDEMPOTENCY_KEY_IN_PROGRESS: the first request with this key still runs"
    default_headers = {"Retry-After": "1"}
    documented_headers = RETRY_AFTER_DOC


class PayloadTooLarge(APIError):
    """The body is over MAX_CONTENT_LENGTH."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"
    message = "The request body is larger than the limit."
    description = "PAYLOAD_TOO_LARGE: the body is over the limit (64 KiB by default)"


class UnsupportedMediaType(APIError):
    """The body was not sent as application/json."""

    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    message = "The body must be sent as application/json."
    description = "UNSUPPORTED_MEDIA_TYPE: the body is not sent as application/json"


class IdempotencyKeyReused(APIError):
    """The Idempotency-Key was used with a different body on this endpoint."""

    status = 422
    code = "IDEMPOTENCY_KEY_REUSED"
    message = "This Idempotency-Key was already used with a different request body."
    description = "IDEMPOTENCY_KEY_REUSED: the key was used with another body"


class RateLimited(APIError):
    """Too many attempts from one client; Retry-After says when to try again."""

    status = 429
    code = "RATE_LIMITED"
    message = "Too many attempts; try again later."
    description = "RATE_LIMITED: too many attempts; Retry-After says when to retry"
    documented_headers = RETRY_AFTER_DOC


class InternalError(APIError):
    """A bug: no stack trace, SQL or secret in the answer."""

    status = 500
    code = "INTERNAL_ERROR"
    message = "An internal error occurred."
    description = "INTERNAL_ERROR"


class ServiceUnavailable(APIError):
    """The database cannot be reached."""

    status = 503
    code = "SERVICE_UNAVAILABLE"
    message = "The service is temporarily unavailable; try again shortly."
    description = "SERVICE_UNAVAILABLE: the database cannot be reached"


# What gunicorn answers itself, before the app sees the request (gunicorn.conf.py).
class URITooLong(APIError):
    """The request line is over gunicorn's limit."""

    status = 414
    code = "URI_TOO_LONG"
    message = "The request URI is too long."
    description = "URI_TOO_LONG: the URI is over the server's limit"


class ExpectationFailed(APIError):
    """An `Expect` header other than 100-continue."""

    status = 417
    code = "EXPECTATION_FAILED"
    message = "The Expect header cannot be met."
    description = "EXPECTATION_FAILED: an unknown Expect"


class RequestHeaderFieldsTooLarge(APIError):
    """Too many headers, or one over gunicorn's limit."""

    status = 431
    code = "REQUEST_HEADER_FIELDS_TOO_LARGE"
    message = "The request headers are too large."
    description = "REQUEST_HEADER_FIELDS_TOO_LARGE: headers over the server's limits"


class NotImplementedByServer(APIError):
    """A transfer coding the server does not know."""

    status = 501
    code = "NOT_IMPLEMENTED"
    message = "The request uses a transfer coding the server does not implement."
    description = "NOT_IMPLEMENTED: an unknown transfer coding"


class HTTPVersionNotSupported(APIError):
    """An HTTP version the server does not speak (the gateway's nginx: 2.0 and later)."""

    status = 505
    code = "HTTP_VERSION_NOT_SUPPORTED"
    message = "The HTTP version of the request is not supported."
    description = "HTTP_VERSION_NOT_SUPPORTED: an unsupported HTTP version"
