"""One JSON envelope for every error, whatever raised it.

`{"error": {"code", "message"[, "fields"]}, "data": null}` with a JSON content type:
no Werkzeug HTML page, stack trace, SQL or secret ever reaches a client.
"""

import json
import logging
import traceback

from flask import current_app
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from app import repository

log = logging.getLogger(__name__)

# Codes for the HTTP errors Werkzeug raises (routing, body size, ...).
HTTP_ERROR_CODES = {
    400: ("BAD_REQUEST", "The request could not be understood."),
    404: ("NOT_FOUND", "No such path."),
    405: ("METHOD_NOT_ALLOWED", "This method is not allowed on this path."),
    413: ("PAYLOAD_TOO_LARGE", "The request body is larger than the limit."),
    415: ("UNSUPPORTED_MEDIA_TYPE", "The body must be sent as application/json."),
}


class APIError(Exception):
    """An error with a status, a contract code and a client-safe message."""

    status = 400
    code = "BAD_REQUEST"
    message = "The request could not be understood."

    def __init__(self, message=None, fields=None, headers=None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.fields = fields
        self.headers = headers or {}


class BadRequest(APIError):
    """What HTTP itself cannot take (here: a body whose chunked encoding is broken)."""


class InvalidJSON(APIError):
    """The body is not a strict JSON object."""

    code = "INVALID_JSON"
    message = "The request body must be a valid UTF-8 JSON object."


class ValidationFailed(APIError):
    """One or more fields break their rules; `fields` says which and why."""

    code = "VALIDATION_ERROR"
    message = "Some fields are invalid."


class UnsupportedMediaType(APIError):
    """The body was not sent as application/json."""

    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    message = "The body must be sent as application/json."


class EmailTaken(APIError):
    """An account with that e-mail (in any case) exists."""

    status = 409
    code = "EMAIL_TAKEN"
    message = "An account with this e-mail address already exists."


class InvalidCredentials(APIError):
    """Log-in with an unknown e-mail or a wrong password: one answer for both."""

    status = 401
    code = "INVALID_CREDENTIALS"
    message = "The e-mail address or the password is wrong."


class InvalidToken(APIError):
    """A missing, malformed, expired, revoked or forged access token."""

    status = 401
    code = "INVALID_TOKEN"
    message = "The access token is missing, invalid or expired."

    def __init__(self, message=None, fields=None, headers=None):
        super().__init__(message, fields, {"WWW-Authenticate": "Bearer", **(headers or {})})


class IdempotencyKeyReused(APIError):
    """The Idempotency-Key was used with a different body on this endpoint."""

    status = 422
    code = "IDEMPOTENCY_KEY_REUSED"
    message = "This Idempotency-Key was already used with a different request body."


class IdempotencyKeyInProgress(APIError):
    """The first request with this Idempotency-Key is still being processed."""

    status = 409
    code = "IDEMPOTENCY_KEY_IN_PROGRESS"
    message = "A request with this Idempotency-Key is still being processed; retry later."


class RateLimited(APIError):
    """Too many attempts from one client; Retry-After says when to try again."""

    status = 429
    code = "RATE_LIMITED"
    message = "Too many attempts; try again later."


class ServiceUnavailable(APIError):
    """The database cannot be reached."""

    status = 503
    code = "SERVICE_UNAVAILABLE"
    message = "The service is temporarily unavailable; try again shortly."


# The envelope as jsonify writes it (compact, ASCII, keys in order), with one encoder made
# once: every rejected request answers through here (bench/README.md).
encode_envelope = json.JSONEncoder(separators=(",", ":")).encode


def error_response(status, code, message, fields=None, headers=None):
    """Build the envelope response."""
    error = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    body = encode_envelope({"error": error, "data": None}) + "\n"
    return current_app.response_class(
        body, status=status, headers=headers, mimetype="application/json"
    )


def handle_api_error(error):
    """Render one of our own errors."""
    return error_response(error.status, error.code, error.message, error.fields, error.headers)


def handle_http_exception(error):
    """Render a Werkzeug HTTP error (404, 405, 413, ...) in the envelope, keeping its headers."""
    code, message = HTTP_ERROR_CODES.get(
        error.code, (error.name.upper().replace(" ", "_"), error.name + ".")
    )
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    return error_response(error.code, code, message, headers=headers)


def is_connection_error(error):
    """True when a database error means the database cannot be reached (or is overloaded)."""
    return isinstance(error, OperationalError) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    )


def describe_without_secrets(error):
    """Name the exception and where it was raised, leaving out its message (it may hold SQL)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__module__}.{type(error).__qualname__}{where}"


def handle_unexpected_error(error):
    """Turn anything else into 500 (or 503 when the database is unreachable)."""
    repository.rollback()
    if is_connection_error(error):
        log.warning("database unavailable: %s", describe_without_secrets(error))
        return handle_api_error(ServiceUnavailable())
    log.error("unhandled error: %s", describe_without_secrets(error))
    return error_response(500, "INTERNAL_ERROR", "An internal error occurred.")


def register_error_handlers(app):
    """Route every error through the envelope."""
    app.register_error_handler(APIError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected_error)
