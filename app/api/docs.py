"""Each endpoint documents itself; the OpenAPI 3 document is built from the app's routes.

A view declares, beside itself, what the document says of it:

    @bp.post("/login")
    @documented(
        summary="Log in",
        tags=["sessions"],
        body=LoginRequestSchema,
        response=(200, AuthEnvelopeSchema, "Logged in"),
        errors=[*BODY_ERRORS, InvalidCredentials, RateLimited, *SERVER_ERRORS],
        no_store=True,
    )
    def login(): ...

`build_spec(app)` walks `app.url_map`, reads each view's declaration and writes the
operation with apispec's marshmallow plugin: bodies and responses come from the
marshmallow schemas, the error responses from app.errors (one definition per code).
This module names no API path. microblog-api's apifairy decorators are the model;
apifairy and flask-smorest both parse bodies with webargs, which would replace the
strict JSON reader (duplicate keys, depth, NaN) and its all-at-once errors, so the
declaration here is a small decorator that only documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema

from app.api.body import BODY_ATTRIBUTE
from app.errors import (
    JSON_MIMETYPE,
    APIError,
    InternalError,
    InvalidJSON,
    InvalidToken,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from app.schemas import ErrorEnvelopeSchema
from app.tokens import BEARER_ATTRIBUTE

ATTRIBUTE = "openapi_operation"
# What every endpoint that reads a JSON body may answer, and every one that uses the
# database.
BODY_ERRORS: tuple[type[APIError], ...] = (
    InvalidJSON,
    ValidationFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
)
SERVER_ERRORS: tuple[type[APIError], ...] = (InternalError, ServiceUnavailable)
NO_STORE = {"Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}}}
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]

SchemaRef = type[Schema] | dict[str, Any] | None
View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says of one view."""

    summary: str
    tags: Sequence[str]
    response: tuple[int, SchemaRef, str]
    description: str | None = None
    body: type[Schema] | None = None
    errors: Sequence[type[APIError]] = ()
    parameters: Sequence[dict[str, Any]] = ()
    bearer: bool = False
    no_store: bool = False
    response_headers: dict[str, Any] = field(default_factory=dict)
    content_type: str = JSON_MIMETYPE
    extra: dict[str, Any] = field(default_factory=dict)


def documented(**declaration: Any) -> Callable[[View], View]:
    """Attach the view's OpenAPI declaration (see Operation) to it. What the decorators
    below it say is added: @body's schema (and the answers to a bad body), and
    @require_access_token's bearer security (and its 401)."""

    def attach(view: View) -> View:
        details = dict(declaration)
        errors = list(details.pop("errors", ()))
        schema = getattr(view, BODY_ATTRIBUTE, None)
        if schema is not None:
            details["body"] = schema
            errors = [*BODY_ERRORS, *errors]
        if getattr(view, BEARER_ATTRIBUTE, False):
            details["bearer"] = True
            errors = [InvalidToken, *errors]
        setattr(view, ATTRIBUTE, Operation(**details, errors=errors))
        return view

    return attach


def _content(schema: SchemaRef, content_type: str = JSON_MIMETYPE) -> dict[str, Any]:
    """A content object for a schema class (apispec makes it a $ref) or an inline schema."""
    return {content_type: {"schema": schema}}


def error_responses(errors: Iterable[type[APIError]]) -> dict[str, Any]:
    """One envelope response per status; the codes sharing a status are named together,
    and a header is required only when every one of them sends it."""
    by_status: dict[int, list[type[APIError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    responses: dict[str, Any] = {}
    for status, codes in sorted(by_status.items()):
        response: dict[str, Any] = {
            "description": "; ".join(code.description for code in codes),
            "content": _content(ErrorEnvelopeSchema),
        }
        headers: dict[str, Any] = {}
        for code in codes:
            for name, header in code.documented_headers.items():
                required = all(name in other.documented_headers for other in codes)
                headers[name] = header if required else {**header, "required": False}
        if headers:
            response["headers"] = headers
        responses[str(status)] = response
    return responses


def operation_object(operation: Operation) -> dict[str, Any]:
    """The OpenAPI operation object of a declaration."""
    status, schema, description = operation.response
    success: dict[str, Any] = {"description": description}
    if schema is not None:
        success["content"] = _content(schema, operation.content_type)
    headers = {**operation.response_headers, **(NO_STORE if operation.no_store else {})}
    if headers:
        success["headers"] = headers
    result: dict[str, Any] = {"summary": operation.summary}
    if operation.description:
        result["description"] = operation.description
    result["tags"] = list(operation.tags)
    if operation.bearer:
        result["security"] = BEARER
    if operation.parameters:
        result["parameters"] = list(operation.parameters)
    if operation.body is not None:
        result["requestBody"] = {"required": True, "content": _content(operation.body)}
    result["responses"] = {str(status): success, **error_responses(operation.errors)}
    result.update(operation.extra)
    return result


def path_parameters(path: str) -> list[dict[str, Any]]:
    """The parameters an OpenAPI path names: every one is an id (a UUID; another string
    names nothing: 404)."""
    return [
        {
            "in": "path",
            "name": name,
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        }
        for name in re.findall(r"\{(\w+)\}", path)
    ]


def openapi_path(rule: str) -> str:
    """A Werkzeug rule as an OpenAPI path (`<name>` and `<int:name>` become `{name}`)."""
    parts = []
    for piece in rule.split("/"):
        if piece.startswith("<") and piece.endswith(">"):
            piece = "{" + piece[1:-1].split(":")[-1] + "}"
        parts.append(piece)
    return "/".join(parts)


def documented_operations(app: Flask) -> dict[str, dict[str, Operation]]:
    """Every route's declared operations, by path and method, read from the app."""
    paths: dict[str, dict[str, Operation]] = {}
    for rule in app.url_map.iter_rules():
        operation = getattr(app.view_functions[rule.endpoint], ATTRIBUTE, None)
        if operation is None:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(openapi_path(rule.rule), {})[method.lower()] = operation
    return paths


def build_spec(app: Flask) -> dict[str, Any]:
    """Generate the OpenAPI document of the app's routes as a dict."""
    spec = APISpec(
        title="Lumyri accounts",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Sign-up and sessions for the Lumyri platform."},
    )
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    spec.components.security_scheme("introspectionClient", {"type": "http", "scheme": "basic"})
    for path, operations in documented_operations(app).items():
        objects = {method: operation_object(op) for method, op in operations.items()}
        for operation in objects.values():
            operation["parameters"] = [*path_parameters(path), *operation.get("parameters", [])]
            if not operation["parameters"]:
                del operation["parameters"]
        spec.path(path=path, operations=objects)
    return spec.to_dict()
