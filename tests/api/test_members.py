"""Members of a company (the contract's "Companies and teams", "Members"): the list and
its paging, changing a member's role, removing a member or leaving, who may do it, the
last-Admin rule (account deletion included) and PATCH /company for a custom role. Written
from the contract alone, through the app factory's HTTP API."""

import uuid

import pytest
import sqlalchemy as sa

from app.extensions import db
from tests.helpers import (
    COMPANY_PATH,
    CUSTOMER_ROLE,
    INVITATIONS_PATH,
    MEMBERS_PATH,
    RFC3339_UTC,
    Api,
    Team,
    audited,
    customer_role_id,
    error_code,
    error_of,
    fresh_email,
    permission_tree,
    signup_body,
    tree,
)

MEMBER_KEYS = {
    "id",
    "first_name",
    "last_name",
    "email",
    "avatar",
    "email_verified",
    "role",
    "joined_at",
}
MEMBER_ROLE_KEYS = {"id", "name", "category"}
EMPTY_COMPANY = {"id": "", "name": "", "phone": "", "address": "", "describe": "", "email": ""}

# An id no row has (fixed: pytest-xdist needs the same parameters in every worker).
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def client(mail_app):
    """The mail app's client (invitation links come from the SMTP sink)."""
    return mail_app.test_client()


@pytest.fixture
def team(mail_app, api, smtp_server):
    """Companies and members through the API."""
    return Team(mail_app, api, smtp_server)


@pytest.fixture
def boss(team):
    """A new admin, the only member of a new company."""
    return team.admin(first_name="Bea", last_name="Boss")


@pytest.fixture
def admin_id(team, boss):
    """The Admin role's id."""
    return team.admin_role_id(boss)


@pytest.fixture
def tickets(team, boss):
    """A custom role holding only the tickets."""
    return team.role(boss, "Tickets", "application.tickets")


def listed(team, person, **params):
    """The members one page lists (asserting 200)."""
    response = team.members(person, **params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]["members"]


def ids(members):
    """Their ids, in order."""
    return [member["id"] for member in members]


def every_page(team, person, limit, **params):
    """Follow next_cursor to the end: the pages' member ids."""
    pages, cursor = [], None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = team.members(person, **query)
        assert response.status_code == 200, response.get_data(as_text=True)
        data = response.get_json()["data"]
        pages.append(ids(data["members"]))
        cursor = data["next_cursor"]
        if cursor is None:
            return pages
        assert isinstance(cursor, str) and cursor
        assert len(pages) < 50


def logged_in(team, person):
    """Log the person in again: (token, user)."""
    response = team.api.login(person.email, person.password)
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()["data"]
    return data["access_token"], data["user"]


class TestList:
    def test_the_only_member(self, team, boss, admin_id):
        response = team.members(boss)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        assert body["error"] is None
        assert set(body["data"]) == {"members", "next_cursor"}
        assert body["data"]["next_cursor"] is None
        (member,) = body["data"]["members"]
        assert set(member) == MEMBER_KEYS
        joined_at = member.pop("joined_at")
        assert RFC3339_UTC.fullmatch(joined_at), joined_at
        assert member == {
            "id": boss.id,
            "first_name": "Bea",
            "last_name": "Boss",
            "email": boss.email,
            "avatar": "",
            "email_verified": False,
            "role": {"id": admin_id, "name": "Admin", "category": "SYSTEM ROLE"},
        }

    def test_a_member_who_joined_by_invitation(self, team, boss, tickets):
        member = team.join(boss, tickets["id"], first_name="Ann", last_name="Agent")
        first, second = listed(team, boss)
        assert first["id"] == boss.id
        assert set(second) == MEMBER_KEYS
        assert {key: second[key] for key in MEMBER_KEYS - {"joined_at"}} == {
            "id": member.id,
            "first_name": "Ann",
            "last_name": "Agent",
            "email": member.email,
            "avatar": "",
            "email_verified": True,  # the link proved the address
            "role": {"id": tickets["id"], "name": "Tickets", "category": "CUSTOM ROLE"},
        }
        assert RFC3339_UTC.fullmatch(second["joined_at"])

    def test_the_list_shows_the_profile_and_verification_as_they_are(self, team, boss):
        avatar = "https://example.org/bea.png"
        response = team.client.patch(
            "/api/v1/auth/me", json={"avatar": avatar, "first_name": "Beatrix"}, headers=boss.auth
        )
        assert response.status_code == 200
        (member,) = listed(team, boss)
        assert (member["avatar"], member["first_name"]) == (avatar, "Beatrix")

    def test_every_member_sees_the_same_list(self, team, boss, admin_id):
        viewers = team.role(boss, "Viewers", "platform.admins.view")
        member = team.join(boss, viewers["id"])
        assert listed(team, member) == listed(team, boss)

    def test_oldest_member_first(self, team, boss, tickets):
        joined = [team.join(boss, tickets["id"]) for _ in range(3)]
        members = listed(team, boss)
        assert ids(members) == [boss.id] + [m.id for m in joined]
        times = [m["joined_at"] for m in members]
        assert times == sorted(times)

    def test_oldest_by_membership_not_by_account(self, team, boss, tickets):
        """Assumed: "oldest member" is by when the account joined the company."""
        early = team.customer()
        newcomer = team.join(boss, tickets["id"])
        team.bring_in(boss, early, tickets["id"])
        assert ids(listed(team, boss)) == [boss.id, newcomer.id, early.id]

    def test_only_this_companys_members(self, team, boss):
        other = team.admin()
        team.join(other)
        team.customer()
        assert ids(listed(team, boss)) == [boss.id]

    def test_q_is_a_case_insensitive_substring_of_names_and_email(self, team, boss, tickets):
        joanna = team.join(
            boss, tickets["id"], email=fresh_email("jo.bloggs"), first_name="Joanna", last_name="X"
        )
        anne = team.join(
            boss, tickets["id"], email=fresh_email("zed"), first_name="Anne", last_name="Smith"
        )
        alpha = team.join(
            boss, tickets["id"], email=fresh_email("q"), first_name="Bob", last_name="Alphabet"
        )
        assert ids(listed(team, boss, q="ANN")) == [joanna.id, anne.id]
        assert ids(listed(team, boss, q="aLpHa")) == [alpha.id]
        assert ids(listed(team, boss, q="SMITH")) == [anne.id]
        assert ids(listed(team, boss, q="JO.BLOGGS")) == [joanna.id]
        assert ids(listed(team, boss, q=anne.email.upper())) == [anne.id]
        assert ids(listed(team, boss, q="@EXAMPLE.ORG")) == [boss.id, joanna.id, anne.id, alpha.id]
        response = team.members(boss, q="nobody-has-this")
        assert response.get_json()["data"] == {"members": [], "next_cursor": None}

    def test_q_folds_the_case_of_every_letter(self, team, boss, tickets):
        emile = team.join(boss, tickets["id"], first_name="Émile", last_name="Ärger")
        for q in ("émile", "ÉMILE", "ärg", "ÄRGER", "MILE"):
            assert ids(listed(team, boss, q=q)) == [emile.id], q

    @pytest.mark.parametrize("q", ["%", "_", "\\", "B%s", "b_a"])
    def test_q_is_a_plain_substring_not_a_pattern(self, team, boss, tickets, q):
        team.join(boss, tickets["id"], first_name="100%", last_name="Sure_Thing")
        expected = [m for m in listed(team, boss) if _contains(m, q)]
        assert ids(listed(team, boss, q=q)) == ids(expected)

    def test_pages_follow_next_cursor(self, team, boss, tickets):
        joined = [team.join(boss, tickets["id"]) for _ in range(4)]
        everyone = [boss.id] + [m.id for m in joined]
        assert every_page(team, boss, 2) == [everyone[0:2], everyone[2:4], everyone[4:]]
        assert every_page(team, boss, 1) == [[each] for each in everyone]
        assert every_page(team, boss, 5) == [everyone]
        assert every_page(team, boss, 100) == [everyone]

    def test_q_pages_too(self, team, boss, tickets):
        found = [team.join(boss, tickets["id"], last_name="Findme") for _ in range(3)]
        team.join(boss, tickets["id"], last_name="Other")
        pages = every_page(team, boss, 2, q="findME")
        assert pages == [[found[0].id, found[1].id], [found[2].id]]

    def test_without_a_limit_one_page_lists_them(self, team, boss, tickets):
        team.join(boss, tickets["id"])
        data = team.members(boss).get_json()["data"]
        assert (len(data["members"]), data["next_cursor"]) == (2, None)

    @pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "", "1e1", "50x"])
    def test_a_bad_limit_is_400(self, team, boss, limit):
        response = team.members(boss, limit=limit)
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert "limit" in error_of(response)["fields"]

    @pytest.mark.parametrize("cursor", ["garbage", "AAAAAAAA", "x" * 300, "eyJpZCI6MX0", "%00"])
    def test_a_bad_cursor_is_400(self, team, boss, cursor):
        response = team.members(boss, cursor=cursor)
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert "cursor" in error_of(response)["fields"]

    def test_a_cursor_of_the_invitations_list_is_400(self, team, boss, tickets):
        for _ in range(2):
            team.invitation(boss, fresh_email("invited"), tickets["id"])
        cursor = team.invitations(boss, limit=1).get_json()["data"]["next_cursor"]
        assert cursor
        response = team.members(boss, cursor=cursor)
        assert error_code(response) == (400, "VALIDATION_ERROR")


def _contains(member, q):
    """Does q occur, case-insensitively, in the member's names or address?"""
    fields = (member["first_name"], member["last_name"], member["email"])
    return any(q.casefold() in field.casefold() for field in fields)


class TestQueryCount:
    """A page costs a fixed number of SQL statements whatever the company's size."""

    def fill(self, team, boss, role_id, count):
        emails = [fresh_email("bulk") for _ in range(count)]
        for email in emails:
            team.invitation(boss, email, role_id)
        for email in emails:
            response = team.accept_new(team.link(email))
            assert response.status_code == 201, response.get_data(as_text=True)

    def statements(self, app, team, person):
        """How many statements one GET /company/members runs (after a warm-up)."""
        warm_up = team.members(person)  # the default limit, 50, lists them all
        assert warm_up.status_code == 200
        assert warm_up.get_json()["data"]["next_cursor"] is None
        with app.app_context():
            engine = db.engine
        seen = []

        def count(conn, cursor, statement, parameters, context, executemany):
            seen.append(statement)

        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            response = team.members(person, limit=50)
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert response.status_code == 200
        return len(response.get_json()["data"]["members"]), len(seen)

    def test_3_and_30_members_cost_the_same(self, team, mail_app):
        small, large = team.admin(), team.admin()
        small_role = team.role(small, "Tickets", "application.tickets")
        large_role = team.role(large, "Tickets", "application.tickets")
        self.fill(team, small, small_role["id"], 2)
        self.fill(team, large, large_role["id"], 29)
        small_listed, small_count = self.statements(mail_app, team, small)
        large_listed, large_count = self.statements(mail_app, team, large)
        assert (small_listed, large_listed) == (3, 30)
        assert large_count == small_count


class TestWhoMay:
    def test_another_method_is_405(self, team, boss):
        for response in (
            team.client.put(f"{MEMBERS_PATH}/{boss.id}", json={}, headers=boss.auth),
            team.client.get(f"{MEMBERS_PATH}/{boss.id}", headers=boss.auth),
            team.client.post(MEMBERS_PATH, json={}, headers=boss.auth),
        ):
            assert error_code(response) == (405, "METHOD_NOT_ALLOWED")
            assert response.headers["Allow"]

    def test_a_customer_is_403_everywhere(self, team, boss, tickets):
        customer = team.customer()
        answers = [
            team.members(customer),
            team.set_role(customer, boss.id, tickets["id"]),
            team.remove(customer, boss.id),
            team.remove(customer, customer.id),
            team.set_role(customer, str(uuid.uuid4()), tickets["id"]),
        ]
        assert [error_code(r) for r in answers] == [(403, "FORBIDDEN")] * 5

    def test_the_body_is_read_before_the_role_is_checked(self, team, boss):
        customer = team.customer()
        bad_json = team.client.patch(
            f"{MEMBERS_PATH}/{boss.id}",
            data="{",
            content_type="application/json",
            headers=customer.auth,
        )
        assert error_code(bad_json) == (400, "INVALID_JSON")

    def test_without_a_token_401(self, team, boss):
        for response in (
            team.client.get(MEMBERS_PATH),
            team.client.delete(f"{MEMBERS_PATH}/{boss.id}"),
            team.client.get(MEMBERS_PATH, headers={"Authorization": "Bearer x.y.z"}),
        ):
            assert error_code(response) == (401, "INVALID_TOKEN")
            assert response.headers["WWW-Authenticate"] == "Bearer"

    def test_without_admins_view_403(self, team, boss, tickets):
        member = team.join(boss, tickets["id"])
        other = team.join(boss, tickets["id"])
        answers = [
            team.members(member),
            team.set_role(member, other.id, tickets["id"]),
            team.remove(member, other.id),
            team.client.get(INVITATIONS_PATH, headers=member.auth),
        ]
        assert [error_code(r) for r in answers] == [(403, "FORBIDDEN")] * 4

    def test_admins_view_lists_but_does_not_change(self, team, boss, tickets):
        viewers = team.role(boss, "Viewers", "platform.admins.view", "application.tickets")
        member = team.join(boss, viewers["id"])
        other = team.join(boss, tickets["id"])
        assert len(listed(team, member)) == 3
        answers = [
            team.set_role(member, other.id, tickets["id"]),
            team.remove(member, other.id),
            # The role is checked before the member named in the path.
            team.set_role(member, str(uuid.uuid4()), tickets["id"]),
            team.remove(member, "not-a-uuid"),
        ]
        assert [error_code(r) for r in answers] == [(403, "FORBIDDEN")] * 4
        assert ids(listed(team, boss)) == [boss.id, member.id, other.id]

    def test_any_member_may_leave_without_admins_all(self, team, boss, tickets):
        member = team.join(boss, tickets["id"])
        assert team.remove(member, member.id).status_code == 204
        assert ids(listed(team, boss)) == [boss.id]


class TestChangeRole:
    def test_200_with_the_member(self, team, boss, tickets, mail_app):
        member = team.join(boss, tickets["id"])
        labels = team.role(boss, "Labels", "application.labels")
        response = team.set_role(boss, member.id, labels["id"])
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        assert body["error"] is None and list(body["data"]) == ["member"]
        changed = body["data"]["member"]
        assert set(changed) == MEMBER_KEYS
        assert changed["id"] == member.id
        assert changed["role"] == {"id": labels["id"], "name": "Labels", "category": "CUSTOM ROLE"}
        assert listed(team, boss)[1] == changed
        role = team.me(member).get_json()["data"]["user"]["role"]
        assert (role["name"], role["category"]) == ("Labels", "CUSTOM ROLE")
        assert role["permission"] == tree("application.labels")
        assert audited(mail_app, "member_role_changed", boss.id, member.id)

    def test_a_promotion_to_admin(self, team, boss, tickets, admin_id):
        member = team.join(boss, tickets["id"])
        response = team.set_role(boss, member.id, admin_id)
        assert response.get_json()["data"]["member"]["role"] == {
            "id": admin_id,
            "name": "Admin",
            "category": "SYSTEM ROLE",
        }
        assert team.me(member).get_json()["data"]["user"]["role"]["name"] == "Admin"
        assert team.members(member).status_code == 200  # the same token, seen at once

    def test_a_demotion_is_seen_at_once_and_ends_no_session(self, team, boss, tickets):
        viewers = team.role(boss, "Viewers", "platform.admins.view")
        member = team.join(boss, viewers["id"])
        assert team.members(member).status_code == 200
        assert team.set_role(boss, member.id, tickets["id"]).status_code == 200
        assert error_code(team.members(member)) == (403, "FORBIDDEN")
        assert team.me(member).status_code == 200

    @pytest.mark.parametrize(
        "role_id", ["customer", "unknown", "theirs", "not-a-uuid", "", None, 5, ["x"]]
    )
    def test_a_role_id_that_is_not_admin_or_a_custom_role_of_the_company(
        self, team, boss, tickets, mail_app, role_id
    ):
        member = team.join(boss, tickets["id"])
        if role_id == "customer":
            sent = customer_role_id(mail_app)
        elif role_id == "unknown":
            sent = str(uuid.uuid4())
        elif role_id == "theirs":
            sent = team.role(team.admin(), "Theirs", "application.tickets.view")["id"]
        else:
            sent = role_id
        response = team.set_role(boss, member.id, sent)
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert "role_id" in error_of(response)["fields"]
        assert listed(team, boss)[1]["role"]["id"] == tickets["id"]

    @pytest.mark.parametrize("body", [{}, {"role": "x"}, {"role_id": "R", "first_name": "Eve"}])
    def test_an_empty_object_or_an_unknown_key_is_refused(self, team, boss, tickets, body):
        member = team.join(boss, tickets["id"])
        body = {key: tickets["id"] if value == "R" else value for key, value in body.items()}
        response = team.client.patch(f"{MEMBERS_PATH}/{member.id}", json=body, headers=boss.auth)
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert listed(team, boss)[1]["first_name"] != "Eve"

    def test_a_member_of_another_company_is_404(self, team, boss, admin_id):
        other = team.admin()
        response = team.set_role(boss, other.id, admin_id)
        assert error_code(response) == (404, "NOT_FOUND")
        assert error_code(team.set_role(boss, team.customer().id, admin_id)) == (404, "NOT_FOUND")

    @pytest.mark.parametrize("user_id", [UNKNOWN_ID, "not-a-uuid", "1"])
    def test_no_such_member_is_404(self, team, boss, admin_id, user_id):
        assert error_code(team.set_role(boss, user_id, admin_id)) == (404, "NOT_FOUND")

    def test_the_member_is_checked_before_the_body(self, team, boss):
        response = team.client.patch(f"{MEMBERS_PATH}/{uuid.uuid4()}", json={}, headers=boss.auth)
        assert error_code(response) == (404, "NOT_FOUND")


class TestPermissionNotHeld:
    """The acting member's role holds the admins (all, view) and the tickets (all, view)."""

    @pytest.fixture
    def people(self, team, boss):
        return team.role(boss, "People", "platform.admins", "application.tickets")

    @pytest.fixture
    def actor(self, team, boss, people):
        return team.join(boss, people["id"])

    def test_within_what_is_held(self, team, boss, actor, people, tickets):
        member = team.join(boss, tickets["id"])
        viewers = team.role(boss, "Viewers", "application.tickets.view")
        assert team.set_role(actor, member.id, viewers["id"]).status_code == 200
        assert team.set_role(actor, member.id, people["id"]).status_code == 200
        assert team.remove(actor, member.id).status_code == 204

    def test_giving_a_role_that_holds_more_is_403(self, team, boss, actor, tickets, admin_id):
        member = team.join(boss, tickets["id"])
        billing = team.role(boss, "Billing", "application.tickets", "platform.billing.view")
        for role_id in (billing["id"], admin_id):
            response = team.set_role(actor, member.id, role_id)
            assert error_code(response) == (403, "PERMISSION_NOT_HELD")
        assert listed(team, boss)[2]["role"]["id"] == tickets["id"]

    def test_acting_on_a_member_who_holds_more_is_403(self, team, boss, actor, tickets):
        billing = team.role(boss, "Billing", "platform.billing.view")
        member = team.join(boss, billing["id"])
        assert error_code(team.set_role(actor, member.id, tickets["id"])) == (
            403,
            "PERMISSION_NOT_HELD",
        )
        assert error_code(team.remove(actor, member.id)) == (403, "PERMISSION_NOT_HELD")
        assert member.id in ids(listed(team, boss))

    def test_it_comes_after_the_field_rules(self, team, boss, actor, mail_app):
        response = team.set_role(actor, boss.id, customer_role_id(mail_app))
        assert error_code(response) == (400, "VALIDATION_ERROR")

    def test_it_comes_before_last_admin(self, team, boss, actor, tickets):
        # Demoting or removing the last Admin would be 409; the actor may not act on them.
        assert error_code(team.set_role(actor, boss.id, tickets["id"])) == (
            403,
            "PERMISSION_NOT_HELD",
        )
        assert error_code(team.remove(actor, boss.id)) == (403, "PERMISSION_NOT_HELD")


class TestLastAdmin:
    @pytest.fixture
    def everything(self, team, boss):
        """A custom role holding every permission (it is not the Admin role)."""
        response = team.create_role(boss, "Everything", permission_tree(True))
        assert response.status_code == 201
        return response.get_json()["data"]["role"]

    def test_the_only_member_cannot_be_demoted_or_leave(self, team, boss, everything):
        assert error_code(team.set_role(boss, boss.id, everything["id"])) == (409, "LAST_ADMIN")
        assert error_code(team.remove(boss, boss.id)) == (409, "LAST_ADMIN")
        assert team.me(boss).get_json()["data"]["user"]["role"]["name"] == "Admin"

    def test_the_last_admin_of_a_company_with_members(self, team, boss, everything, tickets):
        team.join(boss, tickets["id"])
        assert error_code(team.set_role(boss, boss.id, everything["id"])) == (409, "LAST_ADMIN")
        assert error_code(team.remove(boss, boss.id)) == (409, "LAST_ADMIN")
        assert error_code(team.delete_account(boss)) == (409, "LAST_ADMIN")
        assert team.me(boss).get_json()["data"]["user"]["role"]["name"] == "Admin"
        assert team.api.login(boss.email).status_code == 200

    def test_a_member_holding_everything_still_cannot_remove_the_last_admin(
        self, team, boss, everything
    ):
        deputy = team.join(boss, everything["id"])
        assert error_code(team.set_role(deputy, boss.id, everything["id"])) == (409, "LAST_ADMIN")
        assert error_code(team.remove(deputy, boss.id)) == (409, "LAST_ADMIN")
        assert ids(listed(team, boss)) == [boss.id, deputy.id]

    def test_with_two_admins_one_may_go(self, team, boss, everything, admin_id):
        second = team.join(boss)
        assert team.set_role(boss, second.id, everything["id"]).status_code == 200
        assert error_code(team.set_role(boss, boss.id, everything["id"])) == (409, "LAST_ADMIN")
        assert team.set_role(boss, second.id, admin_id).status_code == 200
        assert team.set_role(boss, boss.id, everything["id"]).status_code == 200
        assert error_code(team.remove(second, second.id)) == (409, "LAST_ADMIN")

    def test_an_admin_leaves_while_another_stays(self, team, boss):
        second = team.join(boss)
        assert team.remove(second, second.id).status_code == 204
        assert ids(listed(team, boss)) == [boss.id]

    def test_an_admin_deletes_the_account_while_another_stays(self, team, boss):
        second = team.join(boss)
        assert team.delete_account(boss).status_code == 204
        assert ids(listed(team, second)) == [second.id]

    def test_a_member_deletes_the_account(self, team, boss, tickets):
        member = team.join(boss, tickets["id"])
        assert team.delete_account(member).status_code == 204
        assert ids(listed(team, boss)) == [boss.id]

    def test_the_only_member_deletes_the_account_and_the_company(self, team, boss):
        assert team.delete_account(boss).status_code == 204
        assert error_code(team.me(boss)) == (401, "INVALID_TOKEN")
        again = signup_body(email=boss.email)
        assert team.api.signup("admin", again).status_code == 201


class TestRemoval:
    def test_a_removed_member_becomes_a_customer(self, team, boss, tickets, mail_app):
        member = team.join(boss, tickets["id"])
        response = team.remove(boss, member.id)
        assert response.status_code == 204 and response.get_data() == b""
        assert error_code(team.me(member)) == (401, "INVALID_TOKEN")
        assert error_code(team.members(member)) == (401, "INVALID_TOKEN")
        token, user = logged_in(team, member)  # address and password kept
        assert user["email"] == member.email
        assert user["role"] == CUSTOMER_ROLE
        assert user["company"] == EMPTY_COMPANY
        assert user["state"] == "ACTIVED"
        me = team.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.get_json()["data"]["user"] == user
        assert ids(listed(team, boss)) == [boss.id]
        assert audited(mail_app, "member_removed", boss.id, member.id)

    def test_the_removed_member_is_told_by_mail(self, team, boss, tickets):
        member = team.join(boss, tickets["id"])
        team.mails("member_removed")
        team.remove(boss, member.id)
        assert len(team.mails("member_removed", member.email)) == 1
        assert team.mails("member_removed", boss.email) == []

    def test_the_mail_speaks_the_members_language(self, team, boss, tickets):
        english = team.join(boss, tickets["id"])
        french = team.join(boss, tickets["id"])
        response = team.client.patch(
            "/api/v1/auth/me", json={"language": "fr"}, headers=french.auth
        )
        assert response.status_code == 200
        team.remove(boss, english.id)
        team.remove(boss, french.id)
        (to_english,) = team.mails("member_removed", english.email)
        (to_french,) = team.mails("member_removed", french.email)
        assert to_english["Subject"] != to_french["Subject"]

    def test_the_mail_greets_by_name_in_the_removing_requests_language(self, team, boss, tickets):
        """No language of its own: the Accept-Language of the request that removed it."""
        plain = team.join(boss, tickets["id"], first_name="Olaf")
        french = team.join(boss, tickets["id"], first_name="Odile")
        team.remove(boss, plain.id)
        team.client.delete(
            f"{MEMBERS_PATH}/{french.id}", headers={**boss.auth, "Accept-Language": "fr-CA"}
        )
        (to_plain,) = team.mails("member_removed", plain.email)
        (to_french,) = team.mails("member_removed", french.email)
        assert "Olaf" in to_plain.get_body(preferencelist=("plain",)).get_content()
        assert "Odile" in to_french.get_body(preferencelist=("plain",)).get_content()
        assert to_plain["Subject"] != to_french["Subject"]

    def test_the_mail_escapes_the_company_in_html(self, team, boss, tickets):
        team.client.patch(COMPANY_PATH, json={"name": "<i>Acme</i>"}, headers=boss.auth)
        member = team.join(boss, tickets["id"], first_name="<b>Ann</b>")
        team.remove(boss, member.id)
        (message,) = team.mails("member_removed", member.email)
        assert message.get_content_type() == "multipart/alternative"
        html = message.get_body(preferencelist=("html",)).get_content()
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert "<b>Ann</b>" in text and "&lt;b&gt;Ann&lt;/b&gt;" in html
        assert "<i>Acme" not in html and "<b>Ann" not in html

    def test_the_notice_to_a_verified_address_is_never_suppressed(self, make_app, smtp_server):
        limited = make_app(
            SMTP_URL=smtp_server.url,
            RATELIMIT_ENABLED=True,
            RATELIMIT_MAIL_PER_ADDRESS="1/hour",
            RATELIMIT_KEY_PREFIX=f"lumyri-test-{uuid.uuid4().hex[:8]}",
        )
        team = Team(limited, Api(limited.test_client()), smtp_server)
        boss = team.admin()
        member = team.join(boss)  # its one invitation mail spent the address's count
        assert team.remove(boss, member.id).status_code == 204
        assert len(team.mails("member_removed", member.email)) == 1

    def test_leaving_sends_no_mail(self, team, boss, tickets, mail_app):
        member = team.join(boss, tickets["id"])
        assert team.remove(member, member.id).status_code == 204
        assert error_code(team.me(member)) == (401, "INVALID_TOKEN")
        assert team.mails("member_removed") == []
        _, user = logged_in(team, member)
        assert (user["role"], user["company"], user["state"]) == (
            CUSTOMER_ROLE,
            EMPTY_COMPANY,
            "ACTIVED",
        )
        assert audited(mail_app, "member_removed", member.id)

    def test_every_session_of_the_removed_member_ends(self, team, boss, tickets):
        member = team.join(boss, tickets["id"])
        second_token, _ = logged_in(team, member)
        team.remove(boss, member.id)
        for token in (member.token, second_token):
            response = team.client.get(
                "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
            )
            assert error_code(response) == (401, "INVALID_TOKEN")

    def test_a_removed_admin_is_actived_too(self, team, boss):
        """The first admin's state is CARD_NOT_FOUND; removed, it is ACTIVED."""
        second = team.join(boss)
        assert boss.user["state"] == "CARD_NOT_FOUND"
        assert team.remove(second, boss.id).status_code == 204
        _, user = logged_in(team, boss)
        assert (user["role"], user["company"], user["state"]) == (
            CUSTOMER_ROLE,
            EMPTY_COMPANY,
            "ACTIVED",
        )

    def test_a_removed_member_is_a_customer_everywhere(self, team, boss, tickets):
        member = team.join(boss, tickets["id"])
        team.remove(boss, member.id)
        token, _ = logged_in(team, member)
        auth = {"Authorization": f"Bearer {token}"}
        assert error_code(team.client.get(MEMBERS_PATH, headers=auth)) == (403, "FORBIDDEN")
        verify = team.client.get("/api/v1/auth/verify", headers=auth)
        assert verify.headers["X-User-Role"] == "Customer"
        assert verify.headers["X-Company-Id"] == ""

    def test_verify_refuses_the_removed_members_token_within_the_cache_window(
        self, team, boss, tickets, make_app, cache_window
    ):
        member = team.join(boss, tickets["id"])
        quick = make_app(TOKEN_CACHE_SECONDS=1).test_client()
        assert quick.get("/api/v1/auth/verify", headers=member.auth).status_code == 200
        team.remove(boss, member.id)
        cache_window.advance(1.1)
        response = quick.get("/api/v1/auth/verify", headers=member.auth)
        assert error_code(response) == (401, "INVALID_TOKEN")

    def test_a_removed_member_may_be_invited_again(self, team, boss, tickets):
        member = team.join(boss, tickets["id"])
        team.remove(boss, member.id)
        member.token, _ = logged_in(team, member)
        team.bring_in(boss, member, tickets["id"])
        assert member.user["company"]["id"] == boss.user["company"]["id"]
        assert ids(listed(team, boss)) == [boss.id, member.id]

    def test_another_companys_member_is_404_and_stays(self, team, boss):
        other = team.admin()
        assert error_code(team.remove(boss, other.id)) == (404, "NOT_FOUND")
        assert ids(listed(team, other)) == [other.id]
        assert error_code(team.remove(boss, team.customer().id)) == (404, "NOT_FOUND")

    @pytest.mark.parametrize("user_id", [UNKNOWN_ID, "not-a-uuid", "0"])
    def test_no_such_member_is_404(self, team, boss, user_id):
        assert error_code(team.remove(boss, user_id)) == (404, "NOT_FOUND")


class TestCompany:
    def test_a_custom_role_holding_admins_all_changes_the_company(self, team, boss):
        people = team.role(boss, "People", "platform.admins")
        member = team.join(boss, people["id"])
        response = team.client.patch(COMPANY_PATH, json={"name": "Acme"}, headers=member.auth)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json()["data"]["user"]["company"]["name"] == "Acme"
        assert team.me(boss).get_json()["data"]["user"]["company"]["name"] == "Acme"

    @pytest.mark.parametrize(
        "grants",
        [
            ("platform.admins.view",),
            ("platform.roles", "platform.billing", "platform.applications", "application.settings"),
        ],
    )
    def test_any_other_member_is_403(self, team, boss, grants):
        role = team.role(boss, "Others", *grants)
        member = team.join(boss, role["id"])
        response = team.client.patch(COMPANY_PATH, json={"name": "Acme"}, headers=member.auth)
        assert error_code(response) == (403, "FORBIDDEN")
        assert team.me(boss).get_json()["data"]["user"]["company"]["name"] == ""
