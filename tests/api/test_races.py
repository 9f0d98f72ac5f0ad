"""Changes of an account racing its deletion: never a 5xx, never two answers where the
contract allows one. The losing request is held at a point where the winner must commit
first (a patched step sleeps), so each race ends the same way on every run; on Postgres
the two run in real concurrent transactions."""

import time

import pytest
import sqlalchemy as sa
from flask import request

from app import passwords, repository
from app.extensions import db
from app.models import AuditEvent, OutboxMail, User
from tests.helpers import Api, bearer, error_of, fresh_email, signup_body, together

DELETE = "/api/v1/auth/me/delete"


@pytest.fixture
def owner(api):
    """A new admin account: its sign-up body and answer."""
    body = signup_body()
    return body, api.signup("admin", body).get_json()["data"]


def delete(app, owner):
    """POST /me/delete with the owner's token and password."""
    body, data = owner
    return lambda: app.test_client().post(
        DELETE, json={"password": body["password"]}, headers=bearer(data["access_token"])
    )


def slow_for(monkeypatch, module, name, path_suffix, seconds=0.4):
    """Make `module.name` sleep first, only in requests to a path ending in `path_suffix`."""
    real = getattr(module, name)

    def slowed(*args, **kwargs):
        if request.path.endswith(path_suffix):
            time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, slowed)


def assert_invalid_token(response):
    """401 INVALID_TOKEN in the envelope."""
    assert response.status_code == 401, response.get_data(as_text=True)
    assert error_of(response)["code"] == "INVALID_TOKEN"


def test_an_email_change_losing_to_the_deletion_is_401_not_500(app, owner, monkeypatch):
    body, data = owner
    # The change proves the password, then waits: the deletion commits meanwhile.
    slow_for(monkeypatch, passwords, "verify_password", "/email/change")
    change = lambda: app.test_client().post(  # noqa: E731
        "/api/v1/auth/email/change",
        json={"new_email": fresh_email("new"), "password": body["password"]},
        headers=bearer(data["access_token"]),
    )
    changed, deleted = together(change, delete(app, owner))
    assert deleted.status_code == 204
    assert_invalid_token(changed)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
        kinds = db.session.scalars(sa.select(OutboxMail.kind)).all()
    assert kinds == ["account_deleted"]  # no confirmation mail for an account that is gone


def test_a_logout_losing_to_the_deletion_is_401_not_500(app, owner, monkeypatch):
    _, data = owner
    slow_for(monkeypatch, repository, "end_sessions", "/logout")
    logout = lambda: app.test_client().post(  # noqa: E731
        "/api/v1/auth/logout", headers=bearer(data["access_token"])
    )
    logged_out, deleted = together(logout, delete(app, owner))
    assert deleted.status_code == 204
    assert_invalid_token(logged_out)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
        events = db.session.scalars(sa.select(AuditEvent.event)).all()
    assert "tokens_revoked" not in events


def test_two_deletions_at_once_one_204_one_401_one_mail(app, owner, monkeypatch):
    # Both prove the password before either deletes.
    real_verify = passwords.verify_password

    def slow_verify(*args, **kwargs):
        result = real_verify(*args, **kwargs)
        time.sleep(0.3)
        return result

    monkeypatch.setattr(passwords, "verify_password", slow_verify)
    results = together(delete(app, owner), delete(app, owner))
    assert sorted(r.status_code for r in results) == [204, 401]
    assert_invalid_token(next(r for r in results if r.status_code == 401))
    with app.app_context():
        farewells = db.session.scalars(
            sa.select(OutboxMail.kind).where(OutboxMail.kind == "account_deleted")
        ).all()
        deleted_events = db.session.scalars(
            sa.select(AuditEvent.event).where(AuditEvent.event == "account_deleted")
        ).all()
    assert (len(farewells), len(deleted_events)) == (1, 1)


def test_every_event_that_holds_the_address_loses_it_with_the_account(app, api, owner):
    body, data = owner
    assert api.signup("customer", body).status_code == 409  # a duplicate, with the client IP
    assert api.login(body["email"], "Wrong!Passw0rd").status_code == 401
    with app.app_context():
        duplicate = db.session.execute(
            sa.select(AuditEvent.user_id, AuditEvent.email, AuditEvent.client_ip).where(
                AuditEvent.event == "signup_duplicate"
            )
        ).one()
    assert duplicate == (None, body["email"], "127.0.0.1")  # no user id: scrubbed by address
    assert (
        api.client.post(
            DELETE, json={"password": body["password"]}, headers=bearer(data["access_token"])
        ).status_code
        == 204
    )
    with app.app_context():
        rows = db.session.execute(
            sa.select(AuditEvent.event, AuditEvent.email, AuditEvent.client_ip)
        ).all()
    assert {event for event, _, _ in rows} >= {"signup_duplicate", "login_failed"}
    assert [row for row in rows if row.email or row.client_ip] == []


def test_a_new_account_on_the_address_keeps_its_own_events(app, api, owner):
    body, data = owner
    api.client.post(
        DELETE, json={"password": body["password"]}, headers=bearer(data["access_token"])
    )
    again = Api(app.test_client()).signup("customer", body)
    assert again.status_code == 201
    with app.app_context():
        created = db.session.scalars(
            sa.select(AuditEvent.email).where(AuditEvent.event == "account_created")
        ).all()
    assert created.count(body["email"]) == 1  # the new account's, the old one's scrubbed
