"""The repository: account writes are all-or-nothing and duplicates become EmailTaken."""

import re

import pytest
import sqlalchemy as sa

from app import passwords, repository
from app.extensions import db
from app.models import Company, SigningCredential, User
from tests.conftest import empty_account_tables
from tests.helpers import PASSWORD, fresh_email, signup_body


def fields(**overrides):
    """Loaded sign-up fields (what the schema hands the view), without the password."""
    body = signup_body(**overrides)
    del body["password"]
    return body


def counts():
    """Rows in the account tables."""
    return tuple(
        db.session.scalar(sa.select(sa.func.count()).select_from(model))
        for model in (User, Company, SigningCredential)
    )


@pytest.fixture
def ctx(app):
    """An app context for calling the repository directly."""
    with app.app_context():
        yield


def test_admin_account_has_company_role_and_credential(ctx):
    user, credential = repository.create_admin_account(fields(), "$argon2id$hash")
    assert user.company is not None and user.company_id == user.company.id
    assert (user.role.name, user.state) == ("Admin", "CARD_NOT_FOUND")
    assert credential.user_id == user.id
    assert re.fullmatch(r"[A-Za-z0-9]{32}", credential.key)
    assert counts() == (1, 1, 1)


def test_customer_account_has_no_company(ctx):
    user, _ = repository.create_customer_account(fields(), "$argon2id$hash")
    assert user.company is None and user.company_id is None
    assert (user.role.name, user.state) == ("Customer", "ACTIVED")
    assert counts() == (1, 0, 1)


def test_lookups(ctx):
    email = fresh_email()
    user, credential = repository.create_customer_account(fields(email=email), "$argon2id$hash")
    assert repository.email_exists(email)
    assert not repository.email_exists("nobody@example.org")
    assert repository.account_by_email(email.upper()).id == user.id
    assert repository.account_by_id(user.id).email == email
    assert repository.account_by_email("nobody@example.org") is None
    assert repository.find_credential(credential.key).user.id == user.id
    assert repository.find_credential("x" * 32) is None


def test_email_exists_leaves_no_transaction_open(ctx):
    repository.email_exists("someone@example.org")
    assert not db.session().in_transaction()


def test_duplicate_is_settled_by_the_unique_index(ctx, monkeypatch):
    email = fresh_email()
    repository.create_admin_account(fields(email=email), "$argon2id$hash")
    with pytest.raises(repository.DuplicateEmail):
        repository.create_admin_account(fields(email=email), "$argon2id$hash")
    assert counts() == (1, 1, 1)


def test_credential_keys_are_unique(ctx):
    keys = {repository.new_credential_key() for _ in range(1000)}
    assert len(keys) == 1000


def test_failure_after_the_user_insert_rolls_everything_back(ctx, monkeypatch):
    _, credential = repository.create_admin_account(fields(), "$argon2id$hash")
    monkeypatch.setattr(repository, "new_credential_key", lambda: credential.key)
    with pytest.raises(sa.exc.IntegrityError):
        repository.create_admin_account(fields(), "$argon2id$hash")
    assert counts() == (1, 1, 1)


def test_no_transaction_is_open_while_the_password_is_hashed(app, api, monkeypatch):
    real_hash = passwords.hash_password
    seen = []

    def checking_hash(password):
        seen.append(db.session().in_transaction())
        return real_hash(password)

    monkeypatch.setattr(passwords, "hash_password", checking_hash)
    assert api.signup("admin", signup_body(password=PASSWORD)).status_code == 201
    assert seen == [False]


def test_an_account_read_with_core_is_changed_through_the_orm(ctx):
    """find_credential's user is detached (read with Core): an ORM change attaches it,
    also in a session that holds the same role already, and the change is written."""
    admin, credential = repository.create_admin_account(fields(), "$argon2id$hash")
    other, _ = repository.create_admin_account(fields(), "$argon2id$hash")
    held = db.session.get(User, other.id)  # the Admin role, loaded in the session
    assert held.role.name == "Admin"
    user = repository.find_credential(credential.key).user
    assert sa.inspect(user).detached
    user.company.name = "Renamed"
    repository.update_company(user, {"describe": "From Core"}, repository.AuditContext())
    new_address = fresh_email()
    notice = repository.OutboxMail(
        kind="email_changed", to_address=admin.email, first_name="A", language="en"
    )
    detached = repository.find_credential(credential.key).user
    repository.change_email(detached, new_address, repository.AuditContext(), notice)
    db.session.expire_all()
    stored = db.session.get(User, admin.id)
    assert (stored.company.name, stored.company.describe) == ("Renamed", "From Core")
    assert stored.email == new_address


def test_a_profile_change_of_a_deleted_account_writes_nothing(ctx):
    user, credential = repository.create_customer_account(fields(), "$argon2id$hash")
    reader = repository.find_credential(credential.key).user
    db.session.execute(sa.delete(User).where(User.id == user.id))
    db.session.commit()
    with pytest.raises(repository.AccountGone):
        repository.update_profile(reader, {"city": "Paris"}, repository.AuditContext())
    assert [e.event for e in repository.audit_events(user.email)] == ["account_created"]


@pytest.mark.postgres
def test_on_postgres_the_hot_path_reads_open_no_transaction(postgres_database):
    """email_exists, a bearer token's account (_read_row) and /verify's identity read run
    in autocommit on Postgres: the statement alone, no BEGIN and COMMIT round trips."""
    import psycopg

    from app import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": postgres_database})
    seen = []

    def after(connection, _cursor, statement, _parameters, _context, _many):
        status = connection.connection.dbapi_connection.info.transaction_status
        seen.append((statement.split()[0], status))

    with app.app_context():
        try:
            _, credential = repository.create_customer_account(fields(), "$argon2id$hash")
            sa.event.listen(db.engine, "after_cursor_execute", after)
            assert repository.email_exists("nobody@example.org") is False
            assert repository.find_credential(credential.key).key == credential.key
            assert repository.credential_identity(credential.key).role == "Customer"
            assert [status for _, status in seen] == [psycopg.pq.TransactionStatus.IDLE] * 3
            seen.clear()
            repository.create_customer_account(fields(), "$argon2id$hash")  # one transaction
            statuses = {status for verb, status in seen if verb == "INSERT"}
            assert statuses == {psycopg.pq.TransactionStatus.INTRANS}
        finally:
            sa.event.remove(db.engine, "after_cursor_execute", after)
            empty_account_tables()
            db.engine.dispose()
