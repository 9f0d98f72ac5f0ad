"""CORS for the website: only the origins in CORS_ORIGINS, preflight answered."""

import os
import subprocess
import sys

import pytest

from app import create_app
from tests.helpers import SIGNUP_PATHS, signup_body

WEBSITE = "https://app.lumyri.example"


@pytest.fixture
def cors_client():
    """A client of an app that lets the website call it."""
    return create_app(
        {"SQLALCHEMY_DATABASE_URI": "sqlite://", "CORS_ORIGINS": [WEBSITE]}
    ).test_client()


def preflight(client, origin):
    """The browser's OPTIONS before a JSON POST to admin sign-up."""
    return client.options(
        SIGNUP_PATHS["admin"],
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type, Idempotency-Key",
        },
    )


def test_preflight_from_the_website_is_allowed(cors_client):
    response = preflight(cors_client, WEBSITE)
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == WEBSITE
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "content-type" in allowed and "idempotency-key" in allowed


def test_preflight_from_another_origin_gets_no_grant(cors_client):
    response = preflight(cors_client, "https://evil.example")
    assert "Access-Control-Allow-Origin" not in response.headers


def test_actual_request_carries_the_grant_and_exposes_the_request_id(cors_client):
    response = cors_client.post(
        SIGNUP_PATHS["admin"], json={"email": "x"}, headers={"Origin": WEBSITE}
    )
    assert response.status_code == 400
    assert response.headers["Access-Control-Allow-Origin"] == WEBSITE
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]


def test_no_origin_is_allowed_by_default(client):
    response = client.post(SIGNUP_PATHS["admin"], json=signup_body(), headers={"Origin": WEBSITE})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Origin" not in preflight(client, WEBSITE).headers


def test_origins_come_from_the_environment():
    code = "from config import Config; print(Config.CORS_ORIGINS)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "CORS_ORIGINS": f" {WEBSITE} , https://admin.lumyri.example"},
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        check=True,
    )
    assert result.stdout.strip() == str([WEBSITE, "https://admin.lumyri.example"])
