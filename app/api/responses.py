"""Success responses shared by the endpoints (errors are app.errors')."""

from typing import Any

from flask import Response, current_app, jsonify

from app.errors import JSON_MIMETYPE, envelope
from app.models import User
from app.schemas import AUTH_RESULT_SCHEMA, USER_SCHEMA


def success(data: Any, status: int = 200) -> Response:
    """`{"error": null, "data": ...}` with the given status."""
    response: Response = current_app.response_class(
        envelope(data), status=status, mimetype=JSON_MIMETYPE
    )
    return response


def raw_json(data: Any, status: int = 200) -> Response:
    """A JSON document that is not an envelope (the OpenAPI document)."""
    response = jsonify(data)
    response.status_code = status
    return response


def not_cached(response: Response) -> Response:
    """Mark a response that holds a token or account data as never to be stored."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def auth_response(user: User, token: str, status: int = 200) -> Response:
    """The token response: the access token and the full user; never cached."""
    return not_cached(
        success(AUTH_RESULT_SCHEMA.dump({"access_token": token, "user": user}), status)
    )


def user_response(user: User) -> Response:
    """The /me body: `{"user": {...}, "email_verified": ...}`."""
    verified = user.email_verified_at is not None
    return not_cached(success({"user": USER_SCHEMA.dump(user), "email_verified": verified}))


def accepted() -> Response:
    """202 `{"error": null, "data": null}`: the mail will go out."""
    return success(None, status=202)


def no_content() -> Response:
    """204: no body, so no Content-Type either (Flask would say text/html)."""
    response: Response = current_app.response_class(status=204)
    del response.headers["Content-Type"]
    return response
