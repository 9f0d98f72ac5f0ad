"""The repository: account writes are all-or-nothing and duplicates become EmailTaken."""

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app import passwords, repository
from app.extensions import db
from app.models import Company, OutboxMail, SigningCredential, User
from tests.fixtures import empty_account_tables
from tests.helpers import PASSWORD, fresh_email, signup_body


def record(**overrides):
    """A sign-up's record (what the schema's fields make of the document's sample)."""
    body = signup_body(**overrides)
    return repository.NewAccount(
        first_name=body["first_name"], last_name=body["last_name"], email=body["email"]
    )


CONTEXT = repository.AuditContext()


def create(kind, **overrides):
    """An admin or customer account written straight through the repository."""
    return repository.create_account(
        kind=kind, record=record(**overrides), password_hash="$argon2id$hash", context=CONTEXT
    )


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
    user, credential = create("admin")
    assert user.company is not None and user.company_id == user.company.id
    assert (user.role.name, user.state) == ("Admin", "CARD_NOT_FOUND")
    assert credential.user_id == user.id
    assert re.fullmatch(r"[A-Za-z0-9]{32}", credential.key)
    assert counts() == (1, 1, 1)


def test_customer_account_has_no_company(ctx):
    user, _ = create("customer")
    assert user.company is None and user.company_id is None
    assert (user.role.name, user.state) == ("Customer", "ACTIVED")
    assert counts() == (1, 0, 1)


def test_lookups(ctx):
    email = fresh_email()
    user, credential = create("customer", email=email)
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
    create("admin", email=email)
    with pytest.raises(repository.DuplicateEmail):
        create("admin", email=email)
    assert counts() == (1, 1, 1)


def test_credential_keys_are_unique(ctx):
    keys = {repository.new_credential_key() for _ in range(1000)}
    assert len(keys) == 1000


def test_failure_after_the_user_insert_rolls_everything_back(ctx, monkeypatch):
    _, credential = create("admin")
    monkeypatch.setattr(repository.sessions, "new_credential_key", lambda: credential.key)
    with pytest.raises(sa.exc.IntegrityError):
        create("admin")
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


def test_changes_of_an_account_read_with_core_are_written_with_core(ctx):
    """find_credential's user is detached (read with Core) and stays so: a change is a
    Core statement, shown on the object afterwards, and the session holds nothing."""
    admin, credential = create("admin")
    other, _ = create("admin")
    held = db.session.get(User, other.id)  # the Admin role, loaded in the session
    assert held.role.name == "Admin"
    user = repository.find_credential(credential.key).user
    assert sa.inspect(user).detached
    repository.update_profile(user=user, changes={"city": "From Core"}, context=CONTEXT)
    assert sa.inspect(user).detached and user.city == "From Core"
    new_address = fresh_email()
    notice = OutboxMail(kind="email_changed", to_address=admin.email, first_name="A", language="en")
    repository.change_email(user=user, new_email=new_address, context=CONTEXT, notice=notice)
    assert (user.email, user.security_version) == (new_address, 1)
    assert not (db.session.new or db.session.dirty)
    db.session.expire_all()
    stored = db.session.get(User, admin.id)
    assert (stored.city, stored.email) == ("From Core", new_address)


def test_a_change_with_an_old_reading_writes_nothing(ctx):
    user, credential = create("customer")
    first = repository.find_credential(credential.key).user
    second = repository.find_credential(credential.key).user
    repository.change_email(user=first, new_email=fresh_email(), context=CONTEXT, notice=None)
    with pytest.raises(repository.ChangedMeanwhile):
        repository.change_email(user=second, new_email=fresh_email(), context=CONTEXT, notice=None)
    assert repository.account_by_id(user.id).email == first.email


class _Base(DeclarativeBase):
    """A model base of this test's own (not the app's metadata)."""


class _Thing(_Base):
    """A table whose columns are filled every way a database fills them."""

    __tablename__ = "lumyri_test_insert_defaults"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    given: Mapped[str] = mapped_column(sa.String(10))
    by_database: Mapped[int] = mapped_column(sa.Integer, server_default="7")
    by_python: Mapped[str] = mapped_column(sa.String(5), default="py")
    by_nothing: Mapped[str | None] = mapped_column(sa.String(5), nullable=True)


def test_insert_writes_the_columns_given_and_lets_the_database_fill_the_rest(ctx):
    from app.repository.core import insert

    sent = []

    def record_statement(_conn, _cursor, statement, _parameters, _context, _many):
        if statement.startswith("INSERT"):
            sent.append(statement)

    _Thing.__table__.create(db.engine)
    try:
        sa.event.listen(db.engine, "before_cursor_execute", record_statement)
        thing = _Thing(given="x")
        insert(db.session.connection(), thing)
        db.session.commit()
        sa.event.remove(db.engine, "before_cursor_execute", record_statement)
        assert sa.inspect(thing).detached
        assert (thing.given, thing.by_database, thing.by_python, thing.by_nothing) == (
            "x",
            7,
            "py",
            None,
        )
        assert isinstance(thing.id, int)
        (statement,) = sent
        assert "by_database" not in statement.split("VALUES")[0]  # the database's to fill
        assert "by_nothing" not in statement.split("VALUES")[0]
    finally:
        _Thing.__table__.drop(db.engine)


def test_a_profile_change_of_a_deleted_account_writes_nothing(ctx):
    user, credential = create("customer")
    reader = repository.find_credential(credential.key).user
    db.session.execute(sa.delete(User).where(User.id == user.id))
    db.session.commit()
    with pytest.raises(repository.AccountGone):
        repository.update_profile(user=reader, changes={"city": "Paris"}, context=CONTEXT)
    assert [e.event for e in repository.audit_events(email=user.email)] == ["account_created"]


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
            _, credential = create("customer")
            sa.event.listen(db.engine, "after_cursor_execute", after)
            assert repository.email_exists("nobody@example.org") is False
            assert repository.find_credential(credential.key).key == credential.key
            assert repository.credential_identity(credential.key).role == "Customer"
            assert [status for _, status in seen] == [psycopg.pq.TransactionStatus.IDLE] * 3
            seen.clear()
            create("customer")  # one transaction
            statuses = {status for verb, status in seen if verb == "INSERT"}
            assert statuses == {psycopg.pq.TransactionStatus.INTRANS}
        finally:
            sa.event.remove(db.engine, "after_cursor_execute", after)
            empty_account_tables()
            db.engine.dispose()
