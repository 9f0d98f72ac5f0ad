"""The error handlers: every error a request raises answered in the envelope of its
code (app.errors), and what a database outage or a bug looks like in the logs (never its
message: it may hold SQL)."""

from __future__ import annotations

import logging
import os
import traceback

from flask import Flask, Response, current_app
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from app.errors import (
    JSON_MIMETYPE,
    APIError,
    BadRequest,
    ExpectationFailed,
    Forbidden,
    InternalError,
    MethodNotAllowed,
    NotFound,
    NotImplementedByServer,
    PayloadTooLarge,
    RequestHeaderFieldsTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    URITooLong,
)

log = logging.getLogger("app.errors")

# Errors raised by Werkzeug (routing, body size) or written by gunicorn, by status.
BY_STATUS: dict[int, type[APIError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        PayloadTooLarge,
        UnsupportedMediaType,
        URITooLong,
        ExpectationFailed,
        RequestHeaderFieldsTooLarge,
        InternalError,
        NotImplementedByServer,
        ServiceUnavailable,
    )
}


def error_response(error: APIError) -> Response:
    """The envelope response of an error."""
    response: Response = current_app.response_class(
        error.body(), status=error.status, headers=error.headers, mimetype=JSON_MIMETYPE
    )
    return response


def handle_http_exception(error: HTTPException) -> Response:
    """A Werkzeug HTTP error (404, 405, 413, ...) in the envelope, keeping its headers."""
    status = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    known = BY_STATUS.get(status)
    if known is not None:
        return error_response(known(headers=headers))
    name = error.name or "Error"
    unknown = APIError(f"{name}.", headers=headers)
    unknown.status = status  # type: ignore[misc]  # an HTTP error with no code of ours
    unknown.code = name.upper().replace(" ", "_")  # type: ignore[misc]
    return error_response(unknown)


def is_connection_error(error: BaseException) -> bool:
    """True when a database error means the database cannot be reached (or is overloaded)."""
    return isinstance(error, OperationalError) or (
        isinstance(error, DBAPIError) and bool(error.connection_invalidated)
    )


# The app's own code, and the speed and reliability devices inside it whose frames say
# nothing of what failed (every SQLite error passes the write gate's cursor last).
APP_FOLDER = os.path.dirname(os.path.abspath(__file__))
DEVICE_MODULES = frozenset(
    os.path.join(APP_FOLDER, name) for name in ("sqlite_gate.py", "postgres_budget.py")
)


def _failing_frame(frames: traceback.StackSummary) -> traceback.FrameSummary | None:
    """The innermost frame of the app's own code that is not a device; else the last."""
    for frame in reversed(frames):
        path = os.path.abspath(frame.filename)
        if path.startswith(APP_FOLDER + os.sep) and path not in DEVICE_MODULES:
            return frame
    return frames[-1] if frames else None


def describe_without_secrets(error: BaseException) -> str:
    """Name the exception and the app's frame that failed, leaving out its message (it
    may hold SQL)."""
    frame = _failing_frame(traceback.extract_tb(error.__traceback__))
    where = f" at {frame.filename}:{frame.lineno}" if frame else ""
    return f"{type(error).__module__}.{type(error).__qualname__}{where}"


def handle_unexpected_error(error: Exception) -> Response:
    """Anything else is a 500 (or a 503 when the database is unreachable). The session is
    rolled back by the database module's teardown."""
    if is_connection_error(error):
        log.warning("database unavailable: %s", describe_without_secrets(error))
        return error_response(ServiceUnavailable())
    log.error("unhandled error: %s", describe_without_secrets(error))
    return error_response(InternalError())


def register_error_handlers(app: Flask) -> None:
    """Route every error through the envelope."""
    app.register_error_handler(APIError, error_response)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected_error)
