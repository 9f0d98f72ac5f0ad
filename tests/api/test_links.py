"""Links from mails work once: every change of the password or the address kills every
earlier reset and e-mail-change link (also one that returned to the same address), and of
several uses of one link at the same moment exactly one succeeds."""

import time

import pytest
import sqlalchemy as sa

from app import passwords, repository
from app.extensions import db
from app.models import OutboxMail, User
from tests.helpers import (
    Api,
    at_once,
    bearer,
    error_of,
    fresh_email,
    mailed_link_token,
    signup_body,
)

RESET = "/api/v1/auth/password/reset"
CHANGE = "/api/v1/auth/email/change"
CONFIRM = "/api/v1/auth/email/change/confirm"
VERIFY = "/api/v1/auth/email/verify"
NEW_PASSWORD = "An0ther!Passw0rd"


@pytest.fixture
def owner(api):
    """A new account: its sign-up body and answer."""
    body = signup_body()
    return body, api.signup("customer", body).get_json()["data"]


def change_link(app, api, owner, new_email):
    """Ask for an e-mail change to `new_email`; the token its mail would carry."""
    body, data = owner
    password = body["password"]
    response = api.client.post(
        CHANGE,
        json={"new_email": new_email, "password": password},
        headers=bearer(data["access_token"]),
    )
    assert response.status_code == 202
    return mailed_link_token(app, "confirm_email_change", data["user"]["id"], new_email)


def assert_invalid_link(response):
    """400 INVALID_LINK in the envelope."""
    assert response.status_code == 400, response.get_data(as_text=True)
    assert error_of(response)["code"] == "INVALID_LINK"


def address_of(app, user_id):
    """The account's address as stored."""
    with app.app_context():
        return db.session.scalar(sa.select(User.email).where(User.id == user_id))


def mails_of_kind(app, kind):
    """Outbox rows of one kind (tests run without a sender: nothing leaves)."""
    with app.app_context():
        return db.session.scalar(
            sa.select(sa.func.count()).select_from(OutboxMail).where(OutboxMail.kind == kind)
        )


def test_a_change_link_is_dead_after_the_address_went_away_and_came_back(app, api, owner):
    body, data = owner
    address_a, address_b = body["email"], fresh_email("b")
    to_b = change_link(app, api, owner, address_b)
    to_c = change_link(app, api, owner, fresh_email("c"))  # pending beside it
    assert api.client.post(CONFIRM, json={"token": to_b}).status_code == 200
    back_to_a = change_link(app, api, owner, address_a)
    assert api.client.post(CONFIRM, json={"token": back_to_a}).status_code == 200
    assert address_of(app, data["user"]["id"]) == address_a
    assert_invalid_link(api.client.post(CONFIRM, json={"token": to_b}))  # used
    assert_invalid_link(api.client.post(CONFIRM, json={"token": to_c}))  # superseded
    assert_invalid_link(api.client.post(CONFIRM, json={"token": back_to_a}))  # used
    assert address_of(app, data["user"]["id"]) == address_a


def test_a_reset_kills_a_pending_change_link(app, api, owner):
    _, data = owner
    pending = change_link(app, api, owner, fresh_email("pending"))
    reset = mailed_link_token(app, "reset_password", data["user"]["id"])
    assert (
        api.client.post(RESET, json={"token": reset, "password": NEW_PASSWORD}).status_code == 200
    )
    assert_invalid_link(api.client.post(CONFIRM, json={"token": pending}))


def test_a_password_change_kills_a_pending_change_link(app, api, owner):
    body, data = owner
    pending = change_link(app, api, owner, fresh_email("pending"))
    changed = api.client.post(
        "/api/v1/auth/password/change",
        json={"current_password": body["password"], "new_password": NEW_PASSWORD},
        headers=bearer(data["access_token"]),
    )
    assert changed.status_code == 200
    assert_invalid_link(api.client.post(CONFIRM, json={"token": pending}))


def test_a_confirmed_change_kills_the_reset_links_mailed_before(app, api, owner):
    _, data = owner
    reset = mailed_link_token(app, "reset_password", data["user"]["id"])
    to_b = change_link(app, api, owner, fresh_email("b"))
    assert api.client.post(CONFIRM, json={"token": to_b}).status_code == 200
    assert_invalid_link(api.client.post(RESET, json={"token": reset, "password": NEW_PASSWORD}))


def test_asking_for_a_second_reset_link_does_not_kill_the_first(app, api, owner):
    body, data = owner
    first = mailed_link_token(app, "reset_password", data["user"]["id"])
    assert (
        api.client.post("/api/v1/auth/password/forgot", json={"email": body["email"]}).status_code
        == 202
    )
    response = api.client.post(RESET, json={"token": first, "password": NEW_PASSWORD})
    assert response.status_code == 200
    assert_invalid_link(api.client.post(RESET, json={"token": first, "password": NEW_PASSWORD}))


def test_one_reset_link_used_eight_times_at_once_succeeds_once(app, owner, monkeypatch):
    _, data = owner
    token = mailed_link_token(app, "reset_password", data["user"]["id"])
    real_hash = passwords.hash_password

    def slow_hash(password):  # every request has checked the link before any writes
        time.sleep(0.3)
        return real_hash(password)

    monkeypatch.setattr(passwords, "hash_password", slow_hash)
    results = at_once(
        8,
        lambda i: app.test_client().post(
            RESET, json={"token": token, "password": f"{NEW_PASSWORD}{i}"}
        ),
    )
    statuses = sorted(response.status_code for response in results)
    assert statuses == [200] + [400] * 7
    for response in results:
        if response.status_code == 400:
            assert error_of(response)["code"] == "INVALID_LINK"
    (winner,) = [i for i, response in enumerate(results) if response.status_code == 200]
    assert mails_of_kind(app, "password_changed") == 1
    api = Api(app.test_client())
    assert api.login(data["user"]["email"], f"{NEW_PASSWORD}{winner}").status_code == 200
    winning_token = results[winner].get_json()["data"]["access_token"]
    assert api.me(winning_token).status_code == 200


def test_several_change_links_used_at_once_change_the_address_once(app, api, owner, monkeypatch):
    body, data = owner
    addresses = [fresh_email(f"to{i}") for i in range(4)]
    tokens = [change_link(app, api, owner, address) for address in addresses]
    real_change = repository.change_email

    def slow_change(*args, **kwargs):  # every request has checked its link first
        time.sleep(0.3)
        return real_change(*args, **kwargs)

    monkeypatch.setattr(repository, "change_email", slow_change)
    results = at_once(4, lambda i: app.test_client().post(CONFIRM, json={"token": tokens[i]}))
    statuses = sorted(response.status_code for response in results)
    assert statuses == [200, 400, 400, 400]
    (winner,) = [i for i, response in enumerate(results) if response.status_code == 200]
    assert address_of(app, data["user"]["id"]) == addresses[winner]
    assert mails_of_kind(app, "email_changed") == 1
    assert body["email"] != addresses[winner]


@pytest.mark.parametrize(
    ("path", "extra"),
    [(VERIFY, {}), (RESET, {"password": NEW_PASSWORD}), (CONFIRM, {})],
    ids=["verify", "reset", "confirm"],
)
@pytest.mark.parametrize(
    "token",
    ["x" * 4097, "A" * 60_000, "abc\ud800def", "é" * 10, "a.b" + "\x7f"],
    ids=["4097", "60000", "lone-surrogate", "non-ascii", "del"],
)
def test_any_other_token_however_long_is_an_invalid_link(client, path, extra, token):
    assert_invalid_link(client.post(path, json={"token": token, **extra}))


@pytest.mark.parametrize("token", [None, "", 5, ["x"], {"a": 1}], ids=repr)
def test_a_missing_or_empty_token_is_a_validation_error(client, token):
    response = client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "VALIDATION_ERROR" and "token" in error["fields"]
