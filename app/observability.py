"""Request ids, one JSON log line per request, and request metrics."""

import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime

from flask import g, has_request_context, request

from app import metrics

access_log = logging.getLogger("app.access")

REQUEST_ID_HEADER = "X-Request-ID"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def current_request_id():
    """The id of the request being served, or None outside a request."""
    return g.get("request_id") if has_request_context() else None


_base_record_factory = logging.getLogRecordFactory()


def _record_with_request_id(*args, **kwargs):
    """Stamp every log record made while serving a request with that request's id."""
    record = _base_record_factory(*args, **kwargs)
    if not hasattr(record, "request_id"):
        record.request_id = current_request_id()
    return record


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and the
    request fields of access lines. Nothing else of the record is written."""

    FIELDS = ("method", "path", "status", "duration_ms", "client_ip")

    def format(self, record):
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        line.update({key: getattr(record, key) for key in self.FIELDS if hasattr(record, key)})
        return json.dumps(line, ensure_ascii=False)


def start_request():
    """Take the client's sane X-Request-ID or make one; start the clock."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


def finish_request(response):
    """Echo the request id, count the request, write its log line."""
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    seconds = time.perf_counter() - g.get("request_started", time.perf_counter())
    metrics.record_request(request.method, request.endpoint, response.status_code, seconds)
    access_log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 2),
            "client_ip": request.remote_addr,
        },
    )
    return response


def init_app(app):
    """Hook the request id, the log line and the metrics into every request."""
    logging.setLogRecordFactory(_record_with_request_id)
    app.before_request(start_request)
    app.after_request(finish_request)
