"""Invitations (the contract's "Companies and teams", "Invitations" and "Accepting an
invitation"): inviting an address with a role, the list, resending and revoking, the
mail and its link, the lookup behind the link and accepting it with an account or as a
new one. Written from the contract alone, through the app factory's HTTP API."""

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import (
    ACCEPT_PATH,
    ADMIN_ROLE,
    COMPANY_PATH,
    INVITATIONS_PATH,
    LOOKUP_PATH,
    PASSWORD,
    RFC3339_UTC,
    USER_KEYS,
    Api,
    Team,
    audited,
    bearer,
    customer_role_id,
    error_code,
    error_of,
    fresh_email,
    link_token,
    signup_body,
    tree,
)

INVITATION_KEYS = {"id", "email", "role", "status", "invited_by", "created_at", "expires_at"}
LOOKUP_KEYS = {"email", "company", "role", "invited_by", "expires_at", "account_exists"}
SEVEN_DAYS = 604800
DEFAULT_LINK = "http://localhost:3000/accept-invitation?token="


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


def moment(text):
    """An RFC 3339 UTC time as a datetime."""
    assert RFC3339_UTC.fullmatch(text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def listed(team, person, **params):
    """The invitations one page lists (asserting 200)."""
    response = team.invitations(person, **params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]["invitations"]


def resend(team, person, invitation_id, body=None):
    """POST /company/invitations/{id}/resend."""
    return team.client.post(
        f"{INVITATIONS_PATH}/{invitation_id}/resend", json=body, headers=person.auth
    )


def revoke(team, person, invitation_id):
    """DELETE /company/invitations/{id}."""
    return team.client.delete(f"{INVITATIONS_PATH}/{invitation_id}", headers=person.auth)


def status_of(team, person, invitation_id):
    """The listed status of one invitation."""
    (found,) = [i for i in listed(team, person, limit=100) if i["id"] == invitation_id]
    return found["status"]


def every_page(team, person, limit, **params):
    """Follow next_cursor to the end: the pages' invitation ids."""
    pages, cursor = [], None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = team.invitations(person, **query)
        assert response.status_code == 200, response.get_data(as_text=True)
        data = response.get_json()["data"]
        pages.append([i["id"] for i in data["invitations"]])
        cursor = data["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50


def text_of(message):
    """A mail's text/plain part."""
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message):
    """A mail's text/html part."""
    return message.get_body(preferencelist=("html",)).get_content()


class TestCreate:
    def test_201_with_the_invitation(self, team, boss, tickets):
        email = fresh_email("invited")
        before = datetime.now(UTC)
        response = team.invite(boss, email, tickets["id"])
        assert response.status_code == 201, response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        assert body["error"] is None and list(body["data"]) == ["invitation"]
        invitation = body["data"]["invitation"]
        assert set(invitation) == INVITATION_KEYS
        assert invitation["email"] == email
        assert invitation["role"] == {
            "id": tickets["id"],
            "name": "Tickets",
            "category": "CUSTOM ROLE",
        }
        assert invitation["status"] == "pending"
        assert invitation["invited_by"] == {"id": boss.id, "first_name": "Bea", "last_name": "Boss"}
        created, expires = moment(invitation["created_at"]), moment(invitation["expires_at"])
        assert before - timedelta(seconds=2) <= created <= datetime.now(UTC) + timedelta(seconds=2)
        assert abs((expires - created).total_seconds() - SEVEN_DAYS) <= 2
        assert listed(team, boss) == [invitation]

    def test_the_lifetime_is_invitation_ttl_seconds(self, make_app, smtp_server, boss, tickets):
        """The setting, not the default alone: an app whose invitations live an hour."""
        hourly = make_app(SMTP_URL=smtp_server.url, INVITATION_TTL_SECONDS=3600)
        team = Team(hourly, Api(hourly.test_client()), smtp_server)
        invitation = team.invitation(boss, fresh_email("invited"), tickets["id"])
        created, expires = moment(invitation["created_at"]), moment(invitation["expires_at"])
        assert abs((expires - created).total_seconds() - 3600) <= 2

    def test_with_the_admin_role(self, team, boss, admin_id):
        invitation = team.invitation(boss, fresh_email("invited"), admin_id)
        assert invitation["role"] == {"id": admin_id, "name": "Admin", "category": "SYSTEM ROLE"}

    def test_the_answer_is_the_same_whether_or_not_an_account_has_the_address(
        self, team, boss, tickets
    ):
        someone = team.customer()
        with_account = team.invite(boss, someone.email, tickets["id"])
        without = team.invite(boss, fresh_email("nobody"), tickets["id"])
        assert with_account.status_code == without.status_code == 201
        assert with_account.headers.get("Cache-Control") == without.headers.get("Cache-Control")

        def shape(response):
            invitation = response.get_json()["data"]["invitation"]
            return {
                key: value
                for key, value in invitation.items()
                if key not in ("id", "email", "created_at", "expires_at")
            }

        assert shape(with_account) == shape(without)

    @pytest.mark.parametrize(
        ("sent", "stored"),
        [
            (" Foo.Bar@EXAMPLE.org ", "foo.bar@example.org"),
            ("x@BÜCHER.de", "x@bücher.de"),
            ("y@xn--bcher-kva.de", "y@bücher.de"),
        ],
    )
    def test_the_address_is_normalised_like_a_sign_up_address(
        self, team, boss, tickets, sent, stored
    ):
        assert team.invitation(boss, sent, tickets["id"])["email"] == stored

    @pytest.mark.parametrize("email", ["nope", "", "   ", None, 5, "a" * 250 + "@x.org", "a@b@c"])
    def test_a_bad_address_is_400(self, team, boss, tickets, email):
        response = team.invite(boss, email, tickets["id"])
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert "email" in error_of(response)["fields"]

    @pytest.mark.parametrize("role_id", ["customer", "unknown", "theirs", "not-a-uuid", None, 7])
    def test_a_role_that_is_not_admin_or_a_custom_role_of_the_company_is_400(
        self, team, boss, mail_app, role_id
    ):
        if role_id == "customer":
            role_id = customer_role_id(mail_app)
        elif role_id == "unknown":
            role_id = "00000000-0000-4000-8000-000000000000"
        elif role_id == "theirs":
            role_id = team.role(team.admin(), "Theirs", "application.tickets.view")["id"]
        response = team.invite(boss, fresh_email("invited"), role_id)
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert "role_id" in error_of(response)["fields"]
        assert listed(team, boss) == []

    def test_every_broken_rule_at_once(self, team, boss):
        response = team.client.post(INVITATIONS_PATH, json={}, headers=boss.auth)
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert {"email", "role_id"} <= set(error_of(response)["fields"])

    def test_keys_not_in_its_list_are_ignored(self, team, boss, tickets):
        response = team.client.post(
            INVITATIONS_PATH,
            json={
                "email": fresh_email("invited"),
                "role_id": tickets["id"],
                "status": "accepted",
                "invited_by": None,
            },
            headers=boss.auth,
        )
        assert response.status_code == 201
        invitation = response.get_json()["data"]["invitation"]
        assert (invitation["status"], invitation["invited_by"]["id"]) == ("pending", boss.id)

    def test_a_members_address_is_409_already_member(self, team, boss, tickets):
        member = team.join(boss, tickets["id"])
        before = listed(team, boss)
        for email in (boss.email.upper(), f"  {member.email.upper()} "):
            assert error_code(team.invite(boss, email, tickets["id"])) == (409, "ALREADY_MEMBER")
        assert listed(team, boss) == before

    def test_a_member_of_another_company_may_be_invited(self, team, boss, tickets):
        other = team.admin()
        assert team.invite(boss, other.email, tickets["id"]).status_code == 201

    def test_a_pending_invitation_of_the_address_is_409(self, team, boss, tickets, admin_id):
        email = fresh_email("invited")
        first = team.invitation(boss, email, tickets["id"])
        for again, role_id in ((email, tickets["id"]), (email.upper(), admin_id)):
            response = team.invite(boss, again, role_id)
            assert error_code(response) == (409, "INVITATION_PENDING")
        assert listed(team, boss) == [first]

    def test_after_a_revocation_the_address_may_be_invited_again(self, team, boss, tickets):
        email = fresh_email("invited")
        first = team.invitation(boss, email, tickets["id"])
        assert revoke(team, boss, first["id"]).status_code == 204
        assert team.invite(boss, email, tickets["id"]).status_code == 201

    def test_after_expiry_the_address_may_be_invited_again(self, team, boss, tickets):
        email = fresh_email("invited")
        team.invitation(boss, email, tickets["id"])
        team.age_invitations()
        assert team.invite(boss, email, tickets["id"]).status_code == 201

    def test_another_company_may_invite_the_same_address(self, team, boss, tickets):
        email = fresh_email("invited")
        team.invitation(boss, email, tickets["id"])
        other = team.admin()
        assert team.invite(other, email, team.admin_role_id(other)).status_code == 201

    def test_is_recorded(self, team, boss, tickets, mail_app):
        invitation = team.invitation(boss, fresh_email("invited"), tickets["id"])
        assert audited(mail_app, "member_invited", boss.id, invitation["id"])

    def test_a_refused_invitation_sends_nothing(self, team, boss, tickets):
        member = team.join(boss, tickets["id"])
        team.invite(boss, member.email, tickets["id"])
        assert team.mails("invitation", member.email)[1:] == []  # only the one it joined by


class TestBodies:
    """The team endpoints read their bodies like the account lifecycle's."""

    @pytest.mark.parametrize(
        ("data", "content_type", "expected"),
        [
            ('{"email": "a@example.org"}', "text/plain", (415, "UNSUPPORTED_MEDIA_TYPE")),
            ("email=a@example.org", "application/x-www-form-urlencoded", (415, None)),
            ('{"email": "a@example.org", "email": "b@example.org"}', "application/json", None),
            ("[1, 2]", "application/json", (400, "INVALID_JSON")),
            ('{"email": NaN}', "application/json", (400, "INVALID_JSON")),
            ("{" + '"x": "' + "y" * 70000 + '"}', "application/json", (413, "PAYLOAD_TOO_LARGE")),
        ],
    )
    def test_invite_reads_its_body_like_every_endpoint(
        self, team, boss, data, content_type, expected
    ):
        response = team.client.post(
            INVITATIONS_PATH, data=data, content_type=content_type, headers=boss.auth
        )
        status, code = expected or (400, "INVALID_JSON")
        assert response.status_code == status, response.get_data(as_text=True)
        if code:
            assert error_of(response)["code"] == code
        assert listed(team, boss) == []

    @pytest.mark.parametrize("path", [LOOKUP_PATH, ACCEPT_PATH])
    def test_the_link_endpoints_too(self, team, path):
        response = team.client.post(
            path, data='{"token": "a", "token": "b"}', content_type="application/json"
        )
        assert error_code(response) == (400, "INVALID_JSON")
        response = team.client.post(path, data="token=a", content_type="text/plain")
        assert error_code(response) == (415, "UNSUPPORTED_MEDIA_TYPE")


class TestMail:
    def test_an_invitation_mail_with_its_link(self, team, boss, tickets):
        team.client.patch(COMPANY_PATH, json={"name": "Acme Widgets"}, headers=boss.auth)
        email = fresh_email("invited")
        team.invitation(boss, email, tickets["id"])
        (message,) = team.mails("invitation", email)
        assert message["X-Lumyri-Mail"] == "invitation"
        assert message["To"] == email
        text = text_of(message)
        assert text.count(DEFAULT_LINK) == 1
        for named in ("Acme Widgets", "Bea", "Tickets"):  # the company, the inviter, the role
            assert named in text, named
        assert message.get_content_type() == "multipart/alternative"
        for header in ("To", "From", "Subject", "Date", "Message-ID"):
            assert message[header], header
        assert DEFAULT_LINK in html_of(message)
        assert team.lookup(link_token(message)).status_code == 200

    def test_user_data_is_escaped_in_the_html_part(self, team):
        boss = team.admin(first_name="<b>Bea</b>", last_name="& Co")
        team.client.patch(COMPANY_PATH, json={"name": "<i>Acme</i> & Sons"}, headers=boss.auth)
        role = team.role(boss, "<script>Ops</script>", "application.tickets")
        email = fresh_email("invited")
        team.invitation(boss, email, role["id"])
        (message,) = team.mails("invitation", email)
        text, html = text_of(message), html_of(message)
        for raw, escaped in (
            ("<b>Bea</b>", "&lt;b&gt;Bea&lt;/b&gt;"),
            ("<i>Acme</i> & Sons", "&lt;i&gt;Acme&lt;/i&gt; &amp; Sons"),
            ("<script>Ops</script>", "&lt;script&gt;Ops&lt;/script&gt;"),
        ):
            assert raw in text, raw  # the company, the inviter, the role, as they are
            assert escaped in html, escaped
        assert "<script>" not in html and "<b>Bea" not in html and "<i>Acme" not in html

    def test_the_link_is_accept_invitation_url(self, team, boss, tickets, make_app, smtp_server):
        custom = make_app(
            SMTP_URL=smtp_server.url,
            ACCEPT_INVITATION_URL="https://app.example.org/join?from=mail&token={token}",
        )
        custom_team = Team(custom, Api(custom.test_client()), smtp_server)
        email = fresh_email("invited")
        custom_team.invitation(boss, email, tickets["id"])
        (message,) = custom_team.mails("invitation", email)
        text = text_of(message)
        assert text.count("https://app.example.org/join?from=mail&token=") == 1
        assert DEFAULT_LINK not in text
        assert team.lookup(link_token(message)).status_code == 200

    def test_an_account_is_greeted_by_name_an_address_without_one_is_not(self, team, boss, tickets):
        known = team.customer(first_name="Zelda")
        team.invitation(boss, known.email, tickets["id"])
        stranger = fresh_email("stranger")
        team.invitation(boss, stranger, tickets["id"])
        (to_known,) = team.mails("invitation", known.email)
        (to_stranger,) = team.mails("invitation", stranger)
        assert "Zelda" in text_of(to_known)
        # No name to greet: no empty or placeholder name either.
        stranger_text = text_of(to_stranger)
        assert " ," not in stranger_text and "None" not in stranger_text

    def test_the_language(self, team, boss, tickets):
        """The account's shipped language, else the request's Accept-Language, else English."""

        def subject(email, accept=None):
            headers = {"Accept-Language": accept} if accept else None
            team.invitation(boss, email, tickets["id"], headers=headers)
            (message,) = team.mails("invitation", email)
            return message["Subject"]

        def account_with(language):
            person = team.customer()
            if language:
                response = team.client.patch(
                    "/api/v1/auth/me", json={"language": language}, headers=person.auth
                )
                assert response.status_code == 200
            return person.email

        english = subject(fresh_email("en"))
        french = subject(fresh_email("fr"), "fr")
        assert english != french
        assert subject(fresh_email("fr-ca"), "fr-CA, en;q=0.5") == french
        assert subject(fresh_email("de"), "de") == english
        assert subject(account_with("fr"), "en") == french
        assert subject(account_with("fr-CA"), None) == french
        assert subject(account_with(""), "fr") == french
        assert subject(account_with("de"), "fr") == french
        assert subject(account_with("de"), None) == english

    def test_mails_to_one_address_are_limited(self, make_app, smtp_server):
        limited = make_app(
            SMTP_URL=smtp_server.url,
            RATELIMIT_ENABLED=True,
            RATELIMIT_MAIL_PER_ADDRESS="1/hour",
            RATELIMIT_KEY_PREFIX=f"lumyri-test-{secrets.token_hex(4)}",
        )
        team = Team(limited, Api(limited.test_client()), smtp_server)
        boss = team.admin()
        email = fresh_email("invited")
        invitation = team.invitation(boss, email, team.admin_role_id(boss))
        assert len(team.mails("invitation", email)) == 1  # delivered before the resend
        response = resend(team, boss, invitation["id"])
        assert response.status_code == 200
        assert response.get_json()["data"]["invitation"]["status"] == "pending"
        assert len(team.mails("invitation", email)) == 1


class TestRateLimit:
    def test_invitations_per_company(self, make_app, smtp_server):
        limited = make_app(
            SMTP_URL=smtp_server.url,
            RATELIMIT_ENABLED=True,
            RATELIMIT_INVITATIONS="2/hour",
            RATELIMIT_KEY_PREFIX=f"lumyri-test-{secrets.token_hex(4)}",
        )
        team = Team(limited, Api(limited.test_client()), smtp_server)
        boss = team.admin()
        role_id = team.admin_role_id(boss)
        second = team.join(boss, role_id)  # one invitation spent
        assert team.invite(boss, fresh_email("a"), role_id).status_code == 201
        refused = team.invite(second, fresh_email("b"), role_id)
        assert error_code(refused) == (429, "RATE_LIMITED")
        assert int(refused.headers["Retry-After"]) >= 1
        # A body refused for its rules gets that answer and spends nothing.
        assert error_code(team.invite(boss, "nope", role_id)) == (400, "VALIDATION_ERROR")
        # The limit comes before every 409 (a member's address).
        assert error_code(team.invite(boss, second.email, role_id)) == (429, "RATE_LIMITED")
        other = team.admin()
        assert team.invite(other, fresh_email("c"), team.admin_role_id(other)).status_code == 201


class TestIdempotency:
    def test_a_retry_gets_the_first_answer(self, team, boss, tickets):
        email = fresh_email("invited")
        key = {"Idempotency-Key": "invite-1"}
        first = team.invite(boss, email, tickets["id"], headers=key)
        again = team.invite(boss, email, tickets["id"], headers=key)
        assert first.status_code == again.status_code == 201
        assert again.get_json() == first.get_json()
        assert len(listed(team, boss)) == 1
        assert len(team.mails("invitation", email)) == 1

    def test_the_same_key_with_another_body_is_422(self, team, boss, tickets):
        key = {"Idempotency-Key": "invite-2"}
        team.invite(boss, fresh_email("one"), tickets["id"], headers=key)
        response = team.invite(boss, fresh_email("two"), tickets["id"], headers=key)
        assert error_code(response) == (422, "IDEMPOTENCY_KEY_REUSED")
        assert len(listed(team, boss)) == 1

    def test_the_key_is_scoped_to_the_calling_account(self, team, boss, tickets):
        second = team.join(boss)
        email = fresh_email("invited")
        key = {"Idempotency-Key": "invite-3"}
        assert team.invite(boss, email, tickets["id"], headers=key).status_code == 201
        response = team.invite(second, email, tickets["id"], headers=key)
        assert error_code(response) == (409, "INVITATION_PENDING")
        other = team.admin()
        response = team.invite(other, email, team.admin_role_id(other), headers=key)
        assert response.status_code == 201
        assert response.get_json()["data"]["invitation"]["invited_by"]["id"] == other.id

    def test_the_key_is_scoped_to_the_endpoint(self, team, boss, tickets):
        key = {"Idempotency-Key": "shared-key"}
        assert team.api.signup("customer", signup_body(), headers=key).status_code == 201
        response = team.invite(boss, fresh_email("invited"), tickets["id"], headers=key)
        assert response.status_code == 201

    @pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "a\tb"])
    def test_a_malformed_key_is_400(self, team, boss, tickets, key):
        response = team.client.post(
            INVITATIONS_PATH,
            json={"email": fresh_email("invited"), "role_id": tickets["id"]},
            headers={**boss.auth, "Idempotency-Key": key},
        )
        assert error_code(response) == (400, "VALIDATION_ERROR")


class TestList:
    def test_newest_first(self, team, boss, tickets):
        made = [team.invitation(boss, fresh_email("invited"), tickets["id"]) for _ in range(3)]
        response = team.invitations(boss)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        data = response.get_json()["data"]
        assert set(data) == {"invitations", "next_cursor"} and data["next_cursor"] is None
        assert data["invitations"] == made[::-1]

    def test_closed_and_expired_ones_stay_listed_with_their_status(self, team, boss, tickets):
        expired = team.invitation(boss, fresh_email("late"), tickets["id"])
        team.age_invitations()
        revoked = team.invitation(boss, fresh_email("revoked"), tickets["id"])
        revoke(team, boss, revoked["id"])
        accepted = team.join(boss, tickets["id"])
        pending = team.invitation(boss, fresh_email("pending"), tickets["id"])
        everything = listed(team, boss)
        assert [(i["id"], i["status"]) for i in everything][0] == (pending["id"], "pending")
        statuses = {i["email"]: i["status"] for i in everything}
        assert statuses == {
            expired["email"]: "expired",
            revoked["email"]: "revoked",
            accepted.email: "accepted",
            pending["email"]: "pending",
        }
        for status in ("pending", "accepted", "revoked", "expired"):
            only = listed(team, boss, status=status)
            assert [i["status"] for i in only] == [status]

    @pytest.mark.parametrize("status", ["open", "all", "closed", "pending,revoked"])
    def test_an_unknown_status_is_400(self, team, boss, status):
        response = team.invitations(boss, status=status)
        assert error_code(response) == (400, "VALIDATION_ERROR")

    def test_pages_follow_next_cursor(self, team, boss, tickets):
        made = [
            team.invitation(boss, fresh_email("invited"), tickets["id"])["id"] for _ in range(5)
        ]
        newest = made[::-1]
        assert every_page(team, boss, 2) == [newest[0:2], newest[2:4], newest[4:]]
        assert every_page(team, boss, 5) == [newest]
        assert every_page(team, boss, 2, status="pending") == [newest[0:2], newest[2:4], newest[4:]]

    def test_the_default_page_is_50_and_100_at_most(self, team, boss, tickets):
        for _ in range(101):
            team.invitation(boss, fresh_email("invited"), tickets["id"])
        default = team.invitations(boss).get_json()["data"]
        assert len(default["invitations"]) == 50 and default["next_cursor"]
        largest = team.invitations(boss, limit=100).get_json()["data"]
        assert len(largest["invitations"]) == 100 and largest["next_cursor"]
        rest = team.invitations(boss, limit=100, cursor=largest["next_cursor"])
        assert rest.get_json()["data"]["next_cursor"] is None
        assert len(rest.get_json()["data"]["invitations"]) == 1

    @pytest.mark.parametrize("limit", ["0", "101", "-3", "ten", ""])
    def test_a_bad_limit_is_400(self, team, boss, limit):
        response = team.invitations(boss, limit=limit)
        assert error_code(response) == (400, "VALIDATION_ERROR")

    @pytest.mark.parametrize("cursor", ["garbage", "x" * 200, "eyJ0IjoxfQ"])
    def test_a_bad_cursor_is_400(self, team, boss, cursor):
        response = team.invitations(boss, cursor=cursor)
        assert error_code(response) == (400, "VALIDATION_ERROR")

    def test_a_cursor_of_the_members_list_is_400(self, team, boss, tickets):
        team.join(boss, tickets["id"])
        cursor = team.members(boss, limit=1).get_json()["data"]["next_cursor"]
        assert cursor
        assert error_code(team.invitations(boss, cursor=cursor)) == (400, "VALIDATION_ERROR")

    def test_only_this_companys_invitations(self, team, boss, tickets):
        other = team.admin()
        team.invitation(other, fresh_email("theirs"), team.admin_role_id(other))
        assert listed(team, boss) == []

    def test_invited_by_is_null_once_the_inviters_account_is_gone(self, team, boss, tickets):
        second = team.join(boss, first_name="Sam")
        email = fresh_email("invited")
        invitation = team.invitation(second, email, tickets["id"])
        assert invitation["invited_by"]["first_name"] == "Sam"
        assert team.delete_account(second).status_code == 204
        (kept,) = [i for i in listed(team, boss) if i["id"] == invitation["id"]]
        assert (kept["invited_by"], kept["status"]) == (None, "pending")
        token = team.link(email)
        assert team.lookup(token).get_json()["data"]["invited_by"] is None
        assert team.accept_new(token).status_code == 201


class TestWhoMay:
    def test_a_customer_is_403_everywhere(self, team, boss, tickets):
        invitation = team.invitation(boss, fresh_email("invited"), tickets["id"])
        customer = team.customer()
        answers = [
            team.invitations(customer),
            team.invite(customer, fresh_email("x"), tickets["id"]),
            resend(team, customer, invitation["id"]),
            revoke(team, customer, invitation["id"]),
        ]
        assert [error_code(r) for r in answers] == [(403, "FORBIDDEN")] * 4

    def test_without_admins_view_nothing(self, team, boss, tickets):
        member = team.join(boss, tickets["id"])
        assert error_code(team.invitations(member)) == (403, "FORBIDDEN")
        assert error_code(team.invite(member, fresh_email("x"), tickets["id"])) == (
            403,
            "FORBIDDEN",
        )

    def test_admins_view_lists_but_does_not_invite_resend_or_revoke(self, team, boss, tickets):
        viewers = team.role(boss, "Viewers", "platform.admins.view", "application.tickets")
        member = team.join(boss, viewers["id"])
        invitation = team.invitation(boss, fresh_email("invited"), tickets["id"])
        assert len(listed(team, member)) == 2
        answers = [
            team.invite(member, fresh_email("x"), tickets["id"]),
            resend(team, member, invitation["id"]),
            revoke(team, member, invitation["id"]),
            # The role is checked before the invitation named in the path.
            revoke(team, member, "not-a-uuid"),
            resend(team, member, "00000000-0000-4000-8000-000000000000"),
        ]
        assert [error_code(r) for r in answers] == [(403, "FORBIDDEN")] * 5
        assert status_of(team, boss, invitation["id"]) == "pending"

    def test_admins_all_invites_with_what_it_holds(self, team, boss):
        people = team.role(boss, "People", "platform.admins", "application.tickets")
        member = team.join(boss, people["id"])
        viewers = team.role(boss, "Viewers", "application.tickets.view")
        assert team.invite(member, fresh_email("x"), viewers["id"]).status_code == 201
        assert team.invite(member, fresh_email("y"), people["id"]).status_code == 201

    def test_inviting_with_a_role_that_holds_more_is_403(self, team, boss, admin_id):
        people = team.role(boss, "People", "platform.admins", "application.tickets")
        member = team.join(boss, people["id"])
        billing = team.role(boss, "Billing", "platform.billing.view")
        for role_id in (billing["id"], admin_id):
            response = team.invite(member, fresh_email("x"), role_id)
            assert error_code(response) == (403, "PERMISSION_NOT_HELD")
        # Before any 409: a member's address (ALREADY_MEMBER), a pending one.
        assert error_code(team.invite(member, boss.email, admin_id)) == (
            403,
            "PERMISSION_NOT_HELD",
        )
        pending = fresh_email("pending")
        team.invitation(boss, pending, admin_id)
        assert error_code(team.invite(member, pending, billing["id"])) == (
            403,
            "PERMISSION_NOT_HELD",
        )

    def test_the_field_rules_come_before_permission_not_held(self, team, boss, admin_id):
        people = team.role(boss, "People", "platform.admins", "application.tickets")
        member = team.join(boss, people["id"])
        response = team.invite(member, "not-an-address", admin_id)
        assert error_code(response) == (400, "VALIDATION_ERROR")

    def test_without_a_token_401(self, team):
        response = team.client.get(INVITATIONS_PATH)
        assert error_code(response) == (401, "INVALID_TOKEN")


class TestResend:
    def test_a_new_link_and_mail_the_old_link_dies(self, team, boss, tickets, mail_app):
        email = fresh_email("invited")
        invitation = team.invitation(boss, email, tickets["id"])
        old = team.link(email)
        team.age_invitations(seconds=60)  # still pending, and a new expires_at shows
        (aged,) = listed(team, boss)
        response = resend(team, boss, invitation["id"], {"email": "other@example.org"})
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        assert body["error"] is None and list(body["data"]) == ["invitation"]
        resent = body["data"]["invitation"]
        assert set(resent) == INVITATION_KEYS
        assert (resent["id"], resent["email"], resent["status"]) == (
            invitation["id"],
            email,
            "pending",
        )
        assert moment(resent["expires_at"]) >= moment(aged["expires_at"]) + timedelta(seconds=59)
        mails = team.mails("invitation", email)
        assert len(mails) == 2
        new = link_token(mails[-1])
        assert new != old
        assert error_code(team.lookup(old)) == (400, "INVALID_LINK")
        assert error_code(team.accept_new(old)) == (400, "INVALID_LINK")
        assert team.lookup(new).status_code == 200
        assert audited(mail_app, "invitation_resent", boss.id, invitation["id"])
        assert team.accept_new(new).status_code == 201

    def test_an_expired_invitation_is_pending_again(self, team, boss, tickets):
        email = fresh_email("invited")
        invitation = team.invitation(boss, email, tickets["id"])
        team.age_invitations()
        assert error_code(team.lookup(team.link(email))) == (400, "INVALID_LINK")
        response = resend(team, boss, invitation["id"])
        assert response.status_code == 200
        resent = response.get_json()["data"]["invitation"]
        assert resent["status"] == "pending"
        assert moment(resent["expires_at"]) > datetime.now(UTC) + timedelta(days=6)
        assert status_of(team, boss, invitation["id"]) == "pending"
        assert team.lookup(team.link(email)).status_code == 200

    def test_an_expired_one_whose_address_has_a_newer_pending_one_is_409(self, team, boss, tickets):
        email = fresh_email("invited")
        old = team.invitation(boss, email, tickets["id"])
        team.age_invitations()
        team.invitation(boss, email, tickets["id"])
        assert error_code(resend(team, boss, old["id"])) == (409, "INVITATION_PENDING")

    def test_accepted_or_revoked_is_409_closed(self, team, boss, tickets):
        team.join(boss, tickets["id"])
        (accepted,) = listed(team, boss)
        revoked = team.invitation(boss, fresh_email("invited"), tickets["id"])
        revoke(team, boss, revoked["id"])
        for invitation in (accepted, revoked):
            assert error_code(resend(team, boss, invitation["id"])) == (409, "INVITATION_CLOSED")

    def test_another_companys_or_no_such_invitation_is_404(self, team, boss, tickets):
        other = team.admin()
        theirs = team.invitation(other, fresh_email("theirs"), team.admin_role_id(other))
        for invitation_id in (theirs["id"], "00000000-0000-4000-8000-000000000000", "nope"):
            assert error_code(resend(team, boss, invitation_id)) == (404, "NOT_FOUND")


class TestRevoke:
    def test_204_revoked_and_its_link_dead(self, team, boss, tickets, mail_app):
        email = fresh_email("invited")
        invitation = team.invitation(boss, email, tickets["id"])
        token = team.link(email)
        response = revoke(team, boss, invitation["id"])
        assert response.status_code == 204 and response.get_data() == b""
        assert status_of(team, boss, invitation["id"]) == "revoked"
        assert error_code(team.lookup(token)) == (400, "INVALID_LINK")
        assert error_code(team.accept_new(token)) == (400, "INVALID_LINK")
        assert audited(mail_app, "invitation_revoked", boss.id, invitation["id"])

    def test_revoked_or_accepted_is_409_closed(self, team, boss, tickets):
        team.join(boss, tickets["id"])
        (accepted,) = listed(team, boss)
        revoked = team.invitation(boss, fresh_email("invited"), tickets["id"])
        revoke(team, boss, revoked["id"])
        for invitation in (accepted, revoked):
            assert error_code(revoke(team, boss, invitation["id"])) == (409, "INVITATION_CLOSED")
        assert status_of(team, boss, accepted["id"]) == "accepted"

    def test_an_expired_invitation_may_be_revoked(self, team, boss, tickets):
        invitation = team.invitation(boss, fresh_email("invited"), tickets["id"])
        team.age_invitations()
        assert revoke(team, boss, invitation["id"]).status_code == 204
        assert status_of(team, boss, invitation["id"]) == "revoked"

    def test_another_companys_or_no_such_invitation_is_404(self, team, boss):
        other = team.admin()
        theirs = team.invitation(other, fresh_email("theirs"), team.admin_role_id(other))
        for invitation_id in (theirs["id"], "00000000-0000-4000-8000-000000000000", "nope"):
            assert error_code(revoke(team, boss, invitation_id)) == (404, "NOT_FOUND")
        assert status_of(team, other, theirs["id"]) == "pending"


class TestLookup:
    def test_what_the_link_invites_to(self, team, boss, tickets):
        team.client.patch(COMPANY_PATH, json={"name": "Acme"}, headers=boss.auth)
        email = fresh_email("invited")
        invitation = team.invitation(boss, email, tickets["id"])
        response = team.lookup(team.link(email))
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        assert body["error"] is None
        data = body["data"]
        assert set(data) == LOOKUP_KEYS
        assert data == {
            "email": email,
            "company": {"id": boss.user["company"]["id"], "name": "Acme"},
            "role": {"id": tickets["id"], "name": "Tickets", "category": "CUSTOM ROLE"},
            "invited_by": {"first_name": "Bea", "last_name": "Boss"},
            "expires_at": invitation["expires_at"],
            "account_exists": False,
        }

    def test_account_exists(self, team, boss, tickets):
        someone = team.customer()
        team.invitation(boss, someone.email.upper(), tickets["id"])
        data = team.lookup(team.link(someone.email)).get_json()["data"]
        assert data["account_exists"] is True

    def test_a_lookup_uses_nothing_up(self, team, boss, tickets):
        email = fresh_email("invited")
        team.invitation(boss, email, tickets["id"])
        token = team.link(email)
        assert team.lookup(token).status_code == team.lookup(token).status_code == 200
        assert team.accept_new(token).status_code == 201
        assert error_code(team.lookup(token)) == (400, "INVALID_LINK")

    @pytest.mark.parametrize("body", [{}, {"token": None}, {"token": ""}, {"token": 5}])
    def test_a_missing_token_is_400_validation(self, team, body):
        response = team.client.post(LOOKUP_PATH, json=body)
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert "token" in error_of(response)["fields"]

    def test_a_bad_token_is_invalid_link(self, team, boss, tickets):
        email = fresh_email("invited")
        team.invitation(boss, email, tickets["id"])
        good = team.link(email)
        (verification,) = team.mails("verify_email", boss.email)
        tampered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
        for token in ("garbage", "x" * 5000, tampered, link_token(verification)):
            assert error_code(team.lookup(token)) == (400, "INVALID_LINK")

    def test_an_invitation_token_is_no_other_links_token(self, team, boss, tickets):
        email = fresh_email("invited")
        team.invitation(boss, email, tickets["id"])
        token = team.link(email)
        for path, body in (
            ("/api/v1/auth/email/verify", {"token": token}),
            ("/api/v1/auth/password/reset", {"token": token, "password": "Another@Pass9"}),
            ("/api/v1/auth/email/change/confirm", {"token": token}),
        ):
            assert error_code(team.client.post(path, json=body)) == (400, "INVALID_LINK"), path
        assert team.lookup(token).status_code == 200

    def test_the_company_gone_kills_the_link(self, team, boss, admin_id):
        email = fresh_email("invited")
        team.invitation(boss, email, admin_id)
        token = team.link(email)
        assert team.delete_account(boss).status_code == 204  # the only member
        assert error_code(team.lookup(token)) == (400, "INVALID_LINK")
        assert error_code(team.accept_new(token)) == (400, "INVALID_LINK")

    def test_an_expired_link_is_invalid(self, team, boss, tickets):
        email = fresh_email("invited")
        team.invitation(boss, email, tickets["id"])
        token = team.link(email)
        team.age_invitations()
        assert error_code(team.lookup(token)) == (400, "INVALID_LINK")
        assert error_code(team.accept_new(token)) == (400, "INVALID_LINK")


class TestAcceptWithAccount:
    def test_200_the_login_body_with_a_fresh_token(self, team, boss, tickets, mail_app):
        person = team.customer()
        invitation = team.invitation(boss, person.email, tickets["id"])
        response = team.accept(team.link(person.email), person)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        assert body["error"] is None and list(body["data"]) == ["access_token", "user"]
        token, user = body["data"]["access_token"], body["data"]["user"]
        assert token != person.token
        assert list(user) == USER_KEYS
        assert user["id"] == person.id and user["email"] == person.email
        assert user["company"] == boss.user["company"]
        assert user["role"] == {
            "name": "Tickets",
            "description": "",
            "category": "CUSTOM ROLE",
            "permission": tree("application.tickets"),
        }
        assert user["state"] == "ACTIVED"
        me = team.client.get("/api/v1/auth/me", headers=bearer(token)).get_json()["data"]
        assert me == {"user": user, "email_verified": True}
        assert error_code(team.me(person)) == (401, "INVALID_TOKEN")  # earlier sessions end
        assert status_of(team, boss, invitation["id"]) == "accepted"
        assert person.id in [m["id"] for m in team.members(boss).get_json()["data"]["members"]]
        assert audited(mail_app, "invitation_accepted", person.id, invitation["id"])

    def test_every_earlier_session_ends(self, team, boss, tickets):
        person = team.customer()
        other_session = team.api.login(person.email).get_json()["data"]["access_token"]
        team.invitation(boss, person.email, tickets["id"])
        assert team.accept(team.link(person.email), person).status_code == 200
        assert error_code(team.client.get("/api/v1/auth/me", headers=bearer(other_session))) == (
            401,
            "INVALID_TOKEN",
        )

    def test_the_fresh_token_is_the_only_session_left(self, team, boss, tickets):
        person = team.customer()
        team.api.login(person.email)  # a second session
        team.invitation(boss, person.email, tickets["id"])
        response = team.accept(team.link(person.email), person, {"User-Agent": "joiner/1.0"})
        token = response.get_json()["data"]["access_token"]
        sessions = team.client.get("/api/v1/auth/sessions", headers=bearer(token))
        assert sessions.status_code == 200
        (only,) = sessions.get_json()["data"]["sessions"]
        assert (only["current"], only["user_agent"]) == (True, "joiner/1.0")

    def test_the_companys_billing_state_stays_its_first_admins(self, team, boss, admin_id):
        person = team.customer()
        team.bring_in(boss, person, admin_id)
        assert person.user["role"] == ADMIN_ROLE
        assert person.user["state"] == "ACTIVED"
        assert team.me(boss).get_json()["data"]["user"]["state"] == "CARD_NOT_FOUND"

    def test_the_address_is_compared_as_at_log_in(self, team, boss, tickets):
        person = team.customer(email=f"x{secrets.token_hex(3)}@bücher.de")
        local = person.email.split("@")[0]
        team.invitation(boss, f"{local.upper()}@xn--bcher-kva.de", tickets["id"])
        # Without SMTPUTF8 the sink receives the domain as its A-label.
        token = team.link(f"{local}@xn--bcher-kva.de")
        assert team.accept(token, person).status_code == 200

    def test_another_address_is_403_mismatch(self, team, boss, tickets):
        invited = fresh_email("invited")
        invitation = team.invitation(boss, invited, tickets["id"])
        other = team.customer()
        response = team.accept(team.link(invited), other)
        assert error_code(response) == (403, "INVITATION_EMAIL_MISMATCH")
        assert status_of(team, boss, invitation["id"]) == "pending"
        assert team.me(other).get_json()["data"]["user"]["company"]["id"] == ""

    def test_a_dead_link_comes_before_the_mismatch(self, team, boss, tickets):
        invited = fresh_email("invited")
        invitation = team.invitation(boss, invited, tickets["id"])
        token = team.link(invited)
        other = team.customer()
        assert error_code(team.accept("garbage", other)) == (400, "INVALID_LINK")
        revoke(team, boss, invitation["id"])
        assert error_code(team.accept(token, other)) == (400, "INVALID_LINK")

    def test_an_account_in_a_company_is_409(self, team, boss, tickets):
        other_admin = team.admin()
        team.invitation(boss, other_admin.email, tickets["id"])
        response = team.accept(team.link(other_admin.email), other_admin)
        assert error_code(response) == (409, "ALREADY_IN_COMPANY")
        me = team.me(other_admin).get_json()["data"]["user"]
        assert (me["company"]["id"], me["role"]["name"]) == (
            other_admin.user["company"]["id"],
            "Admin",
        )

    def test_a_member_who_joined_elsewhere_meanwhile_is_409(self, team, boss, tickets):
        person = team.customer()
        team.invitation(boss, person.email, tickets["id"])
        first_link = team.link(person.email)
        other = team.admin()
        team.bring_in(other, person, team.admin_role_id(other))
        response = team.accept(first_link, person)
        assert error_code(response) == (409, "ALREADY_IN_COMPANY")

    def test_the_mismatch_comes_before_already_in_company(self, team, boss, tickets):
        invited = fresh_email("invited")
        team.invitation(boss, invited, tickets["id"])
        response = team.accept(team.link(invited), team.admin())
        assert error_code(response) == (403, "INVITATION_EMAIL_MISMATCH")

    @pytest.mark.parametrize("authorization", ["Bearer x.y.z", "Bearer", "Bearer garbage"])
    def test_a_bad_bearer_token_is_401_never_taken_as_absent(
        self, team, boss, tickets, authorization
    ):
        email = fresh_email("invited")
        invitation = team.invitation(boss, email, tickets["id"])
        response = team.client.post(
            ACCEPT_PATH,
            json={
                "token": team.link(email),
                "first_name": "New",
                "last_name": "Member",
                "password": PASSWORD,
            },
            headers={"Authorization": authorization},
        )
        assert error_code(response) == (401, "INVALID_TOKEN")
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert status_of(team, boss, invitation["id"]) == "pending"
        assert team.api.login(email).status_code == 401

    def test_a_revoked_bearer_token_is_401(self, team, boss, tickets):
        person = team.customer()
        team.invitation(boss, person.email, tickets["id"])
        team.api.logout(person.token)
        assert error_code(team.accept(team.link(person.email), person)) == (401, "INVALID_TOKEN")


class TestAcceptAsNewAccount:
    def test_201_a_verified_account_in_the_company(self, team, boss, tickets, mail_app):
        email = fresh_email("invited")
        invitation = team.invitation(boss, email, tickets["id"])
        response = team.accept_new(
            team.link(email), first_name=" Nia ", last_name="Newton", email="other@example.org"
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        assert body["error"] is None and list(body["data"]) == ["access_token", "user"]
        user = body["data"]["user"]
        assert list(user) == USER_KEYS
        assert (user["email"], user["first_name"], user["last_name"]) == (email, "Nia", "Newton")
        assert user["company"] == boss.user["company"]
        assert (user["role"]["name"], user["role"]["category"]) == ("Tickets", "CUSTOM ROLE")
        assert user["state"] == "ACTIVED"
        token = body["data"]["access_token"]
        me = team.client.get("/api/v1/auth/me", headers=bearer(token)).get_json()["data"]
        assert me == {"user": user, "email_verified": True}
        assert team.api.login(email).status_code == 200
        assert team.api.login("other@example.org").status_code == 401
        assert status_of(team, boss, invitation["id"]) == "accepted"
        assert audited(mail_app, "invitation_accepted", user["id"], invitation["id"])

    def test_the_new_account_has_one_session(self, team, boss, tickets):
        email = fresh_email("invited")
        team.invitation(boss, email, tickets["id"])
        response = team.accept_new(team.link(email), headers={"User-Agent": "newcomer/2.0"})
        token = response.get_json()["data"]["access_token"]
        sessions = team.client.get("/api/v1/auth/sessions", headers=bearer(token))
        (only,) = sessions.get_json()["data"]["sessions"]
        assert (only["current"], only["user_agent"]) == (True, "newcomer/2.0")

    def test_the_sign_up_rules(self, team, boss, tickets):
        email = fresh_email("invited")
        invitation = team.invitation(boss, email, tickets["id"])
        token = team.link(email)
        response = team.client.post(
            ACCEPT_PATH, json={"token": token, "first_name": " ", "password": "short"}
        )
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert {"first_name", "last_name", "password"} <= set(error_of(response)["fields"])
        assert status_of(team, boss, invitation["id"]) == "pending"
        assert team.api.login(email, "short").status_code == 401

    def test_validation_comes_before_the_link(self, team):
        response = team.accept_new("garbage", password="short")
        assert error_code(response) == (400, "VALIDATION_ERROR")
        assert "password" in error_of(response)["fields"]
        response = team.accept_new("")
        assert "token" in error_of(response)["fields"]

    def test_an_address_with_an_account_is_409_email_taken(self, team, boss, tickets):
        person = team.customer()
        invitation = team.invitation(boss, person.email, tickets["id"])
        response = team.accept_new(team.link(person.email))
        assert error_code(response) == (409, "EMAIL_TAKEN")
        assert status_of(team, boss, invitation["id"]) == "pending"
        assert team.me(person).status_code == 200

    def test_a_dead_link_comes_before_email_taken(self, team, boss, tickets):
        person = team.customer()
        invitation = team.invitation(boss, person.email, tickets["id"])
        token = team.link(person.email)
        revoke(team, boss, invitation["id"])
        assert error_code(team.accept_new(token)) == (400, "INVALID_LINK")

    def test_a_link_is_good_once(self, team, boss, tickets):
        email = fresh_email("invited")
        team.invitation(boss, email, tickets["id"])
        token = team.link(email)
        assert team.accept_new(token).status_code == 201
        assert error_code(team.accept_new(token)) == (400, "INVALID_LINK")
        assert error_code(team.accept_new(token, password="Other@Pass99")) == (
            400,
            "INVALID_LINK",
        )

    def test_with_the_admin_role(self, team, boss, admin_id):
        member = team.join(boss, admin_id)
        assert member.user["role"] == ADMIN_ROLE
        assert team.members(member).status_code == 200
