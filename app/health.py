"""Liveness and readiness probes."""

import logging

from flask import Blueprint

from app import repository
from app.errors import ServiceUnavailable, describe_without_secrets
from app.responses import success

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    """200 while the process serves; never touches the database."""
    return success({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """200 when the migrated database answers, 503 in the envelope when it does not."""
    try:
        repository.ping()
    except Exception as error:  # noqa: BLE001 - any failure to answer means "not ready"
        repository.rollback()
        log.warning("readiness check failed: %s", describe_without_secrets(error))
        raise ServiceUnavailable() from None
    return success({"status": "ready"})
