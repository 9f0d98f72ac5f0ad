"""Roles of a company (the contract's "Companies and teams", "Roles"): the list, custom
roles created, changed and deleted, the permission tree a request may carry, who may do
it, and how a custom role shows in the user object and at /verify. Written from the
contract alone, through the app factory's HTTP API."""

import copy
import uuid

import pytest

from tests.helpers import (
    ADMIN_ROLE,
    INVITATIONS_PATH,
    ROLES_PATH,
    Team,
    audit_rows,
    audited,
    customer_role_id,
    error_code,
    error_of,
    fresh_email,
    permission_tree,
    tree,
)

ROLE_KEYS = {"id", "name", "description", "category", "permission", "members"}
USER_ROLE_KEYS = {"name", "description", "category", "permission"}

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
    return team.admin()


def roles_of(team, person):
    """GET /company/roles as this person: the roles listed."""
    response = team.client.get(ROLES_PATH, headers=person.auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]["roles"]


def patch_role(team, person, role_id, body):
    """PATCH /company/roles/{id}."""
    return team.client.patch(f"{ROLES_PATH}/{role_id}", json=body, headers=person.auth)


def delete_role(team, person, role_id):
    """DELETE /company/roles/{id}."""
    return team.client.delete(f"{ROLES_PATH}/{role_id}", headers=person.auth)


def assert_validation(response, field):
    """400 VALIDATION_ERROR naming this field."""
    assert response.status_code == 400, response.get_data(as_text=True)
    error = error_of(response)
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["fields"], error


class TestList:
    def test_a_new_company_lists_the_admin_role_alone(self, team, boss):
        response = team.client.get(ROLES_PATH, headers=boss.auth)
        assert response.status_code == 200
        body = response.get_json()
        assert body["error"] is None and list(body["data"]) == ["roles"]
        (admin,) = body["data"]["roles"]
        assert set(admin) == ROLE_KEYS
        assert uuid.UUID(admin["id"])
        assert {key: admin[key] for key in ADMIN_ROLE} == ADMIN_ROLE
        assert admin["members"] == 1

    def test_the_admin_role_has_one_id_in_every_company(self, team, boss):
        other = team.admin()
        assert team.admin_role_id(boss) == team.admin_role_id(other)

    def test_admin_first_then_the_custom_roles_by_name(self, team, boss):
        for name in ("Support", "Billing", "Agents"):
            team.role(boss, name, "application.tickets.view")
        assert [r["name"] for r in roles_of(team, boss)] == [
            "Admin",
            "Agents",
            "Billing",
            "Support",
        ]

    def test_members_counts_the_members_of_each_role(self, team, boss):
        other = team.admin()  # another company's members are not counted
        team.join(other)
        support = team.role(boss, "Support", "application.tickets")
        team.join(boss, support["id"])
        team.join(boss, support["id"])
        team.join(boss)  # a second Admin
        counts = {r["name"]: r["members"] for r in roles_of(team, boss)}
        assert counts == {"Admin": 2, "Support": 2}

    def test_a_removal_lowers_the_count(self, team, boss):
        support = team.role(boss, "Support", "application.tickets")
        member = team.join(boss, support["id"])
        assert team.remove(boss, member.id).status_code == 204
        counts = {r["name"]: r["members"] for r in roles_of(team, boss)}
        assert counts == {"Admin": 1, "Support": 0}

    def test_another_method_is_405(self, team, boss):
        role = team.role(boss, "Support", "application.tickets")
        for response in (
            team.client.get(f"{ROLES_PATH}/{role['id']}", headers=boss.auth),
            team.client.put(f"{ROLES_PATH}/{role['id']}", json={}, headers=boss.auth),
            team.client.delete(ROLES_PATH, headers=boss.auth),
        ):
            assert error_code(response) == (405, "METHOD_NOT_ALLOWED")
            assert response.headers["Allow"]

    def test_another_companys_roles_are_not_listed(self, team, boss):
        team.role(team.admin(), "Theirs", "application.tickets.view")
        assert [r["name"] for r in roles_of(team, boss)] == ["Admin"]


class TestCreate:
    def test_201_with_the_role_object(self, team, boss):
        permission = tree("application.tickets", "platform.admins.view")
        response = team.create_role(boss, " Support ", permission, description=" Answers tickets ")
        assert response.status_code == 201, response.get_data(as_text=True)
        body = response.get_json()
        assert body["error"] is None and list(body["data"]) == ["role"]
        role = body["data"]["role"]
        assert set(role) == ROLE_KEYS
        assert uuid.UUID(role["id"])
        assert role["name"] == "Support"
        assert role["description"] == "Answers tickets"
        assert role["category"] == "CUSTOM ROLE"
        assert role["permission"] == permission
        assert role["members"] == 0
        # Create and list answer the same role object.
        assert [r for r in roles_of(team, boss) if r["id"] == role["id"]] == [role]

    def test_the_description_is_empty_when_left_out(self, team, boss):
        assert team.role(boss, "Support", "application.tickets")["description"] == ""

    def test_keys_not_in_its_list_are_ignored(self, team, boss):
        response = team.client.post(
            ROLES_PATH,
            json={
                "name": "Support",
                "permission": tree(),
                "category": "SYSTEM ROLE",
                "members": 7,
                "id": str(uuid.uuid4()),
            },
            headers=boss.auth,
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        role = response.get_json()["data"]["role"]
        assert (role["category"], role["members"]) == ("CUSTOM ROLE", 0)

    def test_a_role_may_grant_nothing_and_view_without_all(self, team, boss):
        assert team.create_role(boss, "Nothing", permission_tree(False)).status_code == 201
        assert team.role(boss, "Viewer", "platform.billing.view")["permission"] == tree(
            "platform.billing.view"
        )

    @pytest.mark.parametrize("name", ["x", "x" * 64, "  " + "y" * 64 + "  ", "Équipe été"])
    def test_names_of_1_to_64_characters(self, team, boss, name):
        response = team.create_role(boss, name, tree())
        assert response.status_code == 201, response.get_data(as_text=True)
        assert response.get_json()["data"]["role"]["name"] == name.strip()

    @pytest.mark.parametrize(
        "name", ["", "   ", "x" * 65, "a\x00b", "a\nb", "a\x85b", None, 5, ["x"]]
    )
    def test_bad_names(self, team, boss, name):
        assert_validation(team.create_role(boss, name, tree()), "name")

    def test_a_missing_name_or_permission(self, team, boss):
        response = team.client.post(ROLES_PATH, json={}, headers=boss.auth)
        assert_validation(response, "name")
        assert "permission" in error_of(response)["fields"]

    @pytest.mark.parametrize("description", ["d" * 256, None, 3, "a\x00b"])
    def test_bad_descriptions(self, team, boss, description):
        response = team.create_role(boss, "Support", tree(), description=description)
        assert_validation(response, "description")

    def test_a_description_of_255_characters(self, team, boss):
        assert team.create_role(boss, "Support", tree(), description="d" * 255).status_code == 201

    def test_every_broken_rule_at_once(self, team, boss):
        response = team.create_role(boss, "", {"platform": {}}, description="d" * 256)
        assert_validation(response, "name")
        assert {"permission", "description"} <= set(error_of(response)["fields"])

    def test_nothing_is_created_by_a_refused_request(self, team, boss):
        team.create_role(boss, "Support", {"platform": {}})
        assert [r["name"] for r in roles_of(team, boss)] == ["Admin"]


class TestNames:
    @pytest.mark.parametrize(
        ("existing", "taken"),
        [
            ("Support", "Support"),
            ("Support", "support"),
            ("Support", " SUPPORT "),
            ("Straße", "STRASSE"),
        ],
    )
    def test_a_name_the_company_uses_by_case_folding_is_409(self, team, boss, existing, taken):
        team.role(boss, existing, "application.tickets.view")
        response = team.create_role(boss, taken, tree())
        assert error_code(response) == (409, "ROLE_NAME_TAKEN")
        assert len(roles_of(team, boss)) == 2

    @pytest.mark.parametrize("name", ["Admin", "admin", " ADMIN ", "Customer", "cUSTOMER"])
    def test_the_system_roles_names_are_409(self, team, boss, name):
        assert error_code(team.create_role(boss, name, tree())) == (409, "ROLE_NAME_TAKEN")

    def test_another_company_may_use_the_same_name(self, team, boss):
        team.role(boss, "Support", "application.tickets")
        assert team.create_role(team.admin(), "support", tree()).status_code == 201

    def test_a_rename_to_a_taken_name_is_409(self, team, boss):
        team.role(boss, "Support", "application.tickets")
        billing = team.role(boss, "Billing", "platform.billing")
        response = patch_role(team, boss, billing["id"], {"name": "SUPPORT"})
        assert error_code(response) == (409, "ROLE_NAME_TAKEN")
        response = patch_role(team, boss, billing["id"], {"name": "admin"})
        assert error_code(response) == (409, "ROLE_NAME_TAKEN")
        assert sorted(r["name"] for r in roles_of(team, boss)) == ["Admin", "Billing", "Support"]


def _mutations():
    """Trees that break the contract's shape, each with a name."""

    def changed(change):
        def make():
            result = permission_tree(False)
            change(result)
            return result

        return make

    def set_(path, value):
        def change(t):
            *parents, last = path
            node = t
            for key in parents:
                node = node[key]
            node[last] = value

        return change

    def delete(path):
        def change(t):
            *parents, last = path
            node = t
            for key in parents:
                node = node[key]
            del node[last]

        return change

    return {
        "extra section": changed(set_(["reports"], {})),
        "extra resource": changed(set_(["platform", "reports"], {"all": False, "view": False})),
        "missing resource": changed(delete(["application", "labels"])),
        "missing section": changed(delete(["application"])),
        "applications not null": changed(
            set_(["application", "applications"], {"all": False, "view": False})
        ),
        "a resource null": changed(set_(["platform", "billing"], None)),
        "extra level": changed(set_(["platform", "billing", "edit"], False)),
        "missing level": changed(delete(["platform", "billing", "view"])),
        "a level as a string": changed(set_(["platform", "billing", "all"], "true")),
        "a level as a number": changed(set_(["platform", "billing", "view"], 1)),
        "a level null": changed(set_(["platform", "billing", "view"], None)),
        "all without view": changed(set_(["platform", "billing"], {"all": True, "view": False})),
        "a resource as a list": changed(set_(["application", "tickets"], [True, True])),
        "a list": lambda: [permission_tree(False)],
        "a string": lambda: "all",
        "null": lambda: None,
        "empty": lambda: {},
    }


MUTATIONS = _mutations()


class TestPermissionTree:
    @pytest.mark.parametrize("mutation", sorted(MUTATIONS))
    def test_a_tree_of_another_shape_is_refused_on_create(self, team, boss, mutation):
        response = team.create_role(boss, "Support", MUTATIONS[mutation]())
        assert_validation(response, "permission")

    @pytest.mark.parametrize("mutation", sorted(MUTATIONS))
    def test_a_tree_of_another_shape_is_refused_on_change(self, team, boss, mutation):
        role = team.role(boss, "Support", "application.tickets")
        response = patch_role(team, boss, role["id"], {"permission": MUTATIONS[mutation]()})
        assert_validation(response, "permission")
        (kept,) = [r for r in roles_of(team, boss) if r["id"] == role["id"]]
        assert kept["permission"] == role["permission"]


class TestChange:
    def test_200_with_the_role_object(self, team, boss):
        role = team.role(boss, "Support", "application.tickets", description="Tickets")
        team.join(boss, role["id"])
        response = patch_role(team, boss, role["id"], {"description": "Tickets and labels"})
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert body["error"] is None and list(body["data"]) == ["role"]
        changed = body["data"]["role"]
        assert changed == {**role, "description": "Tickets and labels", "members": 1}
        assert [r for r in roles_of(team, boss) if r["id"] == role["id"]] == [changed]

    def test_a_rename_is_trimmed_and_may_change_only_the_case(self, team, boss):
        role = team.role(boss, "Support", "application.tickets")
        response = patch_role(team, boss, role["id"], {"name": " Help desk "})
        assert response.status_code == 200
        assert response.get_json()["data"]["role"]["name"] == "Help desk"

    def test_several_fields_at_once(self, team, boss):
        role = team.role(boss, "Support", "application.tickets")
        permission = tree("application.labels.view")
        response = patch_role(
            team, boss, role["id"], {"name": "Labels", "description": "", "permission": permission}
        )
        assert response.status_code == 200
        changed = response.get_json()["data"]["role"]
        assert (changed["name"], changed["description"], changed["permission"]) == (
            "Labels",
            "",
            permission,
        )

    @pytest.mark.parametrize(
        "body",
        [{}, {"category": "SYSTEM ROLE"}, {"name": "X", "members": 3}, {"id": "x"}],
    )
    def test_an_empty_object_or_an_unknown_key_is_refused(self, team, boss, body):
        role = team.role(boss, "Support", "application.tickets")
        response = patch_role(team, boss, role["id"], body)
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert [r for r in roles_of(team, boss) if r["id"] == role["id"]] == [role]

    @pytest.mark.parametrize(("field", "value"), [("name", None), ("name", ""), ("name", "x" * 65)])
    def test_field_rules_hold_on_a_change(self, team, boss, field, value):
        role = team.role(boss, "Support", "application.tickets")
        assert_validation(patch_role(team, boss, role["id"], {field: value}), field)

    def test_a_system_role_is_403(self, team, boss, mail_app):
        for role_id in (team.admin_role_id(boss), customer_role_id(mail_app)):
            response = patch_role(team, boss, role_id, {"description": "mine now"})
            assert error_code(response) == (403, "FORBIDDEN")
        (admin,) = roles_of(team, boss)
        assert admin["description"] == ADMIN_ROLE["description"]

    def test_another_companys_role_is_404(self, team, boss):
        theirs = team.role(team.admin(), "Theirs", "application.tickets")
        response = patch_role(team, boss, theirs["id"], {"description": "mine now"})
        assert error_code(response) == (404, "NOT_FOUND")

    @pytest.mark.parametrize("role_id", [UNKNOWN_ID, "not-a-uuid", "1", "admin"])
    def test_an_unknown_id_is_404(self, team, boss, role_id):
        assert error_code(patch_role(team, boss, role_id, {"description": "x"})) == (
            404,
            "NOT_FOUND",
        )

    def test_the_path_is_checked_before_the_body(self, team, boss):
        response = patch_role(team, boss, str(uuid.uuid4()), {"name": ""})
        assert error_code(response) == (404, "NOT_FOUND")

    def test_a_change_of_permissions_is_seen_at_once_by_its_members(self, team, boss):
        viewers = team.role(boss, "Viewers", "platform.admins.view")
        member = team.join(boss, viewers["id"])
        assert team.members(member).status_code == 200
        response = patch_role(
            team, boss, viewers["id"], {"permission": tree("application.tickets.view")}
        )
        assert response.status_code == 200
        assert error_code(team.members(member)) == (403, "FORBIDDEN")
        role = team.me(member).get_json()["data"]["user"]["role"]
        assert role["permission"] == tree("application.tickets.view")


class TestDelete:
    def test_204_and_gone(self, team, boss):
        role = team.role(boss, "Support", "application.tickets")
        response = delete_role(team, boss, role["id"])
        assert response.status_code == 204 and response.get_data() == b""
        assert [r["name"] for r in roles_of(team, boss)] == ["Admin"]
        assert error_code(delete_role(team, boss, role["id"])) == (404, "NOT_FOUND")
        assert error_code(patch_role(team, boss, role["id"], {"name": "x"})) == (404, "NOT_FOUND")

    def test_the_name_is_free_again(self, team, boss):
        role = team.role(boss, "Support", "application.tickets")
        delete_role(team, boss, role["id"])
        assert team.create_role(boss, "support", tree()).status_code == 201

    def test_a_system_role_is_403(self, team, boss, mail_app):
        for role_id in (team.admin_role_id(boss), customer_role_id(mail_app)):
            assert error_code(delete_role(team, boss, role_id)) == (403, "FORBIDDEN")

    def test_another_companys_role_is_404_and_stays(self, team, boss):
        other = team.admin()
        theirs = team.role(other, "Theirs", "application.tickets")
        assert error_code(delete_role(team, boss, theirs["id"])) == (404, "NOT_FOUND")
        assert [r["name"] for r in roles_of(team, other)] == ["Admin", "Theirs"]

    @pytest.mark.parametrize("role_id", [UNKNOWN_ID, "not-a-uuid", "0"])
    def test_an_unknown_id_is_404(self, team, boss, role_id):
        assert error_code(delete_role(team, boss, role_id)) == (404, "NOT_FOUND")

    def test_a_role_a_member_has_is_in_use(self, team, boss):
        role = team.role(boss, "Support", "application.tickets")
        member = team.join(boss, role["id"])
        assert error_code(delete_role(team, boss, role["id"])) == (409, "ROLE_IN_USE")
        assert team.set_role(boss, member.id, team.admin_role_id(boss)).status_code == 200
        assert delete_role(team, boss, role["id"]).status_code == 204

    def test_a_role_a_pending_invitation_has_is_in_use(self, team, boss):
        role = team.role(boss, "Support", "application.tickets")
        invitation = team.invitation(boss, fresh_email("invited"), role["id"])
        assert error_code(delete_role(team, boss, role["id"])) == (409, "ROLE_IN_USE")
        revoked = team.client.delete(f"{INVITATIONS_PATH}/{invitation['id']}", headers=boss.auth)
        assert revoked.status_code == 204
        assert delete_role(team, boss, role["id"]).status_code == 204

    def test_a_role_an_expired_invitation_has_is_in_use(self, team, boss):
        role = team.role(boss, "Support", "application.tickets")
        team.invitation(boss, fresh_email("invited"), role["id"])
        team.age_invitations()
        (listed,) = team.invitations(boss).get_json()["data"]["invitations"]
        assert listed["status"] == "expired"
        assert error_code(delete_role(team, boss, role["id"])) == (409, "ROLE_IN_USE")

    def test_a_revoked_invitation_keeps_naming_the_deleted_role(self, team, boss):
        role = team.role(boss, "Support", "application.tickets")
        invitation = team.invitation(boss, fresh_email("invited"), role["id"])
        team.client.delete(f"{INVITATIONS_PATH}/{invitation['id']}", headers=boss.auth)
        assert delete_role(team, boss, role["id"]).status_code == 204
        (listed,) = team.invitations(boss).get_json()["data"]["invitations"]
        assert listed["status"] == "revoked"
        assert (listed["role"]["name"], listed["role"]["category"]) == ("Support", "CUSTOM ROLE")

    def test_a_pending_invitation_names_the_role_as_it_is(self, team, boss):
        """Assumed from "a closed invitation keeps naming the role it had": an open one
        names the role as it is now."""
        role = team.role(boss, "Support", "application.tickets")
        email = fresh_email("invited")
        team.invitation(boss, email, role["id"])
        patch_role(team, boss, role["id"], {"name": "Help desk"})
        (listed,) = team.invitations(boss).get_json()["data"]["invitations"]
        assert listed["role"] == {"id": role["id"], "name": "Help desk", "category": "CUSTOM ROLE"}
        looked_up = team.lookup(team.link(email)).get_json()["data"]
        assert looked_up["role"]["name"] == "Help desk"

    def test_an_accepted_invitation_keeps_naming_the_deleted_role(self, team, boss):
        role = team.role(boss, "Support", "application.tickets")
        member = team.join(boss, role["id"])
        team.set_role(boss, member.id, team.admin_role_id(boss))
        assert delete_role(team, boss, role["id"]).status_code == 204
        (listed,) = team.invitations(boss).get_json()["data"]["invitations"]
        assert listed["status"] == "accepted"
        assert listed["role"]["name"] == "Support"


class TestWhoMay:
    @pytest.fixture
    def customer(self, team):
        return team.customer()

    def test_a_customer_is_403_everywhere(self, team, boss, customer):
        role = team.role(boss, "Support", "application.tickets")
        answers = [
            team.client.get(ROLES_PATH, headers=customer.auth),
            team.create_role(customer, "Mine", tree()),
            patch_role(team, customer, role["id"], {"name": "Mine"}),
            delete_role(team, customer, role["id"]),
        ]
        assert [error_code(r) for r in answers] == [(403, "FORBIDDEN")] * 4

    def test_the_body_is_read_before_the_role_is_checked(self, team, customer):
        bad_json = team.client.post(
            ROLES_PATH, data="{", content_type="application/json", headers=customer.auth
        )
        assert error_code(bad_json) == (400, "INVALID_JSON")
        assert error_code(team.create_role(customer, "", {})) == (403, "FORBIDDEN")

    def test_without_a_token_401(self, team):
        response = team.client.get(ROLES_PATH)
        assert error_code(response) == (401, "INVALID_TOKEN")
        assert response.headers["WWW-Authenticate"] == "Bearer"

    def test_a_member_without_roles_view_may_not_list(self, team, boss):
        member = team.join(boss, team.role(boss, "Agents", "platform.admins")["id"])
        response = team.client.get(ROLES_PATH, headers=member.auth)
        assert error_code(response) == (403, "FORBIDDEN")
        assert error_code(team.create_role(member, "Mine", tree())) == (403, "FORBIDDEN")

    def test_roles_view_lists_but_does_not_change(self, team, boss):
        viewers = team.role(boss, "Viewers", "platform.roles.view")
        member = team.join(boss, viewers["id"])
        assert len(roles_of(team, member)) == 2
        answers = [
            team.create_role(member, "Mine", tree()),
            patch_role(team, member, viewers["id"], {"description": "x"}),
            delete_role(team, member, viewers["id"]),
            # The role is checked before the path.
            patch_role(team, member, str(uuid.uuid4()), {"description": "x"}),
            delete_role(team, member, "not-a-uuid"),
        ]
        assert [error_code(r) for r in answers] == [(403, "FORBIDDEN")] * 5

    def test_roles_all_may_create_change_and_delete(self, team, boss):
        managers = team.role(boss, "Managers", "platform.roles")
        member = team.join(boss, managers["id"])
        made = team.create_role(member, "Mine", tree("platform.roles.view"))
        assert made.status_code == 201
        role_id = made.get_json()["data"]["role"]["id"]
        assert patch_role(team, member, role_id, {"name": "Ours"}).status_code == 200
        assert delete_role(team, member, role_id).status_code == 204


class TestPermissionNotHeld:
    """The acting member's role: the roles (all, view) and the tickets (all, view)."""

    @pytest.fixture
    def manager(self, team, boss):
        managers = team.role(boss, "Managers", "platform.roles", "application.tickets")
        return team.join(boss, managers["id"])

    def test_a_role_within_what_is_held_is_created(self, team, manager):
        response = team.create_role(manager, "Tickets", tree("application.tickets"))
        assert response.status_code == 201

    @pytest.mark.parametrize(
        "grants",
        [
            ("platform.billing.view",),
            ("platform.admins",),
            ("application.tickets", "platform.roles", "application.labels.view"),
        ],
    )
    def test_creating_a_role_granting_more_is_403(self, team, boss, manager, grants):
        response = team.create_role(manager, "More", tree(*grants))
        assert error_code(response) == (403, "PERMISSION_NOT_HELD")
        assert "More" not in [r["name"] for r in roles_of(team, boss)]

    def test_all_true_is_more(self, team, manager):
        response = team.create_role(manager, "Everything", permission_tree(True))
        assert error_code(response) == (403, "PERMISSION_NOT_HELD")

    def test_it_comes_after_the_field_rules(self, team, manager):
        response = team.create_role(manager, "", tree("platform.billing.view"))
        assert error_code(response) == (400, "VALIDATION_ERROR")

    def test_it_comes_before_a_taken_name(self, team, boss, manager):
        team.role(boss, "Billing", "platform.billing")
        for name in ("Billing", "Admin"):
            response = team.create_role(manager, name, tree("platform.billing.view"))
            assert error_code(response) == (403, "PERMISSION_NOT_HELD")

    def test_changing_a_role_to_grant_more_is_403(self, team, boss, manager):
        role = team.role(boss, "Tickets", "application.tickets.view")
        response = patch_role(
            team, manager, role["id"], {"permission": tree("application.labels.view")}
        )
        assert error_code(response) == (403, "PERMISSION_NOT_HELD")
        (kept,) = [r for r in roles_of(team, boss) if r["id"] == role["id"]]
        assert kept == role

    @pytest.mark.parametrize(
        "body",
        [
            {"name": "Renamed"},
            {"description": "changed"},
            {"permission": tree("application.tickets.view")},
        ],
    )
    def test_changing_a_role_that_holds_more_is_403_a_rename_too(self, team, boss, manager, body):
        role = team.role(boss, "Billing", "platform.billing", "application.tickets")
        response = patch_role(team, manager, role["id"], body)
        assert error_code(response) == (403, "PERMISSION_NOT_HELD")
        (kept,) = [r for r in roles_of(team, boss) if r["id"] == role["id"]]
        assert kept == role

    def test_deleting_a_role_that_holds_more_is_403(self, team, boss, manager):
        role = team.role(boss, "Billing", "platform.billing.view")
        assert error_code(delete_role(team, manager, role["id"])) == (403, "PERMISSION_NOT_HELD")
        assert "Billing" in [r["name"] for r in roles_of(team, boss)]

    def test_it_comes_before_role_in_use(self, team, boss, manager):
        role = team.role(boss, "Billing", "platform.billing.view")
        team.join(boss, role["id"])
        assert error_code(delete_role(team, manager, role["id"])) == (403, "PERMISSION_NOT_HELD")

    def test_it_comes_before_a_taken_name_on_a_rename(self, team, boss, manager):
        role = team.role(boss, "Billing", "platform.billing.view")
        team.role(boss, "Tickets", "application.tickets.view")
        response = patch_role(team, manager, role["id"], {"name": "tickets"})
        assert error_code(response) == (403, "PERMISSION_NOT_HELD")

    def test_a_role_within_what_is_held_may_be_changed_and_deleted(self, team, boss, manager):
        role = team.role(boss, "Tickets", "application.tickets.view")
        response = patch_role(
            team, manager, role["id"], {"permission": tree("application.tickets")}
        )
        assert response.status_code == 200
        assert delete_role(team, manager, role["id"]).status_code == 204


class TestInTheUserObject:
    def test_a_custom_role_shows_with_its_category(self, team, boss):
        permission = tree("application.tickets", "platform.admins.view")
        role = team.role(
            boss,
            "Support",
            *["application.tickets", "platform.admins.view"],
            description="Answers tickets",
        )
        member = team.join(boss, role["id"])
        expected = {
            "name": "Support",
            "description": "Answers tickets",
            "category": "CUSTOM ROLE",
            "permission": permission,
        }
        assert set(member.user["role"]) == USER_ROLE_KEYS
        assert member.user["role"] == expected
        me = team.me(member).get_json()["data"]["user"]
        assert me["role"] == expected
        assert me["company"]["id"] == boss.user["company"]["id"]
        login = team.api.login(member.email).get_json()["data"]["user"]
        assert login["role"] == expected

    def test_a_rename_shows_at_once(self, team, boss):
        role = team.role(boss, "Support", "application.tickets")
        member = team.join(boss, role["id"])
        patch_role(team, boss, role["id"], {"name": "Help desk"})
        assert team.me(member).get_json()["data"]["user"]["role"]["name"] == "Help desk"

    def test_verify_reports_the_custom_roles_id_and_leaves(self, team, boss):
        role = team.role(boss, "Support", "application.tickets", "platform.admins.view")
        member = team.join(boss, role["id"])
        response = team.client.get("/api/v1/auth/verify", headers=member.auth)
        leaves = ["application.tickets.all", "application.tickets.view", "platform.admins.view"]
        assert response.headers["X-User-Role-Id"] == role["id"]
        assert response.headers["X-User-Permissions"] == ",".join(leaves)
        data = response.get_json()["data"]
        assert (data["role_id"], data["permissions"]) == (role["id"], leaves)

    @pytest.mark.parametrize(
        ("name", "header"),
        [("100% Support", "100%25 Support"), ("Équipe été", "%C3%89quipe %C3%A9t%C3%A9")],
    )
    def test_verify_writes_the_name_in_percent_encoded_utf8(self, team, boss, name, header):
        member = team.join(boss, team.role(boss, name, "application.tickets")["id"])
        response = team.client.get("/api/v1/auth/verify", headers=member.auth)
        assert response.headers["X-User-Role"] == header
        assert response.get_json()["data"]["role"] == name

    def test_verify_sees_a_change_within_the_cache_window(self, team, boss, make_app, cache_window):
        role = team.role(boss, "Support", "application.tickets")
        member = team.join(boss, role["id"])
        quick = make_app(TOKEN_CACHE_SECONDS=1).test_client()
        before = quick.get("/api/v1/auth/verify", headers=member.auth)
        assert before.headers["X-User-Permissions"] == (
            "application.tickets.all,application.tickets.view"
        )
        patch_role(
            team,
            boss,
            role["id"],
            {"name": "Labels", "permission": tree("application.labels.view")},
        )
        cache_window.advance(1.1)
        after = quick.get("/api/v1/auth/verify", headers=member.auth)
        assert after.headers["X-User-Role"] == "Labels"
        assert after.headers["X-User-Permissions"] == "application.labels.view"
        team.set_role(boss, member.id, team.admin_role_id(boss))
        cache_window.advance(1.1)
        promoted = quick.get("/api/v1/auth/verify", headers=member.auth)
        assert promoted.headers["X-User-Role"] == "Admin"

    def test_verify_names_the_custom_role(self, team, boss):
        role = team.role(boss, "Support Team", "application.tickets")
        member = team.join(boss, role["id"])
        response = team.client.get("/api/v1/auth/verify", headers=member.auth)
        assert response.status_code == 200
        assert response.headers["X-User-Role"] == "Support Team"
        assert response.headers["X-Company-Id"] == boss.user["company"]["id"]
        assert response.get_json()["data"]["role"] == "Support Team"


class TestAudit:
    def test_create_change_and_delete_are_recorded(self, team, boss, mail_app):
        role = team.role(boss, "Support", "application.tickets")
        assert audited(mail_app, "role_created", boss.id, role["id"])
        patch_role(
            team,
            boss,
            role["id"],
            {"permission": tree("application.tickets", "platform.billing.view")},
        )
        assert audited(mail_app, "role_changed", boss.id, role["id"])
        (changed,) = [
            row for row in audit_rows(mail_app, "role_changed") if role["id"] in row.values()
        ]
        assert any("platform.billing.view" in str(value) for value in changed.values())
        delete_role(team, boss, role["id"])
        assert audited(mail_app, "role_deleted", boss.id, role["id"])

    def test_a_refused_change_records_nothing(self, team, boss, mail_app):
        team.create_role(boss, "Admin", tree())
        assert audit_rows(mail_app, "role_created") == []


def test_copying_a_listed_role_into_a_new_one_keeps_its_tree(team, boss):
    """A tree as the API answers it is a tree a request may carry."""
    (admin,) = roles_of(team, boss)
    permission = copy.deepcopy(admin["permission"])
    response = team.create_role(boss, "Deputy", permission)
    assert response.status_code == 201
    assert response.get_json()["data"]["role"]["permission"] == permission_tree(True)
