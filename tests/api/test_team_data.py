"""The data behind companies and teams, on SQLite and Postgres: the member search's case
folding beyond ASCII, migration 0008 on existing rows, the unique role name per company,
and the guard that keeps a locked change in one transaction."""

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from sqlalchemy.exc import IntegrityError

from app import repository
from app.extensions import db
from app.models import ADMIN_ROLE_ID, CUSTOM_ROLE, Role, User, new_uuid
from app.permissions import tree_of
from app.repository.team_reads import role_name_key
from tests.helpers import Team


@pytest.fixture
def client(mail_app):
    return mail_app.test_client()


@pytest.fixture
def team(mail_app, api, smtp_server):
    return Team(mail_app, api, smtp_server)


def test_the_member_search_folds_case_beyond_ascii(team):
    boss = team.admin(first_name="Bea", last_name="Boss")
    tickets = team.role(boss, "Tickets", "application.tickets")
    elodie = team.join(boss, tickets["id"], first_name="Élodie", last_name="Ørsted")
    for q in ("élodie", "ÉLODIE", "ørsted", "ØRSTED"):
        response = team.members(boss, q=q)
        assert response.status_code == 200
        assert [m["id"] for m in response.get_json()["data"]["members"]] == [elodie.id], q


def custom_role(company_id, name):
    return Role(
        id=new_uuid(),
        company_id=company_id,
        name=name,
        name_key=role_name_key(name),
        description="",
        category=CUSTOM_ROLE,
        permission=tree_of(()),
    )


def test_a_role_name_is_unique_per_company_by_case_folding(team, mail_app):
    first, second = team.admin(), team.admin()
    with mail_app.app_context():
        connection = db.session.connection()
        repository.core.insert(connection, custom_role(first.user["company"]["id"], "Agents"))
        # Another company may use the name.
        repository.core.insert(connection, custom_role(second.user["company"]["id"], "AGENTS"))
        db.session.commit()
        with pytest.raises(IntegrityError):
            connection = db.session.connection()
            repository.core.insert(
                connection, custom_role(first.user["company"]["id"], "ＡＧＥＮＴＳ")
            )
        db.session.rollback()


def test_migration_0008_keeps_existing_admins_as_members(team, mail_app):
    """Downgraded to 0007 (custom roles fall back to Admin) and upgraded again, an admin
    of before is a member who joined when the account was made."""
    boss = team.admin()
    with mail_app.app_context():
        downgrade(revision="0007_security_version")
        upgrade()
        user = db.session.get(User, boss.id)
        assert user.joined_at is not None and user.joined_at == user.created_at
        assert user.role_id == ADMIN_ROLE_ID
        keys = db.session.execute(sa.select(Role.name, Role.name_key)).all()
        assert sorted(keys) == [("Admin", "admin"), ("Customer", "customer")]
    listed = team.members(boss)
    assert [m["id"] for m in listed.get_json()["data"]["members"]] == [boss.id]


def test_a_read_that_would_commit_inside_a_locked_change_raises(team, mail_app):
    boss = team.admin()
    with mail_app.test_request_context(), pytest.raises(RuntimeError):
        with repository.team_change(
            company_id=boss.user["company"]["id"],
            actor_id=boss.id,
            context=repository.AuditContext(),
        ):
            repository.account_by_id(boss.id)  # ends its read transaction: not here
    with mail_app.app_context():  # and the change's lock went with the rollback
        assert db.session.get(User, boss.id).company_id == boss.user["company"]["id"]
