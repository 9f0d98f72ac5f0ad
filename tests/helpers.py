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
    return max(10, int(count * EXAMPLES_SCALE))


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
    for family in text_string_to_metric_families(text):
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
