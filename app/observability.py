"""Request ids, one JSON log line per request, and request metrics."""

import functools
import json
import logging
import random
import re
import time
from typing import Any, cast

from flask import Flask, Request, Response, g, has_request_context, request
from werkzeug.local import LocalProxy

from app import metrics

access_log = logging.getLogger("app.access")

REQUEST_ID_HEADER = "X-Request-ID"
# Endpoints whose successful answers LOG_VERIFY_REQUESTS=false leaves out of the log.
QUIET_ENDPOINTS = ("platform.verify",)
# The header as WSGI hands it over (read there: no Headers object needed).
REQUEST_ID_ENVIRON_KEY = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def client_ip() -> str:
    """The client's address (from X-Forwarded-For only behind TRUSTED_PROXIES proxies)."""
    return request.remote_addr or "unknown"


def current_request_id() -> str | None:
    """The id of the request being served, or None outside a request."""
    return g.get("request_id") if has_request_context() else None


_base_record_factory = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Stamp every log record made while serving a request with that request's id."""
    record = _base_record_factory(*args, **kwargs)
    if has_request_context():  # elsewhere a caller may pass its own in `extra`
        record.request_id = g.get("request_id")
    return record


# What may look like a credential in a message that is not ours (gunicorn quotes a
# malformed header line whole: "Invalid HTTP Header: 'Authorization Bearer eyJ...'"): an
# Authorization value, a JWT or a mail link's token (both base64url JSON: "eyJ..."), a
# token= parameter. Replaced before the line is written.
SECRET_LOOKING = re.compile(
    r"(?i)(?P<scheme>bearer|basic)(?P<gap>[\s:=]+)[^\s'\",]+"
    r"|(?P<parameter>token=)[^\s&'\",]+"
    r"|eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)*"
)
REDACTED = "[redacted]"


def _redacted_match(match: "re.Match[str]") -> str:
    """A secret-looking match with its secret part replaced."""
    if match.group("scheme"):
        return f"{match.group('scheme')}{match.group('gap')}{REDACTED}"
    if match.group("parameter"):
        return f"{match.group('parameter')}{REDACTED}"
    return REDACTED


def redact(message: str) -> str:
    """The message with every credential-looking part replaced (see SECRET_LOOKING)."""
    return SECRET_LOOKING.sub(_redacted_match, message)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and the
    request fields of access lines. Nothing else of the record is written, and nothing in
    the message that looks like a credential (redact).

    Every request writes a line, so the line is made cheaply: one encoder made once (json.
    dumps with options makes a new one per call) and the time's text made once a second.
    """

    FIELDS = ("method", "path", "status", "duration_ms", "client_ip")
    encode = json.JSONEncoder(ensure_ascii=False).encode

    def __init__(self) -> None:
        super().__init__()
        # (whole second, its text): swapped whole, thread-safe
        self._second: tuple[int | None, str] = (None, "")

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (
                second,
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)),
            )
        line: dict[str, Any] = {
            "time": f"{cached[1]}.{int(record.msecs):03d}+00:00",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
        }
        fields = record.__dict__
        for key in self.FIELDS:
            if key in fields:
                line[key] = fields[key]
        return self.encode(line)


def new_request_id() -> str:
    """32 random hex digits, from the random module's generator.

    A request id must be unique, not secret: os.urandom would cost a system call on every
    request, during which a gthread worker hands its GIL to another thread (bench/README.md,
    "The rejection path"). The generator is seeded from os.urandom at start-up, and again
    in every forked gunicorn worker (the random module re-seeds itself after a fork).
    """
    return f"{random.getrandbits(128):032x}"


def request_id_of(environ: dict[str, Any]) -> str:
    """The client's X-Request-ID when it is sane, else a new one."""
    given = environ.get(REQUEST_ID_ENVIRON_KEY, "")
    return given if SANE_REQUEST_ID.fullmatch(given) else new_request_id()


def start_request() -> None:
    """Take the client's sane X-Request-ID or make one; start the clock."""
    g.request_id = request_id_of(request.environ)
    g.request_started = time.perf_counter()


def log_request(
    method: str,
    path: str,
    status: int,
    seconds: float,
    client_ip: str | None,
    request_id: str | None = None,
) -> None:
    """The request's one JSON access line (request_id: when no request context has it)."""
    extra: dict[str, Any] = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "client_ip": client_ip,
    }
    if request_id is not None:
        extra["request_id"] = request_id
    access_log.info("%s %s %s", method, path, status, extra=extra)


def finish_request(response: Response, quiet_endpoints: frozenset[str] = frozenset()) -> Response:
    """Echo the request id, count the request, write its log line (not for a success of
    one of `quiet_endpoints`: LOG_VERIFY_REQUESTS=false)."""
    # One context look-up, not one per field (Flask types `request` as the Request it
    # stands for; it is a LocalProxy).
    current = cast("LocalProxy[Request]", request)._get_current_object()
    request_id = g.get("request_id") or new_request_id()
    response.headers[REQUEST_ID_HEADER] = request_id
    status = response.status_code
    account_for_request(
        method=current.method,
        endpoint=current.endpoint,
        path=current.path,
        status=status,
        seconds=time.perf_counter() - g.get("request_started", time.perf_counter()),
        client_ip=current.remote_addr,
        logged=not (status < 400 and current.endpoint in quiet_endpoints),
        replayed=g.get("replayed", False),
    )
    return response


def account_for_request(
    *,
    method: str,
    endpoint: str | None,
    path: str,
    status: int,
    seconds: float,
    client_ip: str | None,
    request_id: str | None = None,
    logged: bool = True,
    replayed: bool = False,
) -> None:
    """What every answered request leaves behind, however it was answered (Flask's
    after-request hook, the /verify fast path): its metrics and, unless `logged` is
    False, its access line (request_id: when no request context holds it)."""
    metrics.record_request(method, endpoint, status, seconds, replayed)
    if logged and access_log.isEnabledFor(logging.INFO):
        log_request(method, path, status, seconds, client_ip, request_id)


def init_app(app: Flask) -> None:
    """Hook the request id, the log line and the metrics into every request."""
    logging.setLogRecordFactory(_record_with_request_id)
    app.before_request(start_request)
    quiet = frozenset() if app.config["LOG_VERIFY_REQUESTS"] else frozenset(QUIET_ENDPOINTS)
    app.after_request(functools.partial(finish_request, quiet_endpoints=quiet))
