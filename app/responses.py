"""Success envelopes shared by the endpoints."""

from flask import current_app, jsonify

from app.schemas import AUTH_RESULT_SCHEMA, USER_SCHEMA


def success(data, status=200):
    """`{"error": null, "data": ...}` with the given status."""
    response = jsonify({"error": None, "data": data})
    response.status_code = status
    return response


def auth_response(user, token, status=200):
    """The token response: the access token and the full user; never cached."""
    return not_cached(
        success(AUTH_RESULT_SCHEMA.dump({"access_token": token, "user": user}), status)
    )


def not_cached(response):
    """Mark a response that holds a token or account data as never to be stored."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def user_response(user):
    """`{"user": {...}}`, as /me answers."""
    return not_cached(success({"user": USER_SCHEMA.dump(user)}))


def no_content():
    """204: no body, so no Content-Type either (Flask would say text/html)."""
    response = current_app.response_class(status=204)
    del response.headers["Content-Type"]
    return response
