"""Secrets stay secret: no password, token, hash or key in any log line."""

import logging

import jwt
import pytest
import sqlalchemy as sa

from app import accounts
from app.extensions import db
from app.models import User
from app.observability import JsonFormatter
from app.tokens import credential_secret
from tests.helpers import signup_body

SECRET_PASSWORD = "Sup3r$ecret-Passw0rd"


@pytest.fixture
def all_logs(caplog):
    """Capture every log record, SQL statements included (as if echo were on)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    return caplog


def logged_text(caplog):
    """Every captured line as the handler formats it, tracebacks included."""
    handler = caplog.handler
    return "\n".join(handler.format(record) for record in caplog.records)


def test_no_secret_reaches_a_log_line(app, api, all_logs, monkeypatch):
    body = signup_body(password=SECRET_PASSWORD)
    created = api.signup("admin", body)
    token = created.get_json()["data"]["access_token"]
    assert api.signup("customer", body).status_code == 409
    assert api.login(body["email"], "Wrong-" + SECRET_PASSWORD).status_code == 401
    assert api.login("nobody@example.org", SECRET_PASSWORD).status_code == 401
    assert api.login(body["email"], SECRET_PASSWORD).status_code == 200
    assert api.me(token).status_code == 200

    def failing(**_fields):
        raise RuntimeError(f"boom with {SECRET_PASSWORD} and {token}")

    monkeypatch.setattr(accounts.repository, "create_account", failing)
    assert api.signup("customer", signup_body(password=SECRET_PASSWORD)).status_code == 500

    with app.app_context():
        password_hash = db.session.scalar(
            sa.select(User.password_hash).where(User.email == body["email"])
        )
        derived = credential_secret(jwt.decode(token, options={"verify_signature": False})["iss"])
    text = logged_text(all_logs)
    assert "INSERT INTO users" in text  # SQL was logged, so parameters had a chance to leak
    assert "RuntimeError" in text  # the 500 was logged
    for secret in (
        SECRET_PASSWORD,
        token,
        token.split(".")[2],
        password_hash,
        app.config["SECRET_KEY"],
    ):
        assert secret not in text
    assert derived.hex() not in text
    assert "$argon2id$" not in text


@pytest.mark.parametrize(
    "message",
    [
        "Invalid HTTP Header: 'Authorization Bearer {token}'",
        "Invalid HTTP Header: 'authorization: bearer {token}'",
        "a link came back: https://app.example/reset-password?token={token}&x=1",
        "odd value {token} seen",
    ],
)
def test_a_message_quoting_a_token_is_written_redacted(app, api, caplog, message):
    token = api.signup("customer", signup_body()).get_json()["data"]["access_token"]
    formatter = JsonFormatter()
    record = logging.LogRecord("gunicorn.error", logging.WARNING, __file__, 1, message, (), None)
    record.msg = message.format(token=token)
    line = formatter.format(record)
    assert token not in line and token.split(".")[2] not in line and "[redacted]" in line


def test_basic_credentials_are_redacted_too():
    record = logging.LogRecord(
        "gunicorn.error", logging.WARNING, __file__, 1, "Authorization Basic dGlja2V0czpz", (), None
    )
    assert "dGlja2V0czpz" not in JsonFormatter().format(record)


def test_an_unhandled_database_error_names_the_apps_frame_not_the_write_gate(
    app, api, caplog, monkeypatch
):
    from app import repository

    token = api.signup("admin").get_json()["data"]["access_token"]
    taken = jwt.decode(token, options={"verify_signature": False})["iss"]
    monkeypatch.setattr(repository.sessions, "new_credential_key", lambda: taken)
    with caplog.at_level(logging.ERROR, logger="app.errors"):
        assert api.signup("admin").status_code == 500
    (line,) = [r.getMessage() for r in caplog.records if r.name == "app.errors"]
    assert "IntegrityError at " in line
    assert "/app/repository/core.py:" in line  # the INSERT that failed
    assert "sqlite_gate" not in line and "postgres_budget" not in line
