"""What /verify and introspection report besides the user: the role's id, its permission
leaves and the session; a custom role's name in X-User-Role; the session across a
log-out; and a change of the role, or of its permissions, seen within
TOKEN_CACHE_SECONDS. Custom roles are written here with SQL (a row of `roles` for the
account's company, and the account's `role_id` pointed at it)."""

import uuid
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from app.api.platform import header_text
from app.api.verify_fast_path import VerifyFastPath
from app.extensions import db
from app.models import Role, User
from app.permissions import tree_of
from tests.api.test_platform import (
    ADMIN_LEAVES,
    CLIENTS,
    INTROSPECTION_KEYS,
    ROLE_IDS,
    VERIFY,
    introspect,
    session_of,
)
from tests.helpers import Api, account, bearer

LOGOUT = "/api/v1/auth/logout"
# A custom role's name with a space, `%`, Latin, CJK and an emoji, and what X-User-Role
# carries for it.
CUSTOM_NAME = "Équipe 100% 日本 🚀"
CUSTOM_HEADER = "%C3%89quipe 100%25 %E6%97%A5%E6%9C%AC %F0%9F%9A%80"
CUSTOM_LEAVES = ["application.tickets.all", "application.tickets.view", "platform.admins.view"]


@pytest.fixture
def make_app(make_app):
    """The suite's `make_app`, with introspection clients."""
    return lambda **settings: make_app(INTROSPECTION_CLIENTS=CLIENTS, **settings)


@pytest.fixture
def roles(app):
    """Custom roles written with SQL: `roles.add(user, name, leaves)` makes one in the
    user's company and gives it to the user, `roles.grant(role_id, leaves)` changes one's
    permissions. The test's accounts go back to Customer and the roles go afterwards."""

    class Roles:
        def __init__(self):
            self.made = []

        def add(self, user, name, leaves, give=True):
            role_id = str(uuid.uuid4())
            with app.app_context():
                db.session.execute(
                    sa.insert(Role).values(
                        id=role_id,
                        name=name,
                        description="",
                        category="CUSTOM ROLE",
                        permission=tree_of(leaves),
                        company_id=user["company"]["id"] or None,
                        name_key=name.casefold(),
                    )
                )
                db.session.commit()
            self.made.append(role_id)
            if give:
                self.give(user, role_id)
            return role_id

        def give(self, user, role_id):
            with app.app_context():
                db.session.execute(
                    sa.update(User).where(User.id == user["id"]).values(role_id=role_id)
                )
                db.session.commit()

        def grant(self, role_id, leaves):
            with app.app_context():
                db.session.execute(
                    sa.update(Role).where(Role.id == role_id).values(permission=tree_of(leaves))
                )
                db.session.commit()

    made = Roles()
    yield made
    with app.app_context():
        if made.made:
            db.session.execute(
                sa.update(User)
                .where(User.role_id.in_(made.made))
                .values(role_id=ROLE_IDS["Customer"])
            )
            db.session.execute(sa.delete(Role).where(Role.id.in_(made.made)))
            db.session.commit()


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("Admin", "Admin"),
        ("Customer", "Customer"),
        ("Field agents", "Field agents"),  # a space stays a space
        ("100%", "100%25"),
        ("%41", "%2541"),  # a `%` is always written, so a decoder gets the name back
        ("a~b!\"#$&'()*+,-./:;<=>?@[\\]^_`{|}", "a~b!\"#$&'()*+,-./:;<=>?@[\\]^_`{|}"),
        ("Équipe", "%C3%89quipe"),
        ("日本", "%E6%97%A5%E6%9C%AC"),
        ("🚀", "%F0%9F%9A%80"),
        ("tab\there", "tab%09here"),
        ("del\x7f", "del%7F"),
        ("nbsp\u00a0", "nbsp%C2%A0"),
        (CUSTOM_NAME, CUSTOM_HEADER),
    ],
)
def test_role_names_in_a_header(name, header):
    written = header_text(name)
    assert written == header
    assert all(0x20 <= ord(char) <= 0x7E for char in written)
    assert all(piece[:2] == piece[:2].upper() for piece in written.split("%")[1:])
    # A platform service gets the name back by percent-decoding the UTF-8.
    assert unquote(written, encoding="utf-8", errors="strict") == name


@pytest.fixture
def platform(make_app):
    """An app with a one-second cache window (the tests wait it out)."""
    return make_app(TOKEN_CACHE_SECONDS=1)


@pytest.fixture
def client(platform):
    """Its test client (so `api` uses it too)."""
    return platform.test_client()


def view_only(app):
    """The app's Flask view alone, without the /verify fast path (for comparing both)."""
    fast_path = app.wsgi_app
    assert isinstance(fast_path, VerifyFastPath)
    return fast_path.next


@pytest.mark.parametrize("answered_by", ["fast path", "view"])
def test_a_custom_roles_name_id_and_leaves(client, api, platform, roles, answered_by):
    token, user = account(api, "admin")
    role_id = roles.add(user, CUSTOM_NAME, CUSTOM_LEAVES)
    if answered_by == "view":
        platform.wsgi_app = view_only(platform)
    response = client.get(VERIFY, headers=bearer(token))
    assert response.status_code == 200
    assert response.headers["X-User-Role"] == CUSTOM_HEADER
    assert response.headers["X-User-Role-Id"] == role_id
    assert response.headers["X-User-Permissions"] == ",".join(CUSTOM_LEAVES)
    assert response.get_json()["data"] == {
        "user_id": user["id"],
        "company_id": user["company"]["id"],
        "role": CUSTOM_NAME,  # as is in the body
        "role_id": role_id,
        "permissions": CUSTOM_LEAVES,
        "session_id": session_of(platform, token),
        "email_verified": False,
    }
    answer = introspect(client, token).get_json()
    assert (answer["role"], answer["role_id"], answer["permissions"]) == (
        CUSTOM_NAME,
        role_id,
        CUSTOM_LEAVES,
    )


def test_the_fast_path_and_the_view_answer_a_custom_role_alike(client, api, platform, roles):
    token, user = account(api, "admin")
    roles.add(user, CUSTOM_NAME, CUSTOM_LEAVES)
    fast_path = platform.wsgi_app
    platform.wsgi_app = view_only(platform)
    try:
        viewed = client.get(VERIFY, headers=bearer(token))
    finally:
        platform.wsgi_app = fast_path
    cached = client.get(VERIFY, headers=bearer(token))
    assert viewed.get_data() == cached.get_data()
    ignore = {"X-Request-ID"}
    assert {k: v for k, v in viewed.headers.items() if k not in ignore} == {
        k: v for k, v in cached.headers.items() if k not in ignore
    }


def test_a_role_with_no_permissions_sends_an_empty_list(client, api, roles):
    token, user = account(api, "admin")
    roles.add(user, "Read nothing", [])
    response = client.get(VERIFY, headers=bearer(token))
    assert response.headers["X-User-Permissions"] == ""
    assert response.get_json()["data"]["permissions"] == []
    assert introspect(client, token).get_json()["permissions"] == []


@pytest.mark.parametrize("kind", ["admin", "customer"])
def test_introspection_reports_exactly_the_contracts_keys(client, api, platform, kind):
    token, _ = account(api, kind)
    answer = introspect(client, token).get_json()
    assert set(answer) == INTROSPECTION_KEYS
    role = "Admin" if kind == "admin" else "Customer"
    assert answer["role_id"] == ROLE_IDS[role]
    assert answer["permissions"] == (ADMIN_LEAVES if kind == "admin" else [])
    assert answer["session_id"] == session_of(platform, token)


def test_the_session_is_one_across_verify_and_introspection_and_a_new_one_after_logout(
    client, api, platform, cache_window
):
    token, user = account(api, "admin")
    verified = client.get(VERIFY, headers=bearer(token))
    session_id = verified.headers["X-Session-Id"]
    assert session_id and session_id == verified.get_json()["data"]["session_id"]
    assert introspect(client, token).get_json()["session_id"] == session_id
    assert session_id == session_of(platform, token)
    assert client.post(LOGOUT, headers=bearer(token)).status_code == 204
    login = api.login(user["email"])
    assert login.status_code == 200, login.get_json()
    fresh = login.get_json()["data"]["access_token"]
    again = client.get(VERIFY, headers=bearer(fresh))
    new_session = again.headers["X-Session-Id"]
    assert new_session != session_id
    assert again.get_json()["data"]["session_id"] == new_session
    assert introspect(client, fresh).get_json()["session_id"] == new_session
    cache_window.advance(1.1)  # the old token's cached answer is over: refused
    assert client.get(VERIFY, headers=bearer(token)).status_code == 401


def test_a_change_of_role_is_seen_within_the_window(client, api, platform, roles, cache_window):
    token, user = account(api, "admin")
    first = client.get(VERIFY, headers=bearer(token))
    assert first.headers["X-User-Role-Id"] == ROLE_IDS["Admin"]
    assert introspect(client, token).get_json()["role_id"] == ROLE_IDS["Admin"]
    role_id = roles.add(user, "Support", CUSTOM_LEAVES)
    cache_window.advance(1.1)  # TOKEN_CACHE_SECONDS=1
    fast = client.get(VERIFY, headers=bearer(token))  # the fast path's cache miss
    assert fast.headers["X-User-Role"] == "Support"
    assert fast.headers["X-User-Role-Id"] == role_id
    assert fast.headers["X-User-Permissions"] == ",".join(CUSTOM_LEAVES)
    roles.give(user, ROLE_IDS["Admin"])
    platform.wsgi_app = view_only(platform)  # the Flask view's cache miss sees it too
    cache_window.advance(1.1)
    viewed = client.get(VERIFY, headers=bearer(token))
    assert (viewed.headers["X-User-Role"], viewed.headers["X-User-Role-Id"]) == (
        "Admin",
        ROLE_IDS["Admin"],
    )
    assert viewed.get_json()["data"]["permissions"] == ADMIN_LEAVES
    roles.give(user, role_id)
    cache_window.advance(1.1)
    answer = introspect(client, token).get_json()
    assert (answer["role"], answer["role_id"], answer["permissions"]) == (
        "Support",
        role_id,
        CUSTOM_LEAVES,
    )


def test_a_change_of_the_roles_permissions_is_seen_within_the_window(
    client, api, roles, cache_window
):
    """The leaves are remembered per role with their tree, never by the role's id alone."""
    token, user = account(api, "admin")
    role_id = roles.add(user, "Support", CUSTOM_LEAVES)
    other, other_user = account(api, "admin")
    roles.give(other_user, role_id)
    assert client.get(VERIFY, headers=bearer(token)).headers["X-User-Permissions"] == ",".join(
        CUSTOM_LEAVES
    )
    roles.grant(role_id, ["platform.billing.view"])
    cache_window.advance(1.1)  # TOKEN_CACHE_SECONDS=1
    for each in (token, other):  # a token seen before, and one not seen yet
        response = client.get(VERIFY, headers=bearer(each))
        assert response.headers["X-User-Permissions"] == "platform.billing.view"
        assert response.get_json()["data"]["permissions"] == ["platform.billing.view"]
        assert introspect(client, each).get_json()["permissions"] == ["platform.billing.view"]


def test_without_a_cache_a_change_of_role_is_seen_at_once(make_app, roles):
    app = make_app(TOKEN_CACHE_SECONDS=0)
    client = app.test_client()
    token, user = account(Api(client), "admin")
    assert client.get(VERIFY, headers=bearer(token)).headers["X-User-Role"] == "Admin"
    role_id = roles.add(user, "Support", CUSTOM_LEAVES)
    response = client.get(VERIFY, headers=bearer(token))
    assert response.headers["X-User-Role-Id"] == role_id
    roles.grant(role_id, [])
    assert client.get(VERIFY, headers=bearer(token)).headers["X-User-Permissions"] == ""
