"""Strict reading of JSON request bodies, as the contract's INVALID_JSON row describes.

Refused: bodies that are not UTF-8, not JSON, not an object, that repeat a key, use
NaN/Infinity, or nest deeper than MAX_DEPTH. Python's json module accepts most of those
by default, so each is switched off here.
"""

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

from flask import current_app, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import (
    JSON_MIMETYPE,
    BadRequest,
    InvalidJSON,
    UnsupportedMediaType,
    ValidationFailed,
)
from app.strict_json import RepeatedKey, object_without_duplicates

MAX_DEPTH = 32


def _refuse_constant(name: str) -> NoReturn:
    """parse_constant hook: NaN, Infinity and -Infinity are not JSON."""
    raise InvalidJSON(f"The request body uses {name}, which is not valid JSON.")


def _parse_int(digits: str) -> int | Decimal:
    """Integers of any length: Python refuses to convert more than 4300 digits to int,
    but such a number is still valid JSON (and a wrong type, if it is one of our fields)."""
    return int(digits) if len(digits) <= 4000 else Decimal(digits)


def _depth(value: Any) -> int:
    """Return how deeply arrays and objects nest in a parsed value (iteratively)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse bytes into a dict, or raise InvalidJSON."""
    try:
        text = raw.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=object_without_duplicates,
            parse_constant=_refuse_constant,
            parse_int=_parse_int,
        )
    except RepeatedKey:
        raise InvalidJSON("The request body repeats a key.") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidJSON() from None
    if not isinstance(value, dict):
        raise InvalidJSON("The request body must be a JSON object.")
    # Fewer opening brackets than the limit cannot nest deeper than it: skip the walk.
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise InvalidJSON(f"The request body nests deeper than {MAX_DEPTH} levels.")
    return value


def require_json_content_type() -> None:
    """Raise 415 unless the body is declared as application/json (UTF-8)."""
    if request.mimetype != JSON_MIMETYPE:
        raise UnsupportedMediaType()
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("The body must be UTF-8 encoded application/json.")


def read_body() -> bytes:
    """The raw body; 413 when it is over MAX_CONTENT_LENGTH, however it was sent.

    Werkzeug refuses an over-long Content-Length, but silently cuts a chunked body at the
    limit; so a chunked body is read to one byte past the limit here to tell the two apart.
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and request.environ.get("wsgi.input_terminated"):
        try:
            data: bytes = request.environ["wsgi.input"].read(limit + 1)
        except Exception:  # noqa: BLE001 - each server has its own errors for a broken
            # chunked encoding or a client that went away; all mean "no readable body",
            # which is HTTP's failure, not JSON's: the contract's BAD_REQUEST
            raise BadRequest(
                "The request body could not be read (broken chunked encoding)."
            ) from None
        if len(data) > limit:
            raise RequestEntityTooLarge()
        return data
    return request.get_data(cache=False)


def read_json_object() -> dict[str, Any]:
    """Check the content type, read the body (413 past the limit) and parse it strictly."""
    require_json_content_type()
    return parse_json_object(read_body())


@dataclass(frozen=True)
class LoadedBody:
    """A request body read and loaded by a schema."""

    fields: dict[str, Any]  # what the schema loaded (trimmed, normalised)
    body: dict[str, Any]  # the parsed JSON object as the client sent it


def load_fields(
    schema: Schema, body: dict[str, Any], header_errors: dict[str, Any] | None = None
) -> LoadedBody:
    """Load a body already read with a schema; every broken rule of every field (and of
    the headers the caller checked) is reported at once (400 VALIDATION_ERROR)."""
    errors = dict(header_errors or {})
    fields: dict[str, Any] = {}
    try:
        fields = schema.load(body)
    except ValidationError as error:
        errors.update(error.messages_dict)
    if errors:
        raise ValidationFailed(fields=errors)
    return LoadedBody(fields, body)


# The attribute on a view that says which schema loads its body (app.api.docs reads it).
BODY_ATTRIBUTE = "openapi_body"
R = TypeVar("R")


def body(
    schema_class: type[Schema],
    *,
    before_rules: Callable[[dict[str, Any]], dict[str, list[str]] | None] | None = None,
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorator, as microblog-api's @body: read the JSON body strictly, load it with the
    schema (one instance, made here) and call the view with the LoadedBody first. The
    OpenAPI document takes the request body (and its 400/413/415 answers) from it.

    `before_rules`, if given, runs after the body is read and before its rules, with the
    body as sent: it may refuse the request (a permission check, a 404 for what the path
    names) or return errors of its own (a header's, a role id that is not the company's)
    to be reported with the fields'."""
    schema = schema_class()

    def decorate(view: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            raw = read_json_object()
            extra = before_rules(raw) if before_rules is not None else None
            return view(load_fields(schema, raw, extra), *args, **kwargs)

        setattr(wrapper, BODY_ATTRIBUTE, schema_class)
        return wrapper

    return decorate


def load_query(schema: Schema) -> dict[str, Any]:
    """A query string loaded by a schema (a parameter given twice is refused: which one
    would count?); every broken rule at once (400 VALIDATION_ERROR)."""
    repeated = {
        name: ["Give this parameter once."]
        for name, values in request.args.lists()
        if len(values) > 1 and name in schema.fields
    }
    return load_fields(schema, request.args.to_dict(flat=True), repeated).fields
