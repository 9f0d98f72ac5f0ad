"""Companies and teams under real concurrency, on Postgres: the last-Admin rule, invitations
and role changes checked "on the state the change commits on (under its locks), never on a
state read before them". Each race starts its requests together in threads (each with its
own test client, so each in its own transaction); the first write to users, invitations or
roles of each racing request is held for a moment, so that both have read what they read
before either writes. Whatever the interleaving, the contract fixes the outcome; each race
is run ROUNDS times, on a new company each time.

In CI (CI=true) Postgres is required: these tests fail without it, never skip."""

import contextlib
import re
import threading
import time

import pytest
import sqlalchemy as sa

from app.extensions import db
from tests.helpers import (
    CUSTOMER_ROLE,
    Api,
    Person,
    Team,
    audit_rows,
    error_code,
    fresh_email,
    permission_tree,
    together,
)

pytestmark = pytest.mark.postgres

ROUNDS = 3
HELD_WRITE = re.compile(
    r'^\s*(UPDATE|DELETE\s+FROM|INSERT\s+INTO)\s+"?(users|invitations|roles)"?\b', re.IGNORECASE
)


@pytest.fixture(params=range(ROUNDS))
def round_(request):
    """Each race runs ROUNDS times, on a new company each time."""
    return request.param


@pytest.fixture
def database_url(postgres_database):
    """Postgres only: SQLite serialises every write."""
    return postgres_database


@pytest.fixture
def client(mail_app):
    """The mail app's client (invitation links come from the SMTP sink)."""
    return mail_app.test_client()


@pytest.fixture
def team(mail_app, api, smtp_server):
    """Companies and members through the API."""
    return Team(mail_app, api, smtp_server)


@contextlib.contextmanager
def writes_held(app, seconds=0.3):
    """Within the block, each request thread's first write to users, invitations or roles
    waits `seconds` first."""
    with app.app_context():
        engine = db.engine
    local = threading.local()

    def before(conn, cursor, statement, parameters, context, executemany):
        if threading.current_thread() is threading.main_thread():
            return
        if not getattr(local, "held", False) and HELD_WRITE.match(statement):
            local.held = True
            time.sleep(seconds)

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


def race(team, *sends):
    """Run each `send(own_team)` at once, each with a client of its own; the responses."""
    own = [Team(team.app, Api(team.app.test_client()), team.smtp) for _ in sends]
    with writes_held(team.app):
        results = together(*[lambda i=i: sends[i](own[i]) for i in range(len(sends))])
    for response in results:
        assert response is not None, "a racing request did not finish"
        assert response.status_code < 500, response.get_data(as_text=True)
    return results


READS_INVITATIONS = re.compile(r'\bFROM\s+"?invitations"?\b', re.IGNORECASE)


def interleaved(team, second, first, seconds=1.0):
    """`second(own_team)` starts first and is paused right after its first read of the
    invitations table, until `first(own_team)` has answered (at most `seconds`, below the
    lock timeout: a request holding a lock while paused delays the other, never fails it); then it
    goes on. Their responses (second's, first's)."""
    with team.app.app_context():
        engine = db.engine
    has_read, first_answered = threading.Event(), threading.Event()
    paused = threading.local()
    results = {}

    def after(conn, cursor, statement, parameters, context, executemany):
        if threading.current_thread().name != "second" or getattr(paused, "once", False):
            return
        if READS_INVITATIONS.search(statement):
            paused.once = True
            has_read.set()
            first_answered.wait(seconds)

    def run_second():
        results["second"] = second(Team(team.app, Api(team.app.test_client()), team.smtp))

    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        thread = threading.Thread(target=run_second, name="second")
        thread.start()
        assert has_read.wait(10), "the second request never read the invitations"
        results["first"] = first(Team(team.app, Api(team.app.test_client()), team.smtp))
        first_answered.set()
        thread.join(60)
    finally:
        sa.event.remove(engine, "after_cursor_execute", after)
    for response in results.values():
        assert response.status_code < 500, response.get_data(as_text=True)
    return results["second"], results["first"]


def role_names(team, admin):
    """{member id: role name} of the admin's company."""
    response = team.members(admin, limit=100)
    assert response.status_code == 200, response.get_data(as_text=True)
    return {m["id"]: m["role"]["name"] for m in response.get_json()["data"]["members"]}


def outcome(response):
    """A success's status, or an error's (status, code)."""
    return error_code(response) if response.status_code >= 400 else response.status_code


def two_admins(team):
    """A new company with two Admins."""
    boss = team.admin()
    return boss, team.join(boss)


class TestLastAdmin:
    def test_two_admins_demoting_each_other_to_a_full_role_one_wins_409(self, team, round_):
        one, two = two_admins(team)
        full = team.create_role(one, "Everything", permission_tree(True))
        full_id = full.get_json()["data"]["role"]["id"]
        results = race(
            team,
            lambda t: t.set_role(one, two.id, full_id),
            lambda t: t.set_role(two, one.id, full_id),
        )
        assert sorted(r.status_code for r in results) == [200, 409]
        loser = next(r for r in results if r.status_code == 409)
        assert error_code(loser) == (409, "LAST_ADMIN")
        winner_admin = one if results[0].status_code == 200 else two
        names = role_names(team, winner_admin)
        assert sorted(names.values()) == ["Admin", "Everything"]

    def test_two_admins_demoting_each_other_to_a_lesser_role_one_wins_403(self, team, round_):
        one, two = two_admins(team)
        people = team.role(one, "People", "platform.admins")
        results = race(
            team,
            lambda t: t.set_role(one, two.id, people["id"]),
            lambda t: t.set_role(two, one.id, people["id"]),
        )
        assert sorted(r.status_code for r in results) == [200, 403]
        loser = next(r for r in results if r.status_code == 403)
        assert error_code(loser) == (403, "PERMISSION_NOT_HELD")
        winner_admin = one if results[0].status_code == 200 else two
        assert sorted(role_names(team, winner_admin).values()) == ["Admin", "People"]

    def test_two_admins_demoting_each_other_to_a_role_without_admins_all(self, team, round_):
        """The loser's actor no longer holds platform.admins.all: as a request after the
        first it would be 403 FORBIDDEN; the race sentence says 403 PERMISSION_NOT_HELD
        (its new role lacks what the Admin role holds). Either 403 is taken."""
        one, two = two_admins(team)
        tickets = team.role(one, "Tickets", "application.tickets")
        results = race(
            team,
            lambda t: t.set_role(one, two.id, tickets["id"]),
            lambda t: t.set_role(two, one.id, tickets["id"]),
        )
        assert sorted(r.status_code for r in results) == [200, 403]
        loser = next(r for r in results if r.status_code == 403)
        assert error_code(loser) in ((403, "PERMISSION_NOT_HELD"), (403, "FORBIDDEN"))
        winner_admin = one if results[0].status_code == 200 else two
        assert sorted(role_names(team, winner_admin).values()) == ["Admin", "Tickets"]

    def test_two_admins_leaving_at_once_one_stays(self, team, round_):
        one, two = two_admins(team)
        results = race(team, lambda t: t.remove(one, one.id), lambda t: t.remove(two, two.id))
        assert sorted(r.status_code for r in results) == [204, 409]
        assert error_code(next(r for r in results if r.status_code == 409)) == (
            409,
            "LAST_ADMIN",
        )
        stayed = two if results[0].status_code == 204 else one
        assert role_names(team, stayed) == {stayed.id: "Admin"}

    def test_two_admins_removing_each_other_at_once(self, team, round_):
        one, two = two_admins(team)
        results = race(team, lambda t: t.remove(one, two.id), lambda t: t.remove(two, one.id))
        statuses = sorted(r.status_code for r in results)
        # The loser's token died with its removal (401), or it answers as it would
        # after the first: its own membership is gone.
        assert statuses[0] == 204 and statuses[1] in (401, 403, 404), statuses
        survivors = [p for p in (one, two) if team.me(p).status_code == 200]
        assert len(survivors) == 1
        assert role_names(team, survivors[0]) == {survivors[0].id: "Admin"}

    def test_two_admins_deleting_their_accounts_at_once_one_stays(self, team, round_):
        one, two = two_admins(team)
        tickets = team.role(one, "Tickets", "application.tickets")
        team.join(one, tickets["id"])  # the company has other members
        results = race(team, lambda t: t.delete_account(one), lambda t: t.delete_account(two))
        assert sorted(r.status_code for r in results) == [204, 409]
        assert error_code(next(r for r in results if r.status_code == 409)) == (
            409,
            "LAST_ADMIN",
        )
        stayed = two if results[0].status_code == 204 else one
        assert sorted(role_names(team, stayed).values()) == ["Admin", "Tickets"]

    def test_a_demotion_racing_the_other_admins_leaving(self, team, round_):
        one, two = two_admins(team)
        full = team.create_role(one, "Everything", permission_tree(True))
        full_id = full.get_json()["data"]["role"]["id"]
        results = race(
            team, lambda t: t.set_role(one, one.id, full_id), lambda t: t.remove(two, two.id)
        )
        succeeded = [r for r in results if r.status_code in (200, 204)]
        assert len(succeeded) == 1, [r.status_code for r in results]
        loser = next(r for r in results if r not in succeeded)
        assert error_code(loser) == (409, "LAST_ADMIN")


class TestInvitations:
    def test_two_acceptances_as_new_accounts_one_201(self, team, mail_app, round_):
        boss = team.admin()
        email = fresh_email("invited")
        invitation = team.invitation(boss, email, team.admin_role_id(boss))
        token = team.link(email)
        results = race(
            team,
            lambda t: t.accept_new(token, first_name="One"),
            lambda t: t.accept_new(token, first_name="Two"),
        )
        assert sorted(r.status_code for r in results) == [201, 400]
        assert error_code(next(r for r in results if r.status_code == 400)) == (
            400,
            "INVALID_LINK",
        )
        members = team.members(boss).get_json()["data"]["members"]
        assert [m["email"] for m in members].count(email) == 1
        accepted = [
            row
            for row in audit_rows(mail_app, "invitation_accepted")
            if invitation["id"] in row.values()
        ]
        assert len(accepted) == 1

    def test_two_acceptances_by_one_account_one_200(self, team, round_):
        boss = team.admin()
        person = team.customer()
        other_session = team.api.login(person.email).get_json()["data"]["access_token"]
        team.invitation(boss, person.email, team.admin_role_id(boss))
        token = team.link(person.email)
        second = Person(other_session, person.user)
        results = race(team, lambda t: t.accept(token, person), lambda t: t.accept(token, second))
        assert [r.status_code for r in results].count(200) == 1
        loser = next(r for r in results if r.status_code != 200)
        assert error_code(loser) in ((401, "INVALID_TOKEN"), (400, "INVALID_LINK"))
        ids = [m["id"] for m in team.members(boss).get_json()["data"]["members"]]
        assert ids.count(person.id) == 1

    def test_an_acceptance_that_read_the_link_before_another_committed(self, team, round_):
        """The second acceptance has checked the link when the first commits: it answers
        as a request after the first would, 400 INVALID_LINK (a dead link comes before
        every 409), or wins if it holds the lock first; never 409 EMAIL_TAKEN."""
        boss = team.admin()
        email = fresh_email("invited")
        team.invitation(boss, email, team.admin_role_id(boss))
        token = team.link(email)
        second, first = interleaved(
            team,
            lambda t: t.accept_new(token, first_name="Second"),
            lambda t: t.accept_new(token, first_name="First"),
        )
        outcomes = sorted([outcome(second), outcome(first)], key=str)
        assert outcomes == sorted([201, (400, "INVALID_LINK")], key=str), outcomes

    def test_one_account_accepting_two_companies_at_once(self, team, round_):
        """A user belongs to at most one company."""
        person = team.customer()
        other_session = Person(
            team.api.login(person.email).get_json()["data"]["access_token"], person.user
        )
        bosses = [team.admin(), team.admin()]
        links = []
        for boss in bosses:
            team.invitation(boss, person.email, team.admin_role_id(boss))
            links.append(team.link(person.email))
        results = race(
            team,
            lambda t: t.accept(links[0], person),
            lambda t: t.accept(links[1], other_session),
        )
        assert [r.status_code for r in results].count(200) == 1, [outcome(r) for r in results]
        loser = next(r for r in results if r.status_code != 200)
        assert error_code(loser) in ((401, "INVALID_TOKEN"), (409, "ALREADY_IN_COMPANY"))
        winner = bosses[0] if results[0].status_code == 200 else bosses[1]
        loser_boss = bosses[1] if winner is bosses[0] else bosses[0]
        token = next(r for r in results if r.status_code == 200).get_json()["data"]
        me = team.client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {token['access_token']}"}
        ).get_json()["data"]["user"]
        assert me["company"]["id"] == winner.user["company"]["id"]
        assert person.id in role_names(team, winner)
        assert person.id not in role_names(team, loser_boss)
        statuses = [
            i["status"] for i in team.invitations(loser_boss).get_json()["data"]["invitations"]
        ]
        assert statuses == ["pending"]

    @pytest.mark.parametrize("as_admin", [False, True])
    def test_the_only_members_deletion_racing_an_acceptance(self, team, round_, as_admin):
        """Deleting the only member deletes the company; an acceptance that commits first
        makes it a company with another member (the last Admin then stays, unless the
        newcomer is an Admin too). Never a member left in a deleted company."""
        boss = team.admin()
        role_id = (
            team.admin_role_id(boss)
            if as_admin
            else team.role(boss, "Tickets", "application.tickets")["id"]
        )
        email = fresh_email("invited")
        team.invitation(boss, email, role_id)
        token = team.link(email)
        deleted, accepted = race(
            team, lambda t: t.delete_account(boss), lambda t: t.accept_new(token)
        )
        outcomes = (outcome(deleted), outcome(accepted))
        allowed = [(204, (400, "INVALID_LINK"))]
        allowed.append((204, 201) if as_admin else ((409, "LAST_ADMIN"), 201))
        assert outcomes in allowed, outcomes
        if accepted.status_code == 201:
            data = accepted.get_json()["data"]
            newcomer = Person(data["access_token"], data["user"])
            me = team.me(newcomer).get_json()["data"]["user"]
            assert me["company"]["id"] == boss.user["company"]["id"]
            names = role_names(team, newcomer) if as_admin else role_names(team, boss)
            assert "Admin" in names.values()

    def test_two_invitations_of_one_address_at_once(self, team, round_):
        boss = team.admin()
        second = team.join(boss)
        tickets = team.role(boss, "Tickets", "application.tickets")
        email = fresh_email("invited")
        results = race(
            team,
            lambda t: t.invite(boss, email, tickets["id"]),
            lambda t: t.invite(second, email.upper(), tickets["id"]),
        )
        assert sorted(r.status_code for r in results) == [201, 409]
        assert error_code(next(r for r in results if r.status_code == 409)) == (
            409,
            "INVITATION_PENDING",
        )
        listed = team.invitations(boss).get_json()["data"]["invitations"]
        assert [i["email"] for i in listed].count(email) == 1
        assert len(team.mails("invitation", email)) == 1

    def test_a_revocation_racing_an_acceptance(self, team, round_):
        boss = team.admin()
        email = fresh_email("invited")
        invitation = team.invitation(boss, email, team.admin_role_id(boss))
        token = team.link(email)
        revoked, accepted = race(
            team,
            lambda t: t.client.delete(
                f"/api/v1/auth/company/invitations/{invitation['id']}", headers=boss.auth
            ),
            lambda t: t.accept_new(token),
        )
        outcomes = (outcome(revoked), outcome(accepted))
        assert outcomes in (
            (204, (400, "INVALID_LINK")),
            ((409, "INVITATION_CLOSED"), 201),
        ), outcomes
        status = [
            i["status"]
            for i in team.invitations(boss).get_json()["data"]["invitations"]
            if i["id"] == invitation["id"]
        ]
        assert status == (["revoked"] if outcomes[0] == 204 else ["accepted"])


class TestRoles:
    def test_leaving_racing_a_role_change(self, team, round_):
        one = team.admin()
        tickets = team.role(one, "Tickets", "application.tickets")
        labels = team.role(one, "Labels", "application.labels")
        member = team.join(one, tickets["id"])
        left, changed = race(
            team,
            lambda t: t.remove(member, member.id),
            lambda t: t.set_role(one, member.id, labels["id"]),
        )
        assert left.status_code == 204
        assert changed.status_code == 200 or error_code(changed) == (404, "NOT_FOUND")
        assert member.id not in role_names(team, one)
        user = team.api.login(member.email).get_json()["data"]["user"]
        assert (user["role"], user["company"]["id"]) == (CUSTOMER_ROLE, "")

    def test_a_removal_racing_a_role_change(self, team, round_):
        one, two = two_admins(team)
        tickets = team.role(one, "Tickets", "application.tickets")
        labels = team.role(one, "Labels", "application.labels")
        member = team.join(one, tickets["id"])
        removed, changed = race(
            team,
            lambda t: t.remove(one, member.id),
            lambda t: t.set_role(two, member.id, labels["id"]),
        )
        assert removed.status_code == 204
        assert changed.status_code == 200 or error_code(changed) == (404, "NOT_FOUND")
        assert member.id not in role_names(team, one)
        user = team.api.login(member.email).get_json()["data"]["user"]
        assert (user["role"], user["company"]["id"], user["state"]) == (
            CUSTOMER_ROLE,
            "",
            "ACTIVED",
        )

    def test_two_roles_of_one_name_at_once(self, team, round_):
        boss = team.admin()
        second = team.join(boss)
        results = race(
            team,
            lambda t: t.create_role(boss, "Support", permission_tree(False)),
            lambda t: t.create_role(second, "SUPPORT", permission_tree(False)),
        )
        assert sorted([outcome(r) for r in results], key=str) == sorted(
            [201, (409, "ROLE_NAME_TAKEN")], key=str
        )
        roles = team.client.get("/api/v1/auth/company/roles", headers=boss.auth)
        assert [r["name"] for r in roles.get_json()["data"]["roles"]][0] == "Admin"
        assert len(roles.get_json()["data"]["roles"]) == 2

    def test_two_renames_to_one_name_at_once(self, team, round_):
        boss = team.admin()
        second = team.join(boss)
        one = team.role(boss, "One", "application.tickets")
        two = team.role(boss, "Two", "application.tickets")
        results = race(
            team,
            lambda t: t.client.patch(
                f"/api/v1/auth/company/roles/{one['id']}", json={"name": "Same"}, headers=boss.auth
            ),
            lambda t: t.client.patch(
                f"/api/v1/auth/company/roles/{two['id']}",
                json={"name": "same"},
                headers=second.auth,
            ),
        )
        assert sorted([outcome(r) for r in results], key=str) == sorted(
            [200, (409, "ROLE_NAME_TAKEN")], key=str
        )

    def test_a_role_deletion_racing_its_assignment(self, team, round_):
        boss = team.admin()
        tickets = team.role(boss, "Tickets", "application.tickets")
        labels = team.role(boss, "Labels", "application.labels")
        member = team.join(boss, tickets["id"])
        deleted, assigned = race(
            team,
            lambda t: t.client.delete(
                f"/api/v1/auth/company/roles/{labels['id']}", headers=boss.auth
            ),
            lambda t: t.set_role(boss, member.id, labels["id"]),
        )
        outcomes = (outcome(deleted), outcome(assigned))
        assert outcomes in (
            (204, (400, "VALIDATION_ERROR")),
            ((409, "ROLE_IN_USE"), 200),
        ), outcomes
        role = role_names(team, boss)[member.id]
        assert role == ("Tickets" if outcomes[0] == 204 else "Labels")

    def test_a_role_deletion_racing_an_invitation_with_it(self, team, round_):
        boss = team.admin()
        labels = team.role(boss, "Labels", "application.labels")
        email = fresh_email("invited")
        deleted, invited = race(
            team,
            lambda t: t.client.delete(
                f"/api/v1/auth/company/roles/{labels['id']}", headers=boss.auth
            ),
            lambda t: t.invite(boss, email, labels["id"]),
        )
        outcomes = (outcome(deleted), outcome(invited))
        assert outcomes in (
            (204, (400, "VALIDATION_ERROR")),
            ((409, "ROLE_IN_USE"), 201),
        ), outcomes
