"""The examples/ scripts of companies and teams against gunicorn: every one of them runs,
and each answer's status and body are checked.

The scripts print the body (or, for a `204`, the status) as a person would read it. The
status of a body's answer is read from the headers curl writes: the scripts run with
`CURL_HOME` pointing at a `.curlrc` holding `dump-header`, which curl reads before its
command line, so the scripts are run exactly as they are."""

import json
import time

import pytest

from tests.fixtures import postgres_schema
from tests.gunicorn_rig import run_server
from tests.helpers import PASSWORD, fresh_email, link_token, run_example

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A new, empty database: a SQLite file or a Postgres schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'team.db'}"
        return
    with postgres_schema(request.getfixturevalue("postgres_server")) as url:
        yield url


class Curl:
    """Runs examples/ scripts against a server; the status of each answer with its output."""

    def __init__(self, server, folder):
        self.server = server
        self.headers = folder / "headers"
        (folder / ".curlrc").write_text(f'dump-header = "{self.headers}"\n')
        self.env = {"CURL_HOME": str(folder)}

    def run(self, script, *args, **env):
        """(status, standard output) of one script that sends one request."""
        self.headers.unlink(missing_ok=True)
        output = run_example(self.server, script, *args, **self.env, **env)
        status_line = self.headers.read_text().splitlines()[0]  # "HTTP/1.1 201 CREATED"
        return int(status_line.split()[1]), output

    def json(self, script, *args, **env):
        """(status, parsed body) of one script that prints a JSON answer."""
        status, output = self.run(script, *args, **env)
        return status, json.loads(output)

    def status(self, script, *args, **env):
        """The status a `204` script prints (and curl's headers agree with)."""
        status, output = self.run(script, *args, **env)
        assert output.strip() == str(status)
        return status


def invitation_links(smtp_server, email, count, seconds=10):
    """The tokens of the first `count` invitation mails to this address, oldest first."""
    deadline = time.monotonic() + seconds
    while True:
        mails = [
            message
            for _, recipients, message in smtp_server.messages
            if message["X-Lumyri-Mail"] == "invitation" and email in recipients
        ]
        if len(mails) >= count or time.monotonic() > deadline:
            assert len(mails) >= count, f"{len(mails)} invitation mails to {email}"
            return [link_token(message) for message in mails[:count]]
        smtp_server.wait_for(len(smtp_server.messages) + 1, seconds=1)


def test_the_curl_walk_through_of_a_team(database_url, smtp_server, tmp_path):
    """Sign up, a role, two invitations (one resent, accepted as a new account; one
    revoked), the member found, promoted and removed, the role changed and deleted; then
    the removed account accepts a new invitation with its own token."""
    settings = {"SMTP_URL": smtp_server.url, "MAIL_POLL_SECONDS": "0.2", "WEB_CONCURRENCY": "2"}
    admin_email, grace, other = (
        fresh_email("team-admin"),
        fresh_email("team-grace"),
        fresh_email("team-other"),
    )
    with run_server(database_url, tmp_path, **settings) as server:
        curl = Curl(server, tmp_path)
        # TOKEN, NAME, Q, ... from the test's own environment must not reach the scripts.
        none = {"TOKEN": "", "Q": "", "LIMIT": "", "CURSOR": "", "STATUS": ""}

        status, signed_up = curl.json("admin-signup.sh", EMAIL=admin_email)
        assert status == 201
        token = signed_up["data"]["access_token"]
        company_id = signed_up["data"]["user"]["company"]["id"]

        # A custom role, then the roles.
        status, created = curl.json(
            "create-role.sh", token, NAME="Support agent", DESCRIPTION="Answers tickets"
        )
        assert status == 201, created
        role = created["data"]["role"]
        assert (role["name"], role["category"], role["members"]) == (
            "Support agent",
            "CUSTOM ROLE",
            0,
        )
        assert role["permission"]["application"]["tickets"] == {"all": True, "view": True}
        assert role["permission"]["platform"]["admins"] == {"all": False, "view": False}
        status, listed = curl.json("list-roles.sh", token)
        assert status == 200
        assert [r["name"] for r in listed["data"]["roles"]] == ["Admin", "Support agent"]
        admin_role_id = listed["data"]["roles"][0]["id"]

        # Two invitations (the first one sent twice with one Idempotency-Key).
        status, invited = curl.json(
            "invite.sh", token, EMAIL=grace, ROLE_ID=role["id"], IDEMPOTENCY_KEY="team-walk-1"
        )
        assert status == 201, invited
        invitation = invited["data"]["invitation"]
        assert (invitation["email"], invitation["status"]) == (grace, "pending")
        assert invitation["role"]["id"] == role["id"]
        status, again = curl.json(
            "invite.sh", token, EMAIL=grace, ROLE_ID=role["id"], IDEMPOTENCY_KEY="team-walk-1"
        )
        assert (status, again["data"]["invitation"]["id"]) == (201, invitation["id"])
        status, revocable = curl.json("invite.sh", token, EMAIL=other, ROLE_ID=role["id"])
        assert status == 201, revocable
        other_id = revocable["data"]["invitation"]["id"]
        status, pending = curl.json("list-invitations.sh", token, **{**none, "STATUS": "pending"})
        assert status == 200
        assert [i["id"] for i in pending["data"]["invitations"]] == [other_id, invitation["id"]]
        assert pending["data"]["next_cursor"] is None

        # Resent: a new link, the first one dead.
        (first_link,) = invitation_links(smtp_server, grace, 1)
        status, resent = curl.json("resend-invitation.sh", token, INVITATION_ID=invitation["id"])
        assert status == 200, resent
        assert resent["data"]["invitation"]["id"] == invitation["id"]
        assert resent["data"]["invitation"]["status"] == "pending"
        new_link = invitation_links(smtp_server, grace, 2)[1]
        assert new_link != first_link
        status, dead = curl.json("lookup-invitation.sh", first_link)
        assert (status, dead["error"]["code"]) == (400, "INVALID_LINK")
        status, looked_up = curl.json("lookup-invitation.sh", new_link)
        assert status == 200, looked_up
        assert looked_up["data"]["email"] == grace
        assert looked_up["data"]["company"]["id"] == company_id
        assert looked_up["data"]["role"]["name"] == "Support agent"
        assert looked_up["data"]["account_exists"] is False

        # Accepted as a new account.
        status, joined = curl.json(
            "accept-invitation.sh",
            new_link,
            TOKEN="",
            FIRST_NAME="Grace",
            LAST_NAME="Hopper",
            PASSWORD=PASSWORD,
        )
        assert status == 201, joined
        member = joined["data"]["user"]
        assert member["email"] == grace and member["company"]["id"] == company_id
        assert member["role"]["name"] == "Support agent"
        grace_token = joined["data"]["access_token"]

        # The members: found by a part of the name, and paged.
        status, found = curl.json("list-members.sh", token, **{**none, "Q": "HOPP"})
        assert status == 200
        assert [m["id"] for m in found["data"]["members"]] == [member["id"]]
        assert found["data"]["members"][0]["role"]["name"] == "Support agent"
        status, first_page = curl.json("list-members.sh", token, **{**none, "LIMIT": "1"})
        assert status == 200 and first_page["data"]["next_cursor"] is not None
        status, second_page = curl.json(
            "list-members.sh",
            token,
            **{**none, "LIMIT": "1", "CURSOR": first_page["data"]["next_cursor"]},
        )
        assert status == 200 and second_page["data"]["next_cursor"] is None
        pages = first_page["data"]["members"] + second_page["data"]["members"]
        assert [m["email"] for m in pages] == [admin_email, grace]  # oldest first

        # Promoted, the role renamed, the member removed.
        status, promoted = curl.json(
            "change-member-role.sh", token, MEMBER_ID=member["id"], ROLE_ID=admin_role_id
        )
        assert status == 200, promoted
        assert promoted["data"]["member"]["role"] == {
            "id": admin_role_id,
            "name": "Admin",
            "category": "SYSTEM ROLE",
        }
        status, renamed = curl.json(
            "update-role.sh", token, ROLE_ID=role["id"], NAME="Support lead", DESCRIPTION=""
        )
        assert status == 200, renamed
        assert (renamed["data"]["role"]["name"], renamed["data"]["role"]["description"]) == (
            "Support lead",
            "",
        )
        assert curl.status("remove-member.sh", token, MEMBER_ID=member["id"]) == 204
        status, refused = curl.json("me.sh", grace_token)
        assert (status, refused["error"]["code"]) == (401, "INVALID_TOKEN")

        # The other invitation revoked, then the role (no longer in use) deleted.
        assert curl.status("revoke-invitation.sh", token, INVITATION_ID=other_id) == 204
        status, revoked = curl.json("list-invitations.sh", token, **{**none, "STATUS": "revoked"})
        assert status == 200
        assert [i["id"] for i in revoked["data"]["invitations"]] == [other_id]
        assert curl.status("delete-role.sh", token, ROLE_ID=role["id"]) == 204
        status, listed = curl.json("list-roles.sh", token)
        assert [r["name"] for r in listed["data"]["roles"]] == ["Admin"]

        # The removed account, logged in again, accepts a new invitation with its token.
        status, logged_in = curl.json("login.sh", EMAIL=grace, PASSWORD=PASSWORD)
        assert status == 200 and logged_in["data"]["user"]["company"]["id"] == ""
        status, reinvited = curl.json("invite.sh", token, EMAIL=grace, ROLE_ID=admin_role_id)
        assert status == 201, reinvited
        link = invitation_links(smtp_server, grace, 3)[2]
        status, rejoined = curl.json(
            "accept-invitation.sh", link, TOKEN=logged_in["data"]["access_token"]
        )
        assert status == 200, rejoined
        assert rejoined["data"]["user"]["company"]["id"] == company_id
        assert rejoined["data"]["user"]["role"]["name"] == "Admin"
