"""The health blueprint: liveness and readiness probes."""

import logging

from flask import Blueprint, Response

from app import repository
from app.api.docs import documented
from app.api.responses import success
from app.error_handlers import describe_without_secrets
from app.errors import ServiceUnavailable
from app.schemas import StatusEnvelopeSchema

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
@documented(
    summary="Liveness",
    tags=["operations"],
    response=(200, StatusEnvelopeSchema, "Serving"),
)
def healthz() -> Response:
    """200 while the process serves; never touches the database."""
    return success({"status": "ok"})


@bp.get("/readyz")
@documented(
    summary="Readiness: the database answers",
    tags=["operations"],
    response=(200, StatusEnvelopeSchema, "Ready"),
    errors=[ServiceUnavailable],
)
def readyz() -> Response:
    """200 when the migrated database answers, 503 in the envelope when it does not."""
    try:
        repository.ping()
    except Exception as error:  # noqa: BLE001 - any failure to answer means "not ready"
        repository.rollback()
        log.warning("readiness check failed: %s", describe_without_secrets(error))
        raise ServiceUnavailable() from None
    return success({"status": "ready"})
