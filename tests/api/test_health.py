"""Liveness, readiness, and 503 when the database cannot be reached."""

import time

import pytest

from app import create_app
from app.extensions import db
from tests.fixtures import postgres_schema
from tests.helpers import SIGNUP_PATHS, error_of, signup_body

UNREACHABLE = {
    # Nothing listens on port 1: the connection is refused at once.
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:1/test",
    # A file in a folder that does not exist cannot be opened.
    "sqlite": "sqlite:////nonexistent-folder/for/lumyri/tests.db",
}


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"error": None, "data": {"status": "ok"}}


def test_readyz(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"error": None, "data": {"status": "ready"}}


@pytest.fixture(params=sorted(UNREACHABLE))
def down_client(request):
    """A client whose database cannot be reached."""
    return create_app({"SQLALCHEMY_DATABASE_URI": UNREACHABLE[request.param]}).test_client()


def test_readyz_503_when_database_is_down(down_client):
    started = time.monotonic()
    response = down_client.get("/readyz")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert error_of(response)["code"] == "SERVICE_UNAVAILABLE"


def test_healthz_stays_200_when_database_is_down(down_client):
    assert down_client.get("/healthz").status_code == 200


@pytest.mark.parametrize("path", SIGNUP_PATHS.values())
def test_signup_503_when_database_is_down(down_client, path, caplog):
    started = time.monotonic()
    response = down_client.post(path, json=signup_body())
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "SERVICE_UNAVAILABLE"
    assert "127.0.0.1" not in response.get_data(as_text=True)
    assert "SELECT" not in caplog.text and "Password@123" not in caplog.text


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def unmigrated_client(request, tmp_path):
    """A client on a reachable database whose schema was never created."""
    if request.param == "sqlite":
        yield create_app(
            {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.db'}"}
        ).test_client()
        return
    with postgres_schema(request.getfixturevalue("postgres_server")) as url:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url})
        yield app.test_client()
        with app.app_context():
            db.engine.dispose()


def test_readyz_503_when_database_is_not_migrated(unmigrated_client):
    response = unmigrated_client.get("/readyz")
    assert response.status_code == 503
    assert error_of(response)["code"] == "SERVICE_UNAVAILABLE"


def test_validation_does_not_need_the_database(down_client):
    response = down_client.post(SIGNUP_PATHS["admin"], json={"email": "x"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "VALIDATION_ERROR"
