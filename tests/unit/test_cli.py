"""The operator CLI (`flask accounts ...`), through Flask's CLI runner."""

import json

import sqlalchemy as sa

from app.extensions import db
from app.models import User
from tests.helpers import PASSWORD, expected_user, fresh_email, signup_body


def create_admin_input(email, password=PASSWORD, first="Ops", last="Admin"):
    """What an operator types at create-admin's prompts (the password twice)."""
    return "\n".join([first, last, email, password, password]) + "\n"


def test_create_admin_prompts_and_creates(app, runner, api):
    email = fresh_email()
    result = runner.invoke(
        args=["accounts", "create-admin"], input=create_admin_input(" " + email.upper())
    )
    assert result.exit_code == 0, result.output
    assert f"Created admin {email}" in result.output
    assert PASSWORD not in result.output
    response = api.login(email)
    assert response.status_code == 200
    user = response.get_json()["data"]["user"]
    assert user == expected_user("admin", user["id"], user["company"]["id"], "Ops", "Admin", email)


def test_create_admin_applies_the_endpoint_rules(app, runner):
    result = runner.invoke(
        args=["accounts", "create-admin"], input=create_admin_input("not-an-email", "weak")
    )
    assert result.exit_code == 1
    assert "email: Not a valid e-mail address" in result.output
    assert "password: Must be more than 8 characters." in result.output
    assert "the account was not created" in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_create_admin_refuses_a_taken_email(api, runner):
    email = fresh_email()
    api.signup("customer", signup_body(email=email))
    result = runner.invoke(args=["accounts", "create-admin"], input=create_admin_input(email))
    assert result.exit_code == 1
    assert "already exists" in result.output


def test_create_admin_with_options(api, runner):
    email = fresh_email()
    args = ["accounts", "create-admin", "--first-name", "A", "--last-name", "B", "--email", email]
    result = runner.invoke(args=[*args, "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    assert api.login(email).status_code == 200


def test_revoke_tokens(api, runner):
    body = signup_body()
    token = api.signup("admin", body).get_json()["data"]["access_token"]
    result = runner.invoke(args=["accounts", "revoke-tokens", body["email"].upper()])
    assert result.exit_code == 0, result.output
    assert api.me(token).status_code == 401
    new_token = api.login(body["email"]).get_json()["data"]["access_token"]
    assert api.me(new_token).status_code == 200


def test_revoke_tokens_unknown_email(runner):
    result = runner.invoke(args=["accounts", "revoke-tokens", "nobody@example.org"])
    assert result.exit_code == 1
    assert "no account" in result.output


def test_show_prints_the_user_object_without_the_hash(api, runner):
    body = signup_body()
    user = api.signup("customer", body).get_json()["data"]["user"]
    result = runner.invoke(args=["accounts", "show", body["email"]])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == user
    assert "argon2" not in result.output


def test_show_unknown_email(runner):
    result = runner.invoke(args=["accounts", "show", "nobody@example.org"])
    assert result.exit_code == 1
