"""The metrics blueprint: the Prometheus text format, summed over all workers."""

import os

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from app.api.docs import documented

bp = Blueprint("metrics", __name__)


def registry() -> CollectorRegistry:
    """Every worker's samples in multiprocess mode, this process's otherwise."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return collected


@bp.get("/metrics")
@documented(
    summary="Prometheus metrics (text format), summed over all workers",
    description="lumyri_http_requests_total{method,endpoint,status}, "
    "lumyri_http_request_duration_seconds (histogram), "
    "lumyri_signups_total{role,outcome} with outcome created, duplicate, "
    "invalid, rate_limited or replayed (an idempotent retry answered from the "
    "first response), lumyri_password_hash_seconds (histogram).",
    tags=["operations"],
    response=(200, {"type": "string"}, "Prometheus text exposition format"),
    content_type="text/plain",
)
def metrics() -> Response:
    """Prometheus text format, with prometheus_client's content type exactly as it is
    (`mimetype=` would add a second charset parameter, which Prometheus 3 refuses)."""
    return Response(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
