"""The metrics blueprint: the Prometheus text format, summed over all workers."""

import logging
import os
from collections.abc import Iterator

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from app import repository
from app.api.docs import documented
from app.error_handlers import describe_without_secrets

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)


def registry() -> CollectorRegistry:
    """Every worker's samples in multiprocess mode, this process's otherwise."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
    return collected


class OutboxCollector:
    """lumyri_mail_outbox_pending, counted in the database when scraped: the same for
    every worker and instance, so Prometheus can take any one's (max, not sum)."""

    def collect(self) -> Iterator[Metric]:
        """The gauge, or nothing when the database cannot be asked."""
        try:
            pending = repository.pending_mail_count()
        except Exception as error:  # noqa: BLE001 - the other metrics are still worth serving
            repository.rollback()
            log.warning("outbox not counted: %s", describe_without_secrets(error))
            return
        yield GaugeMetricFamily(
            "lumyri_mail_outbox_pending", "Mails waiting to go out (all instances).", pending
        )


def outbox_registry() -> CollectorRegistry:
    """A registry of the outbox gauge alone."""
    collected = CollectorRegistry(auto_describe=False)
    collected.register(OutboxCollector())
    return collected


@bp.get("/metrics")
@documented(
    summary="Prometheus metrics (text format), summed over all workers",
    description="lumyri_http_requests_total{method,endpoint,status}, "
    "lumyri_http_request_duration_seconds (histogram), "
    "lumyri_signups_total{role,outcome} with outcome created, duplicate, "
    "invalid, rate_limited or replayed (an idempotent retry answered from the "
    "first response), lumyri_password_hash_seconds (histogram), "
    "lumyri_password_hash_cpu_seconds_total{operation} (argon2's CPU on the calling "
    "thread, hash or verify), "
    "lumyri_token_checks_total{endpoint,outcome}, lumyri_mails_total{kind,outcome} with "
    "outcome sent, failed, suppressed, superseded or retried, lumyri_mail_outbox_pending.",
    tags=["operations"],
    response=(200, {"type": "string"}, "Prometheus text exposition format"),
    content_type="text/plain",
)
def metrics() -> Response:
    """Prometheus text format, with prometheus_client's content type exactly as it is
    (`mimetype=` would add a second charset parameter, which Prometheus 3 refuses)."""
    text = generate_latest(registry()) + generate_latest(outbox_registry())
    return Response(text, content_type=CONTENT_TYPE_LATEST)
