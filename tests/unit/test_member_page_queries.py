"""The member list's page reads the company's members in order from the index on
(company_id, joined_at, id), on SQLite: no sort of all the members, so a page costs the
same in a company of 10 as in one of 10,000 (bench/README.md: the member list figures).
The statement checked is the one repository.member_page runs, caught as it is sent."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app import create_app, repository
from app.extensions import db
from app.models import ADMIN_ROLE_ID, User, new_uuid
from tests.fixtures import empty_account_tables

INDEX = "ix_users_company_joined"


@pytest.fixture
def sqlite_app(sqlite_database):
    """The app on the session's migrated SQLite file (its plans are what is checked)."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": sqlite_database})
    yield app
    with app.app_context():
        empty_account_tables()
        db.engine.dispose()


def company_of(members):
    """An Admin's company with `members` - 1 more members written with Core; its id."""
    admin = repository.create_account(
        kind="admin",
        record=repository.NewAccount(
            first_name="Page", last_name="Plan", email=f"plan-{new_uuid()}@example.com"
        ),
        password_hash="$argon2id$hash",
        context=repository.AuditContext(),
    ).user
    rows = [
        {
            "id": new_uuid(),
            "first_name": f"M{number}",
            "last_name": "Plan",
            "email": f"m{number}-{admin.company_id}@example.com",
            "email_key": f"m{number}-{admin.company_id}@example.com",
            "password_hash": "$argon2id$hash",
            "state": "ACTIVED",
            "company_id": admin.company_id,
            "role_id": ADMIN_ROLE_ID,
            "joined_at": admin.joined_at + timedelta(microseconds=number),
        }
        for number in range(1, members)
    ]
    with db.engine.begin() as connection:
        connection.execute(sa.insert(User.__table__), rows)
    return admin.company_id


def plans_of(call):
    """The SQLite query plans of the statements `call()` sends, as text each."""
    sent = []

    def catch(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", catch)
    try:
        call()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", catch)
    with db.engine.connect() as connection:
        return [
            "\n".join(
                str(row[-1])
                for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
            for statement, parameters in sent
            if statement.lstrip().upper().startswith("SELECT")
        ]


@pytest.mark.parametrize("query", ["", "m1"])
def test_a_page_is_read_in_order_from_the_index(sqlite_app, query):
    with sqlite_app.app_context():
        company_id = company_of(120)
        first = repository.member_page(company_id=company_id, query=query, after=None, limit=5)
        assert len(first) == 5
        after = (first[-1].joined_at, first[-1].id)
        for page_after in (None, after):
            (plan,) = plans_of(
                lambda page_after=page_after: repository.member_page(
                    company_id=company_id, query=query, after=page_after, limit=51
                )
            )
            assert f"SEARCH users USING INDEX {INDEX} (company_id=?" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
            assert "SCAN users" not in plan, plan
