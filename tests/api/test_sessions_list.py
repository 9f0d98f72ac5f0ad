"""Sessions (the contract's "Sessions and two-factor", "Sessions"): one per answer that
hands out a token, listed, ended one at a time or by log-out's scope, capped, purged,
and their last use kept to within 5 minutes without a write per request."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app import accounts, repository
from app.extensions import db
from app.models import SigningCredential, utc_now
from tests.helpers import (
    LOGIN_PATH,
    LOGOUT_PATH,
    ME_PATH,
    PASSWORD,
    account,
    audited,
    bearer,
    error_of,
    signup_body,
)

SESSIONS = "/api/v1/auth/sessions"
VERIFY = "/api/v1/auth/verify"
KEYS = {"id", "created_at", "last_used_at", "user_agent", "ip", "current"}


def log_in(client, email, user_agent="test-agent/1.0", **headers):
    response = client.post(
        LOGIN_PATH,
        json={"email": email, "password": PASSWORD},
        headers={"User-Agent": user_agent, **headers},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]["access_token"]


def listed(client, token):
    response = client.get(SESSIONS, headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()["data"]["sessions"]


def session_rows(app, user_id):
    with app.app_context():
        rows = db.session.scalars(
            sa.select(SigningCredential).where(SigningCredential.user_id == user_id)
        ).all()
        db.session.commit()
        return rows


@pytest.fixture
def user(api):
    token, user = account(api)
    return {"token": token, **user}


def test_each_log_in_starts_a_session_listed_newest_first(client, user):
    first = log_in(client, user["email"], user_agent="phone/1")
    second = log_in(client, user["email"], user_agent="laptop/2")
    sessions = listed(client, second)
    assert [set(s) for s in sessions] == [KEYS] * 3  # the sign-up's, and two log-ins
    assert [s["user_agent"] for s in sessions[:2]] == ["laptop/2", "phone/1"]
    assert [s["current"] for s in sessions] == [True, False, False]
    assert [s["current"] for s in listed(client, first)] == [False, True, False]
    assert all(s["created_at"].endswith("Z") and s["ip"] == "127.0.0.1" for s in sessions)
    assert len({s["id"] for s in sessions}) == 3


def test_the_user_agent_kept_is_its_first_255_characters(client, user):
    token = log_in(client, user["email"], user_agent="x" * 300)
    assert listed(client, token)[0]["user_agent"] == "x" * 255


def test_ending_one_session_leaves_the_others(client, user):
    phone = log_in(client, user["email"])
    laptop = log_in(client, user["email"])
    (phone_session,) = [s for s in listed(client, phone) if s["current"]]
    response = client.delete(f"{SESSIONS}/{phone_session['id']}", headers=bearer(laptop))
    assert response.status_code == 204
    assert client.get(ME_PATH, headers=bearer(phone)).status_code == 401
    assert client.get(ME_PATH, headers=bearer(laptop)).status_code == 200
    assert phone_session["id"] not in {s["id"] for s in listed(client, laptop)}
    again = client.delete(f"{SESSIONS}/{phone_session['id']}", headers=bearer(laptop))
    assert again.status_code == 404 and error_of(again)["code"] == "NOT_FOUND"


def test_the_ended_session_is_refused_by_verify_within_the_cache_window(
    make_app, api, cache_window
):
    app = make_app(TOKEN_CACHE_SECONDS=1)
    client = app.test_client()
    token, user = account(api)
    other = log_in(client, user["email"])
    assert client.get(VERIFY, headers=bearer(token)).status_code == 200
    (session,) = [s for s in listed(client, token) if s["current"]]
    assert client.delete(f"{SESSIONS}/{session['id']}", headers=bearer(other)).status_code == 204
    cache_window.advance(1.1)
    assert client.get(VERIFY, headers=bearer(token)).status_code == 401


@pytest.mark.parametrize("session_id", ["not-a-uuid", "0", "00000000-0000-4000-8000-000000000000"])
def test_no_such_session_is_404(client, user, session_id):
    response = client.delete(f"{SESSIONS}/{session_id}", headers=bearer(user["token"]))
    assert response.status_code == 404 and error_of(response)["code"] == "NOT_FOUND"


def test_another_accounts_session_is_404_and_lives_on(client, api, user):
    other_token, _ = account(api)
    (theirs,) = listed(client, other_token)
    response = client.delete(f"{SESSIONS}/{theirs['id']}", headers=bearer(user["token"]))
    assert response.status_code == 404
    assert client.get(ME_PATH, headers=bearer(other_token)).status_code == 200


@pytest.mark.parametrize(
    ("scope", "caller_lives", "other_lives"),
    [
        (None, False, False),
        ("all", False, False),
        ("current", False, True),
        ("others", True, False),
    ],
)
def test_log_out_scopes(client, user, scope, caller_lives, other_lives):
    other = log_in(client, user["email"])
    kwargs = {} if scope is None else {"json": {"scope": scope}}
    response = client.post(LOGOUT_PATH, headers=bearer(user["token"]), **kwargs)
    assert response.status_code == 204
    assert (client.get(ME_PATH, headers=bearer(user["token"])).status_code == 200) is caller_lives
    assert (client.get(ME_PATH, headers=bearer(other)).status_code == 200) is other_lives


def test_log_out_refuses_a_bad_scope_and_a_bad_body(client, user):
    response = client.post(LOGOUT_PATH, headers=bearer(user["token"]), json={"scope": "mine"})
    assert response.status_code == 400 and "scope" in error_of(response)["fields"]
    response = client.post(
        LOGOUT_PATH, headers=bearer(user["token"]), data="scope=all", content_type="text/plain"
    )
    assert response.status_code == 415
    assert client.get(ME_PATH, headers=bearer(user["token"])).status_code == 200


def test_the_oldest_session_ends_past_the_limit(make_app, api):
    app = make_app(MAX_SESSIONS_PER_ACCOUNT=3)
    client = app.test_client()
    first, user = account(api)  # the sign-up's session
    tokens = [log_in(client, user["email"]) for _ in range(3)]
    assert client.get(ME_PATH, headers=bearer(first)).status_code == 401
    assert all(client.get(ME_PATH, headers=bearer(t)).status_code == 200 for t in tokens)
    assert len(listed(client, tokens[-1])) == 3


def test_ended_sessions_are_not_listed_and_their_rows_go(app, client, user):
    old = log_in(client, user["email"])
    with app.app_context():
        db.session.execute(
            sa.update(SigningCredential)
            .where(SigningCredential.user_id == user["id"])
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
        db.session.commit()
    assert client.get(ME_PATH, headers=bearer(old)).status_code == 200  # its exp is a day
    fresh = log_in(client, user["email"])
    assert [s["current"] for s in listed(client, fresh)] == [True]
    assert len(session_rows(app, user["id"])) == 1  # the account's ended ones were deleted


def test_every_accounts_ended_sessions_are_swept(app, api):
    _, first = account(api)
    _, second = account(api)
    with app.app_context():
        db.session.execute(
            sa.update(SigningCredential).values(expires_at=utc_now() - timedelta(seconds=1))
        )
        db.session.commit()
        assert repository.purge_ended_sessions() >= 2
    assert session_rows(app, first["id"]) == session_rows(app, second["id"]) == []


def set_last_used(app, user_id, ago):
    with app.app_context():
        db.session.execute(
            sa.update(SigningCredential)
            .where(SigningCredential.user_id == user_id)
            .values(last_used_at=utc_now() - ago)
        )
        db.session.commit()


def last_used(app, user_id):
    (row,) = session_rows(app, user_id)
    return row.last_used_at.replace(tzinfo=None)


@pytest.mark.parametrize("path", [ME_PATH, VERIFY])
def test_last_used_is_kept_to_within_five_minutes_without_a_write_per_request(
    app, client, user, path
):
    set_last_used(app, user["id"], timedelta(minutes=6))
    assert client.get(path, headers=bearer(user["token"])).status_code == 200
    touched = last_used(app, user["id"])
    assert touched > (utc_now() - timedelta(seconds=30)).replace(tzinfo=None)
    set_last_used(app, user["id"], timedelta(minutes=4))
    recent = last_used(app, user["id"])
    app.extensions["lumyri_identity_cache"].entries.clear()
    assert client.get(path, headers=bearer(user["token"])).status_code == 200
    assert last_used(app, user["id"]) == recent  # within 5 minutes: not written again


def test_a_replayed_sign_up_starts_no_session(app, client):
    body = signup_body()
    headers = {"Idempotency-Key": "k-sessions-1"}
    first = client.post("/api/v1/auth/customer/signup", json=body, headers=headers)
    again = client.post("/api/v1/auth/customer/signup", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    user_id = first.get_json()["data"]["user"]["id"]
    assert len(session_rows(app, user_id)) == 1


def test_ending_a_session_is_audited(app, client, user):
    other = log_in(client, user["email"])
    (session,) = [s for s in listed(client, other) if s["current"]]
    client.delete(f"{SESSIONS}/{session['id']}", headers=bearer(user["token"]))
    assert audited(app, "session_ended", user["id"], session["id"])


def test_a_log_in_without_two_factor_costs_five_statements(app, client, user, monkeypatch):
    """Read the account; lock it and read its two-factor state in one UPDATE ... RETURNING;
    the new session; its ended and surplus sessions in one DELETE; the audit event."""
    monkeypatch.setattr(accounts, "SWEEP_PROBABILITY", 0)  # not the 1 % sweep
    log_in(client, user["email"])  # a warm-up
    with app.app_context():
        engine = db.engine
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        verb = statement.split(None, 1)[0].upper()
        if verb in {"SELECT", "INSERT", "UPDATE", "DELETE"}:
            seen.append((verb, statement))

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        log_in(client, user["email"])
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert [verb for verb, _ in seen] == ["SELECT", "UPDATE", "INSERT", "DELETE", "INSERT"]
    assert "RETURNING" in seen[1][1]
    assert "signing_credentials" in seen[3][1] and "audit_events" in seen[4][1]
