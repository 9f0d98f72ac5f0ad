"""The audit trail: written with what it records, readable with `flask accounts audit`."""

import jwt
import sqlalchemy as sa

from app import accounts
from app.extensions import db
from app.models import AuditEvent, User
from tests.helpers import signup_body


def events(app, email=None):
    """(event, email, user_id, client_ip, request_id) oldest first."""
    with app.app_context():
        query = sa.select(AuditEvent).order_by(AuditEvent.id)
        if email:
            query = query.where(AuditEvent.email == email)
        return [
            (e.event, e.email, e.user_id, e.client_ip, e.request_id)
            for e in db.session.scalars(query)
        ]


def test_every_kind_of_event_is_recorded(app, api):
    body = signup_body()
    email = body["email"]
    user_id = api.signup("admin", body, headers={"X-Request-ID": "r-create"}).get_json()["data"][
        "user"
    ]["id"]
    api.signup("customer", body, headers={"X-Request-ID": "r-dup"})
    api.login(email, "Wrong@12345", headers={"X-Request-ID": "r-fail"})
    token = api.login(email, headers={"X-Request-ID": "r-ok"}).get_json()["data"]["access_token"]
    api.client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "r-out"}
    )
    api.login("nobody@example.org", "Wrong@12345", headers={"X-Request-ID": "r-unknown"})
    ip = "127.0.0.1"
    assert events(app) == [
        ("account_created", email, user_id, ip, "r-create"),
        ("signup_duplicate", email, None, ip, "r-dup"),
        ("login_failed", email, user_id, ip, "r-fail"),
        ("login_succeeded", email, user_id, ip, "r-ok"),
        ("tokens_revoked", email, user_id, ip, "r-out"),
        ("login_failed", "nobody@example.org", None, ip, "r-unknown"),
    ]


def test_event_is_in_the_same_transaction_as_the_account(app, api, monkeypatch):
    """When the account's transaction fails, its audit event is not left behind."""
    from app import repository

    token = api.signup("admin").get_json()["data"]["access_token"]
    iss = jwt.decode(token, options={"verify_signature": False})["iss"]
    monkeypatch.setattr(repository.sessions, "new_credential_key", lambda: iss)
    assert api.signup("admin").status_code == 500
    assert [e[0] for e in events(app)] == ["account_created"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_cli_actions_are_recorded_as_cli(app, runner, api):
    body = signup_body()
    api.signup("customer", body)
    runner.invoke(args=["accounts", "revoke-tokens", body["email"]])
    assert events(app, body["email"])[-1][0] == "tokens_revoked"
    assert events(app, body["email"])[-1][3] == "cli"


def test_audit_command(app, runner, api):
    one, two = signup_body(), signup_body()
    api.signup("admin", one)
    api.signup("customer", two)
    api.login(two["email"], "Wrong@12345")
    everything = runner.invoke(args=["accounts", "audit"])
    assert everything.exit_code == 0
    lines = everything.output.strip().splitlines()
    assert [line.split("\t")[1] for line in lines] == [
        "login_failed",
        "account_created",
        "account_created",
    ]
    mine = runner.invoke(args=["accounts", "audit", "--email", one["email"].upper()])
    assert [line.split("\t")[1:3] for line in mine.output.strip().splitlines()] == [
        ["account_created", one["email"]]
    ]
    assert "argon2" not in everything.output


def test_audit_context_outside_a_request_is_the_cli(app):
    with app.app_context():
        assert accounts.audit_context().client_ip == "cli"
