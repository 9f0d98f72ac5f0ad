"""The OpenAPI document: valid, complete, and honoured under fuzzing (schemathesis)."""

import functools
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.docs import openapi_path
from tests.helpers import examples

OPENAPI_PATH = "/api/v1/openapi.json"
FUZZ_EXAMPLES = examples(60)
FUZZ_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def document(client):
    """The served document."""
    response = client.get(OPENAPI_PATH)
    assert response.status_code == 200
    return response.get_json()


def test_document_is_valid_openapi_3(document):
    assert document["openapi"].startswith("3.")
    validate(document)


def test_every_route_is_documented(app, document):
    routes = {
        (openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented
    for path, item in document["paths"].items():  # every {id} of a path is declared
        named = set(re.findall(r"\{(\w+)\}", path))
        for operation in item.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == named, path


def test_request_bodies_come_from_the_schemas(document):
    signup = document["components"]["schemas"]["SignupRequest"]
    assert signup["required"] == ["email", "first_name", "last_name", "password"]
    assert signup["properties"]["password"]["minLength"] == 9
    assert signup["properties"]["password"]["maxLength"] == 128
    assert signup["properties"]["first_name"]["maxLength"] == 100
    assert "password" not in document["components"]["schemas"]["User"]["properties"]


def test_bearer_auth_is_described(document):
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert document["paths"]["/api/v1/auth/me"]["get"]["security"] == [{"bearerAuth": []}]


def test_every_status_uses_the_envelope(document):
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}


@functools.cache
def app_on_no_database():
    """An app whose routes and document are the tested app's (nothing is stored): one
    per process, for the fuzz targets, the document and the literals."""
    from app import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def fuzz_targets():
    """(path, method, mode) for every documented operation: valid requests for all, and
    schema-breaking ones for those that take a body (the others have nothing to break)."""
    from app.api.docs import documented_operations

    app = app_on_no_database()
    return [
        pytest.param(path, method.upper(), mode, id=f"{method.upper()} {path} {mode.value}")
        for path, item in documented_operations(app).items()
        for method, operation in item.items()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if mode is GenerationMode.POSITIVE or operation.body is not None
    ]


@schemathesis.python.constants
def service_code():
    """The service's own literals, which the generated values draw on: harvested once per
    process from an app's code (from_wsgi's own harvest did it again for each test's app,
    a third of a fuzz test's fixed cost)."""
    return app_on_no_database()


@pytest.fixture(scope="module")
def served_document():
    """The document as an app serves it, fetched once for the fuzz tests (building it
    takes an app about 70 ms; each test's own app serves the same one)."""
    response = app_on_no_database().test_client().get(OPENAPI_PATH)
    assert response.status_code == 200
    return response.get_json()


@pytest.mark.parametrize(("path", "method", "mode"), fuzz_targets())
def test_fuzz(app, database_url, served_document, path, method, mode):
    """Schemathesis calls the app in-process with generated requests (fixed seed, bounded
    examples): no 5xx, no undocumented status, every response matches its schema. On
    Postgres a quarter of the examples: what differs there is what the database refuses
    (a NUL byte, a length), not the parsing, and the suite's time is bounded."""
    schema = schemathesis.openapi.from_dict(served_document)
    operation = schema[path][method]
    strategy = operation.as_strategy(generation_mode=mode)
    # What from_wsgi(OPENAPI_PATH, app) sets, set after the strategy is built: the
    # literals then come from service_code, harvested once, not from this app again.
    schema.app = operation.app = app
    on_sqlite = database_url.startswith("sqlite")

    @given(case=strategy)
    @settings(
        max_examples=FUZZ_EXAMPLES if on_sqlite else max(10, FUZZ_EXAMPLES // 4),
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        case.call_and_validate(checks=FUZZ_CHECKS)

    check()
