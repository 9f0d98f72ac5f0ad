"""The /verify fast path: a WSGI middleware that answers the hottest request of the
platform, a /verify of a cached token, without Flask's request dispatch.

A speed device with one small interface: `VerifyFastPath(app, wsgi_app)`, installed by
the app factory; everything it answers is what the view (app.api.platform.verify) would
answer, and anything it cannot answer goes on to Flask unchanged. It is one of the
departures from Flask idiom listed in docs/design.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask, url_for

from app import identity, observability, postgres_budget
from app.api.platform import DATABASE_FAILURE, VERIFY_VALID, verify_answer
from app.error_handlers import is_connection_error
from app.http_headers import SECURITY_HEADERS
from app.tokens import BEARER_PATTERN

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

ENDPOINT = "platform.verify"


class VerifyFastPath:
    """WSGI middleware for the hottest request of the platform: a GET or HEAD of /verify
    whose token is in the identity cache is answered here, without Flask's dispatch
    (bench/README.md, "Figures behind the code's choices"). The answer is the view's own
    (verify_answer), with the security headers, request id, metrics and access line of
    every request (observability.account_for_request, as Flask's after-request hook).
    A cache miss is verified here as well (in an app context, without the request
    dispatch); a refused token, and anything else, goes on to Flask unchanged."""

    def __init__(self, app: Flask, wsgi_app: WSGIApplication) -> None:
        self.app = app
        self.next = wsgi_app
        self.cache: identity.IdentityCache = app.extensions[identity.EXTENSION_KEY]
        with app.test_request_context():
            self.path = url_for(ENDPOINT)
        self.log = bool(app.config["LOG_VERIFY_REQUESTS"])
        # A cache miss's read gets a request's database time (it comes before Flask's).
        self.database_time = app.config["DB_REQUEST_TIMEOUT_MS"] / 1000
        # A browser's cross-origin call gets Flask-CORS's headers: leave it to Flask.
        self.cors = bool(app.config["CORS_ORIGINS"])

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if environ.get("PATH_INFO") != self.path or method not in ("GET", "HEAD"):
            return self.next(environ, start_response)
        started = time.perf_counter()
        match = BEARER_PATTERN.fullmatch(environ.get("HTTP_AUTHORIZATION", ""))
        if match is None or (self.cors and "HTTP_ORIGIN" in environ):
            return self.next(environ, start_response)
        who = self.cache.get(match.group(1)) or self._identify(match.group(1), environ)
        if who is None:  # refused, or the database failed: Flask answers (401, 503)
            return self.next(environ, start_response)
        body, headers = verify_answer(who)
        request_id = observability.request_id_of(environ)
        start_response(
            "200 OK", [*headers, *SECURITY_HEADERS, (observability.REQUEST_ID_HEADER, request_id)]
        )
        VERIFY_VALID.inc()
        observability.account_for_request(
            method=method,
            endpoint=ENDPOINT,
            path=self.path,
            status=200,
            seconds=time.perf_counter() - started,
            client_ip=environ.get("REMOTE_ADDR"),
            request_id=request_id,
            logged=self.log,
        )
        return [body] if method == "GET" else []

    def _identify(self, token: str, environ: WSGIEnvironment) -> identity.Identity | None:
        """A cache miss, verified here too (an app context, no request dispatch); None
        when the token is refused or anything fails, for Flask to answer as usual. A
        database that cannot be reached is not asked again: the view answers with the
        failure left in the environ (its 503, logged as every other)."""
        try:
            with self.app.app_context(), postgres_budget.budget(self.database_time):
                return identity.identify(token)
        except Exception as error:  # noqa: BLE001 - Flask's path gives the 401 or 503
            if is_connection_error(error):
                environ[DATABASE_FAILURE] = error
            return None
