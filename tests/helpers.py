"""Helpers shared by the tests: request bodies, the API client and the contract's objects."""

import base64
import itertools
import json
import os
import re
import socket
import subprocess
import threading

from prometheus_client.parser import text_string_to_metric_families

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
# `make test-fast` sets TEST_EXAMPLES_SCALE below 1 for fewer generated examples in the
# property and fuzz tests; `make test` (and CI) runs them all.
EXAMPLES_SCALE = float(os.environ.get("TEST_EXAMPLES_SCALE", "1"))


def examples(count):
    """How many generated examples a property or fuzz test runs in this tier."""
    return max(5, int(count * EXAMPLES_SCALE))


SIGNUP_PATHS = {
    "admin": "/api/v1/auth/admin/signup",
    "customer": "/api/v1/auth/customer/signup",
}
LOGIN_PATH = "/api/v1/auth/login"
ME_PATH = "/api/v1/auth/me"
LOGOUT_PATH = "/api/v1/auth/logout"
PASSWORD = "Password@123"
TOKEN_IN_LINK = re.compile(r"token=([A-Za-z0-9_\-.]+)")
_emails = itertools.count(1)


def fresh_email(prefix="user"):
    """A new, unused e-mail address for each call."""
    return f"{prefix}{next(_emails)}@example.org"


def signup_body(**overrides):
    """A valid sign-up body (the document's sample), with overrides."""
    body = {
        "first_name": "Admin",
        "last_name": "Test",
        "email": fresh_email(),
        "password": PASSWORD,
    }
    body.update(overrides)
    return body


class Api:
    """Sends the requests the tests repeat."""

    def __init__(self, client):
        self.client = client

    def signup(self, kind, body=None, **kwargs):
        """POST a sign-up body (JSON) to the admin or customer endpoint."""
        return self.client.post(SIGNUP_PATHS[kind], json=body or signup_body(), **kwargs)

    def login(self, email, password=PASSWORD, **kwargs):
        """POST e-mail and password to the log-in endpoint."""
        return self.client.post(LOGIN_PATH, json={"email": email, "password": password}, **kwargs)

    def me(self, token=None, authorization=None):
        """GET /me with a bearer token (or a raw Authorization header)."""
        header = authorization if authorization is not None else f"Bearer {token}"
        return self.client.get(ME_PATH, headers={"Authorization": header})

    def logout(self, token):
        """POST /logout with a bearer token."""
        return self.client.post(LOGOUT_PATH, headers={"Authorization": f"Bearer {token}"})

    def post_raw(self, kind, data, content_type="application/json"):
        """POST raw bytes with the given content type."""
        return self.client.post(SIGNUP_PATHS[kind], data=data, content_type=content_type)


def permission_tree(allowed):
    """The contract's permission tree, every `all`/`view` set to `allowed`."""
    grant = {"all": allowed, "view": allowed}
    platform = ["applications", "admins", "roles", "billing"]
    application = ["tickets", "agents", "customers", "live_map", "labels", "settings"]
    return {
        "platform": {name: dict(grant) for name in platform},
        "application": {"applications": None, **{name: dict(grant) for name in application}},
    }


ADMIN_ROLE = {
    "name": "Admin",
    "description": "Have full access to platform",
    "category": "SYSTEM ROLE",
    "permission": permission_tree(True),
}
CUSTOMER_ROLE = {
    "name": "Customer",
    "description": "",
    "category": "SYSTEM ROLE",
    "permission": permission_tree(False),
}
USER_KEYS = [
    "id",
    "first_name",
    "last_name",
    "phone",
    "email",
    "country",
    "city",
    "avatar",
    "company",
    "role",
    "address",
    "state",
    "language",
    "timezone",
    "default_app",
]
COMPANY_KEYS = ["id", "name", "phone", "address", "describe", "email"]


def expected_user(kind, user_id, company_id, first_name, last_name, email):
    """The full user object the contract promises for a fresh account."""
    admin = kind == "admin"
    return {
        "id": user_id,
        "first_name": first_name,
        "last_name": last_name,
        "phone": "",
        "email": email,
        "country": "",
        "city": "",
        "avatar": "",
        "company": {
            "id": company_id if admin else "",
            "name": "",
            "phone": "",
            "address": "",
            "describe": "",
            "email": "",
        },
        "role": ADMIN_ROLE if admin else CUSTOMER_ROLE,
        "address": None,
        "state": "CARD_NOT_FOUND" if admin else "ACTIVED",
        "language": "",
        "timezone": "",
        "default_app": "",
    }


def error_of(response):
    """The `error` object of an envelope response, after checking the envelope itself."""
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data(as_text=True))
    assert set(body) == {"error", "data"}
    assert body["data"] is None
    assert isinstance(body["error"]["code"], str) and body["error"]["message"]
    return body["error"]


def mailed_link_token(app, purpose, user_id, new_email=""):
    """The token a mail of this purpose (app.links) would carry if sent now: made, as the
    mail sender makes it, from the account as it is."""
    from app import links, repository

    with app.app_context():
        user = repository.account_by_id(user_id)
        return links.token_for(purpose, user, new_email)


def bearer(token):
    """The Authorization header of an access token."""
    return {"Authorization": f"Bearer {token}"}


def account(api, kind="customer", **changes):
    """A new account, signed up with `signup_body(**changes)`: (token, user)."""
    data = api.signup(kind, signup_body(**changes)).get_json()["data"]
    return data["access_token"], data["user"]


def b64(data):
    """Unpadded base64url, as JWTs use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def link_token(message):
    """The token of the link in a mail's text part."""
    text = message.get_body(preferencelist=("plain",)).get_content()
    (token,) = TOKEN_IN_LINK.findall(text)
    return token


def deliver(app):
    """Run the app's mail sender once, as its thread would."""
    from app.mail import EXTENSION_KEY

    return app.extensions[EXTENSION_KEY].deliver_due()


def at_once(count, send):
    """Run `send(i)` in `count` threads released together; their results."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(index):
        barrier.wait(10)
        results[index] = send(index)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def together(*sends):
    """Run each `send()` in its own thread, released together; their results in order."""
    return at_once(len(sends), lambda index: sends[index]())


def sample_in(text, name, absent=0, **labels):
    """The value of sample `name` with these labels in a Prometheus text (`absent` if none)."""
    # Only that sample's lines go through the parser (the whole text takes ~0.1 s).
    lines = [line for line in text.splitlines() if line.partition("{")[0].split(" ")[0] == name]
    for family in text_string_to_metric_families("\n".join(lines) + "\n"):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return item.value
    return absent


def metric_sample(client, name, absent=0, **labels):
    """The current value of one metric sample, read from /metrics with a test client."""
    return sample_in(client.get("/metrics").get_data(as_text=True), name, absent, **labels)


def free_port():
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_example(server, script, *args, **env):
    """Run one of the examples/ scripts against a running server; its standard output."""
    result = subprocess.run(
        ["bash", os.path.join(ROOT, "examples", script), *args],
        env={**os.environ, "BASE_URL": server.base_url, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def run_example_json(server, script, *args, **env):
    """Run one of the examples/ scripts against a running server; its output, parsed."""
    return json.loads(run_example(server, script, *args, **env))


# Companies and teams (the contract's section of that name): paths, permission trees, and
# a `Team` that signs companies up, makes roles and brings members in through invitations.
COMPANY_PATH = "/api/v1/auth/company"
MEMBERS_PATH = "/api/v1/auth/company/members"
INVITATIONS_PATH = "/api/v1/auth/company/invitations"
ROLES_PATH = "/api/v1/auth/company/roles"
LOOKUP_PATH = "/api/v1/auth/invitations/lookup"
ACCEPT_PATH = "/api/v1/auth/invitations/accept"
DELETE_ME_PATH = "/api/v1/auth/me/delete"
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


def tree(*grants):
    """A permission tree with these grants `true` and every other leaf `false`: a grant is
    `section.resource.level`, or `section.resource` for both `all` and `view`."""
    result = permission_tree(False)
    for grant in grants:
        section, resource, *level = grant.split(".")
        for each in level or ["all", "view"]:
            result[section][resource][each] = True
    return result


class Person:
    """An account the tests act as: its current token, user object, address and password."""

    def __init__(self, token, user, password=PASSWORD):
        self.token, self.user, self.password = token, user, password
        self.id, self.email = user["id"], user["email"]

    @property
    def auth(self):
        """Its Authorization header."""
        return bearer(self.token)


class Team:
    """Companies, roles and members through the HTTP API (mails read from the SMTP sink)."""

    def __init__(self, app, api, smtp_server):
        self.app, self.api, self.client, self.smtp = app, api, api.client, smtp_server

    def signup(self, kind, **changes):
        """A new account of this kind (`admin`: with a new company)."""
        response = self.api.signup(kind, signup_body(**changes))
        assert response.status_code == 201, response.get_data(as_text=True)
        data = response.get_json()["data"]
        return Person(data["access_token"], data["user"])

    def age_invitations(self, seconds=None):
        """As if `seconds` (by default each invitation's lifetime, INVITATION_TTL_SECONDS,
        and one more) had passed: their times move that far back, so by default the
        pending ones are past expires_at (what waiting out a short lifetime did, without
        the wait)."""
        from datetime import timedelta

        import sqlalchemy as sa

        from app.extensions import db
        from app.models import Invitation

        if seconds is None:
            seconds = self.app.config["INVITATION_TTL_SECONDS"] + 1
        back = timedelta(seconds=seconds)
        with self.app.app_context():
            for row in db.session.scalars(sa.select(Invitation)):
                row.created_at -= back
                row.expires_at -= back
                if row.closed_at is not None:
                    row.closed_at -= back
            db.session.commit()

    def admin(self, **changes):
        """A new admin and its new company."""
        return self.signup("admin", **changes)

    def customer(self, **changes):
        """A new customer (no company)."""
        return self.signup("customer", **changes)

    def me(self, person):
        """GET /me as this person."""
        return self.client.get(ME_PATH, headers=person.auth)

    def admin_role_id(self, person):
        """The Admin role's id, as GET /company/roles lists it."""
        response = self.client.get(ROLES_PATH, headers=person.auth)
        assert response.status_code == 200, response.get_data(as_text=True)
        (admin,) = [r for r in response.get_json()["data"]["roles"] if r["name"] == "Admin"]
        return admin["id"]

    def create_role(self, person, name, permission, **fields):
        """POST /company/roles: the response."""
        body = {"name": name, "permission": permission, **fields}
        return self.client.post(ROLES_PATH, json=body, headers=person.auth)

    def role(self, person, name, *grants, **fields):
        """A new custom role with these grants (see `tree`): its role object."""
        response = self.create_role(person, name, tree(*grants), **fields)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()["data"]["role"]

    def invite(self, person, email, role_id, headers=None):
        """POST /company/invitations: the response."""
        return self.client.post(
            INVITATIONS_PATH,
            json={"email": email, "role_id": role_id},
            headers={**person.auth, **(headers or {})},
        )

    def invitation(self, person, email, role_id, headers=None):
        """A new invitation: its object."""
        response = self.invite(person, email, role_id, headers)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()["data"]["invitation"]

    def mails(self, kind, to=None):
        """Deliver what is due; every mail of this kind (to this address) sent so far."""
        deliver(self.app)
        return [
            message
            for _, recipients, message in self.smtp.messages
            if message["X-Lumyri-Mail"] == kind
            and (to is None or to.lower() in [r.lower() for r in recipients])
        ]

    def link(self, email):
        """The token of the newest invitation mail to this address."""
        mails = self.mails("invitation", email)
        assert mails, f"no invitation mail to {email}"
        return link_token(mails[-1])

    def lookup(self, token, headers=None):
        """POST /invitations/lookup."""
        return self.client.post(LOOKUP_PATH, json={"token": token}, headers=headers or {})

    def accept(self, token, person=None, headers=None):
        """POST /invitations/accept with this person's bearer token."""
        auth = person.auth if person is not None else {}
        return self.client.post(
            ACCEPT_PATH, json={"token": token}, headers={**auth, **(headers or {})}
        )

    def accept_new(self, token, headers=None, **changes):
        """POST /invitations/accept as a new account (names and password)."""
        body = {"token": token, "first_name": "New", "last_name": "Member", "password": PASSWORD}
        body.update(changes)
        return self.client.post(ACCEPT_PATH, json=body, headers=headers or {})

    def join(self, inviter, role_id=None, email=None, **changes):
        """A new account brought into the inviter's company with this role (Admin when
        None), through an invitation accepted as a new account."""
        email = email or fresh_email("member")
        role_id = role_id or self.admin_role_id(inviter)
        self.invitation(inviter, email, role_id)
        response = self.accept_new(self.link(email), **changes)
        assert response.status_code == 201, response.get_data(as_text=True)
        data = response.get_json()["data"]
        return Person(data["access_token"], data["user"])

    def bring_in(self, inviter, person, role_id=None):
        """An existing account joins the inviter's company (it accepts with its bearer
        token); its token is replaced by the fresh one."""
        role_id = role_id or self.admin_role_id(inviter)
        self.invitation(inviter, person.email, role_id)
        response = self.accept(self.link(person.email), person)
        assert response.status_code == 200, response.get_data(as_text=True)
        data = response.get_json()["data"]
        person.token, person.user = data["access_token"], data["user"]
        return person

    def members(self, person, **params):
        """GET /company/members."""
        return self.client.get(MEMBERS_PATH, query_string=params, headers=person.auth)

    def set_role(self, person, user_id, role_id):
        """PATCH /company/members/{user_id} with a role id."""
        return self.client.patch(
            f"{MEMBERS_PATH}/{user_id}", json={"role_id": role_id}, headers=person.auth
        )

    def remove(self, person, user_id):
        """DELETE /company/members/{user_id}."""
        return self.client.delete(f"{MEMBERS_PATH}/{user_id}", headers=person.auth)

    def invitations(self, person, **params):
        """GET /company/invitations."""
        return self.client.get(INVITATIONS_PATH, query_string=params, headers=person.auth)

    def delete_account(self, person):
        """POST /me/delete with the person's password."""
        return self.client.post(
            DELETE_ME_PATH, json={"password": person.password}, headers=person.auth
        )


def error_code(response):
    """(status, error code) of an envelope error response."""
    return response.status_code, error_of(response)["code"]


def customer_role_id(app):
    """The Customer system role's fixed id (no endpoint lists it)."""
    import sqlalchemy as sa

    from app.extensions import db
    from app.models import Role

    with app.app_context():
        return db.session.scalar(
            sa.select(Role.id).where(Role.name == "Customer", Role.category == "SYSTEM ROLE")
        )


def audit_rows(app, event):
    """Every audit event of this name, oldest first, each as a dict of all its columns."""
    import sqlalchemy as sa

    from app.extensions import db

    with app.app_context():
        table = sa.Table("audit_events", sa.MetaData(), autoload_with=db.engine)
        query = sa.select(table).where(table.c.event == event).order_by(table.c.id)
        rows = [dict(row._mapping) for row in db.session.execute(query)]
        db.session.commit()
        return rows


def audited(app, event, *ids):
    """True when an event of this name names every one of these ids (the actor, what it
    acted on) in its columns."""
    return any(set(ids) <= set(row.values()) for row in audit_rows(app, event))


# The Admin role's tree: every `all` and `view` of 4 platform resources and 6
# application resources (`application.applications` is null), 20 leaves, sorted.
ADMIN_LEAVES = [
    "application.agents.all",
    "application.agents.view",
    "application.customers.all",
    "application.customers.view",
    "application.labels.all",
    "application.labels.view",
    "application.live_map.all",
    "application.live_map.view",
    "application.settings.all",
    "application.settings.view",
    "application.tickets.all",
    "application.tickets.view",
    "platform.admins.all",
    "platform.admins.view",
    "platform.applications.all",
    "platform.applications.view",
    "platform.billing.all",
    "platform.billing.view",
    "platform.roles.all",
    "platform.roles.view",
]
