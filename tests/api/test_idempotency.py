"""Idempotent sign-up: retries with the same Idempotency-Key get the first answer."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app import create_app, passwords, repository
from app.extensions import db
from app.idempotency import canonical_json, fingerprint
from app.models import IdempotencyKey, User
from app.repository.idempotency import take_over_idempotency_key
from tests.helpers import (
    SIGNUP_PATHS,
    Api,
    bearer,
    error_of,
    fresh_email,
    mailed_link_token,
    signup_body,
)


def post(api, kind, body, key, **headers):
    """A sign-up with an Idempotency-Key."""
    return api.signup(kind, body, headers={"Idempotency-Key": key, **headers})


def user_count(app):
    """Rows in users."""
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(User))


@pytest.mark.parametrize("kind", ["admin", "customer"])
def test_retry_gets_the_first_answer(app, api, kind):
    body = signup_body()
    first = post(api, kind, body, "key-1")
    again = post(api, kind, body, "key-1")
    assert first.status_code == again.status_code == 201
    assert again.get_json()["data"]["user"] == first.get_json()["data"]["user"]
    assert again.headers["Cache-Control"] == "no-store"
    assert api.me(again.get_json()["data"]["access_token"]).status_code == 200
    assert user_count(app) == 1


def test_equal_json_in_another_order_and_spacing_is_the_same_body(app, api):
    body = signup_body()
    first = post(api, "customer", body, "k-order")
    reordered = (
        b'{ "password": "%s" , "email": "%s", "last_name": "Test", "first_name": "Admin" }'
        % (
            body["password"].encode(),
            body["email"].encode(),
        )
    )
    again = api.client.post(
        SIGNUP_PATHS["customer"],
        data=reordered,
        content_type="application/json",
        headers={"Idempotency-Key": "k-order"},
    )
    assert again.status_code == 201
    assert again.get_json()["data"]["user"]["id"] == first.get_json()["data"]["user"]["id"]


def test_same_key_with_another_body_is_422(app, api):
    post(api, "admin", signup_body(), "k-reuse")
    response = post(api, "admin", signup_body(), "k-reuse")
    assert response.status_code == 422
    assert error_of(response)["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert user_count(app) == 1


def test_keys_are_scoped_to_the_endpoint(app, api):
    assert post(api, "admin", signup_body(), "k-scope").status_code == 201
    assert post(api, "customer", signup_body(), "k-scope").status_code == 201
    assert user_count(app) == 2


def test_without_a_key_a_repeat_is_a_409(api):
    body = signup_body()
    api.signup("customer", body)
    assert api.signup("customer", body).status_code == 409


def test_first_answer_409_is_replayed(api):
    body = signup_body()
    api.signup("customer", body)
    assert post(api, "customer", body, "k-409").status_code == 409
    again = post(api, "customer", body, "k-409")
    assert again.status_code == 409 and error_of(again)["code"] == "EMAIL_TAKEN"


@pytest.mark.parametrize("key", ["", "a" * 256, "tab\there", "é-key", "nul\x7f"])
def test_malformed_key_is_a_validation_error(client, key):
    response = client.post(
        SIGNUP_PATHS["admin"], json=signup_body(), headers={"Idempotency-Key": key}
    )
    assert response.status_code == 400
    assert error_of(response)["fields"] == {
        "Idempotency-Key": ["Must be 1-255 printable ASCII characters."]
    }


def test_key_of_255_printable_characters_is_fine(api):
    assert post(api, "admin", signup_body(), "~" + "a" * 253 + " ").status_code == 201


def test_bad_key_and_bad_body_are_reported_together(client):
    response = client.post(
        SIGNUP_PATHS["admin"], json={"email": "x"}, headers={"Idempotency-Key": ""}
    )
    assert {"Idempotency-Key", "email", "password"} <= set(error_of(response)["fields"])


def test_failed_first_request_lets_a_retry_run(app, api, monkeypatch):
    from app import accounts

    body = signup_body()

    def broken(**_fields):
        raise RuntimeError("boom")

    with monkeypatch.context() as patch:
        patch.setattr(accounts.repository, "create_account", broken)
        assert post(api, "admin", body, "k-fail").status_code == 500
    assert post(api, "admin", body, "k-fail").status_code == 201
    assert user_count(app) == 1


def test_still_in_progress_after_the_wait_is_409(app, database_url):
    quick = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "IDEMPOTENCY_WAIT_SECONDS": 0})
    body = signup_body()
    with quick.test_request_context(SIGNUP_PATHS["admin"]):
        body_fingerprint = fingerprint(body)
    with quick.app_context():  # another request holds the key and has not finished
        repository.claim_idempotency_key(
            endpoint="signup.admin_signup", key="k-busy", fingerprint=body_fingerprint
        )
    response = Api(quick.test_client()).signup("admin", body, headers={"Idempotency-Key": "k-busy"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"
    assert response.headers["Retry-After"] == "1"
    with quick.app_context():
        db.engine.dispose()


def test_concurrent_requests_with_one_key_create_one_account(app, api, monkeypatch):
    real_hash = passwords.hash_password

    def slow_hash(password):
        time.sleep(0.3)
        return real_hash(password)

    monkeypatch.setattr(passwords, "hash_password", slow_hash)
    body = signup_body()
    results = []

    def send():
        results.append(post(Api(app.test_client()), "customer", body, "k-race"))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [r.status_code for r in results] == [201] * 4
    assert len({r.get_json()["data"]["user"]["id"] for r in results}) == 1
    assert user_count(app) == 1


def test_expired_key_is_forgotten(app, api):
    post(api, "admin", signup_body(), "k-old")
    with app.app_context():
        db.session.execute(
            sa.update(IdempotencyKey).values(created_at=datetime.now(UTC) - timedelta(days=2))
        )
        db.session.commit()
    assert post(api, "admin", signup_body(), "k-old").status_code == 201
    assert user_count(app) == 2


def test_purge_command_deletes_only_expired_keys(app, api, runner):
    post(api, "admin", signup_body(), "k-purge-old")
    post(api, "admin", signup_body(), "k-purge-new")
    with app.app_context():
        db.session.execute(
            sa.update(IdempotencyKey)
            .where(IdempotencyKey.key == "k-purge-old")
            .values(created_at=datetime.now(UTC) - timedelta(hours=25))
        )
        db.session.commit()
    result = runner.invoke(args=["accounts", "purge-idempotency-keys"])
    assert result.exit_code == 0 and "Deleted 1" in result.output
    with app.app_context():
        assert db.session.scalars(sa.select(IdempotencyKey.key)).all() == ["k-purge-new"]


def test_replay_spends_no_rate_limit(app, database_url):
    limited = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_SIGNUP": "1/minute",
            "RATELIMIT_KEY_PREFIX": fresh_email(),
        }
    )
    api = Api(limited.test_client())
    body = signup_body()
    for _ in range(3):
        assert post(api, "admin", body, "k-limit").status_code == 201
    with limited.app_context():
        db.engine.dispose()


def raw_signup(client, kind, body_text, key):
    """A sign-up whose JSON text is written by hand (numbers json.dumps cannot make)."""
    return client.post(
        SIGNUP_PATHS[kind],
        data=body_text.encode(),
        content_type="application/json",
        headers={"Idempotency-Key": key},
    )


@pytest.mark.parametrize("digits", [4001, 5000, 20000])
def test_huge_integer_in_an_ignored_field_is_fine_with_a_key(app, client, digits):
    body = signup_body()
    number = "7" * digits
    text = json.dumps(body)[:-1] + f', "extra": {number}}}'
    first = raw_signup(client, "customer", text, "huge-number")
    again = raw_signup(client, "customer", text, "huge-number")
    assert first.status_code == again.status_code == 201
    assert again.get_json()["data"]["user"] == first.get_json()["data"]["user"]
    other = json.dumps(body)[:-1] + f', "extra": {number[:-1]}8}}'
    assert raw_signup(client, "customer", other, "huge-number").status_code == 422
    as_string = json.dumps(body)[:-1] + f', "extra": "{number}"}}'
    assert raw_signup(client, "customer", as_string, "huge-number").status_code == 422
    assert user_count(app) == 1


def test_canonical_json_writes_huge_integers_as_numbers():
    huge = Decimal("-" + "9" * 4500)
    assert canonical_json({"b": [huge], "a": "x"}) == '{"a":"x","b":[-' + "9" * 4500 + "]}"


def test_a_replay_answers_with_the_very_same_token(app, api):
    body = signup_body()
    first = post(api, "customer", body, "k-same-token")
    api.login(body["email"])  # a log-in of the owner ends no session
    again = post(api, "customer", body, "k-same-token")
    assert again.status_code == 201
    assert again.get_json()["data"] == first.get_json()["data"]


def _log_out(api, app, data, body):
    """The owner logs out."""
    assert api.logout(data["access_token"]).status_code == 204


def _change_password(api, app, data, body):
    """The owner changes the password."""
    response = api.client.post(
        "/api/v1/auth/password/change",
        json={"current_password": body["password"], "new_password": "An0ther!Passw0rd"},
        headers=bearer(data["access_token"]),
    )
    assert response.status_code == 200


def _reset_password(api, app, data, body):
    """The owner recovers the account with a reset link."""
    token = mailed_link_token(app, "reset_password", data["user"]["id"])
    response = api.client.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": "An0ther!Passw0rd"}
    )
    assert response.status_code == 200


def _change_email(api, app, data, body):
    """The owner moves the account to another address, confirmed by its link."""
    new_email = fresh_email("moved")
    requested = api.client.post(
        "/api/v1/auth/email/change",
        json={"new_email": new_email, "password": body["password"]},
        headers=bearer(data["access_token"]),
    )
    assert requested.status_code == 202
    token = mailed_link_token(app, "confirm_email_change", data["user"]["id"], new_email)
    confirmed = api.client.post("/api/v1/auth/email/change/confirm", json={"token": token})
    assert confirmed.status_code == 200


@pytest.mark.parametrize(
    "lock_the_door", [_log_out, _change_password, _reset_password], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("kind", ["admin", "customer"])
def test_a_replay_after_the_owner_locked_the_door_is_email_taken(app, api, lock_the_door, kind):
    body = signup_body()
    first = post(api, kind, body, "k-door").get_json()["data"]
    lock_the_door(api, app, first, body)
    again = post(api, kind, body, "k-door")
    assert again.status_code == 409 and error_of(again)["code"] == "EMAIL_TAKEN"
    assert post(api, kind, body, "k-door").status_code == 409  # and so it stays
    assert api.me(first["access_token"]).status_code == 401
    assert user_count(app) == 1


def test_a_replay_after_the_owner_moved_to_another_address_opens_nothing_of_theirs(app, api):
    body = signup_body()
    first = post(api, "customer", body, "k-moved").get_json()["data"]
    _change_email(api, app, first, body)
    again = post(api, "customer", body, "k-moved")
    # The address is free again: the replay answers as a new sign-up with the body would.
    assert again.status_code == 201
    replayed = again.get_json()["data"]
    assert replayed["user"]["id"] != first["user"]["id"]
    me = api.me(replayed["access_token"]).get_json()["data"]["user"]
    assert me["id"] == replayed["user"]["id"] and me["email"] == body["email"]
    assert user_count(app) == 2


def test_a_replay_after_the_first_token_expired_is_email_taken(app, database_url):
    short = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "ACCESS_TOKEN_TTL_SECONDS": 1})
    api = Api(short.test_client())
    body = signup_body()
    assert post(api, "customer", body, "k-expired").status_code == 201
    time.sleep(1.1)
    again = post(api, "customer", body, "k-expired")
    with short.app_context():
        db.engine.dispose()
    assert again.status_code == 409 and error_of(again)["code"] == "EMAIL_TAKEN"


# A first request lost with its instance (a SIGKILL): its key stays in progress. The
# account, had it been written, completed the key in the same transaction.


def key_row(app, key):
    """The key's row as the database has it."""
    with app.app_context():
        return db.session.scalar(
            sa.select(IdempotencyKey)
            .where(IdempotencyKey.key == key)
            .execution_options(populate_existing=True)
        )


def lost_first_request(app, body, key, seconds_ago):
    """A key claimed by a request that began `seconds_ago` and never finished."""
    with app.test_request_context(SIGNUP_PATHS["admin"]):
        body_fingerprint = fingerprint(body)
    with app.app_context():
        claim = repository.claim_idempotency_key(
            endpoint="signup.admin_signup", key=key, fingerprint=body_fingerprint
        )
        started = datetime.now(UTC) - timedelta(seconds=seconds_ago)
        db.session.execute(
            sa.update(IdempotencyKey)
            .where(IdempotencyKey.id == claim.row.id)
            .values(created_at=started)
        )
        db.session.commit()


def test_a_key_whose_first_request_was_lost_is_free_again_after_30_s(app, api):
    body = signup_body()
    lost_first_request(app, body, "k-lost", seconds_ago=31)
    response = post(api, "admin", body, "k-lost")
    assert response.status_code == 201, response.get_json()
    row = key_row(app, "k-lost")
    assert (row.status, row.user_id) == (201, response.get_json()["data"]["user"]["id"])
    again = post(api, "admin", body, "k-lost")
    assert again.get_json()["data"]["user"] == response.get_json()["data"]["user"]
    assert user_count(app) == 1


def test_a_key_in_progress_for_less_than_30_s_is_not_taken_over(make_app):
    quick = make_app(IDEMPOTENCY_WAIT_SECONDS=0)
    body = signup_body()
    lost_first_request(quick, body, "k-young", seconds_ago=25)
    response = post(Api(quick.test_client()), "admin", body, "k-young")
    assert response.status_code == 409
    assert error_of(response)["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"
    assert user_count(quick) == 0


def test_an_account_written_before_the_instance_was_lost_is_the_retrys_answer(
    app, api, monkeypatch
):
    """The account's transaction completed the key: its answer was lost (here the token
    could not be issued), and a retry, at once, gets that account."""
    from app.api import signup

    body = signup_body()
    real_issue = signup.issue_access_token
    monkeypatch.setattr(signup, "issue_access_token", lambda *args: 1 / 0)
    assert post(api, "customer", body, "k-answer-lost").status_code == 500
    monkeypatch.setattr(signup, "issue_access_token", real_issue)
    again = post(api, "customer", body, "k-answer-lost")
    assert again.status_code == 201
    assert again.get_json()["data"]["user"]["email"] == body["email"]
    assert key_row(app, "k-answer-lost").status == 201
    assert user_count(app) == 1


def test_a_first_request_whose_key_was_taken_over_writes_nothing(app, api, monkeypatch):
    """It was slow, not lost: past 30 s a retry took its key over. When the first comes
    to write its account, its key is no longer its own: nothing of it is written (the
    retry signs up)."""
    body = signup_body()
    real_hash = passwords.hash_password

    def slow_hash(password):
        with app.app_context():  # meanwhile a retry finds the key 31 s old, takes it over
            row = db.session.scalar(sa.select(IdempotencyKey).where(IdempotencyKey.key == "k-slow"))
            old = datetime.now(UTC) - timedelta(seconds=31)
            db.session.execute(
                sa.update(IdempotencyKey).where(IdempotencyKey.id == row.id).values(created_at=old)
            )
            db.session.commit()
            row.created_at = old
            assert take_over_idempotency_key(
                row=row, started_before=datetime.now(UTC) - timedelta(seconds=30)
            )
        return real_hash(password)

    monkeypatch.setattr(passwords, "hash_password", slow_hash)
    first = post(api, "admin", body, "k-slow")
    assert first.status_code == 409
    assert error_of(first)["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"
    assert user_count(app) == 0
    assert key_row(app, "k-slow").status is None  # the retry's now
