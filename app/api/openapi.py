"""The openapi blueprint: the OpenAPI 3 document, built from the app's own routes."""

from flask import Blueprint, Response, current_app

from app.api.docs import build_spec, documented
from app.api.responses import raw_json

bp = Blueprint("openapi", __name__)

EXTENSION_KEY = "lumyri_openapi"


@bp.get("/api/v1/openapi.json")
@documented(
    summary="This document",
    tags=["operations"],
    response=(200, {"type": "object"}, "OpenAPI 3 document"),
)
def openapi_document() -> Response:
    """Serve the document (built once per app)."""
    extensions = current_app.extensions
    if EXTENSION_KEY not in extensions:
        extensions[EXTENSION_KEY] = build_spec(current_app)
    return raw_json(extensions[EXTENSION_KEY])
