"""Self-service: PATCH /me and /company (every rule, all or nothing), the e-mail change
confirmed by the new address, and deleting the account (nothing personal left)."""

import threading

import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db
from app.models import (
    ADMIN_ROLE_ID,
    AuditEvent,
    Company,
    IdempotencyKey,
    OutboxMail,
    SigningCredential,
    User,
)
from tests.helpers import (
    PASSWORD,
    Api,
    account,
    bearer,
    deliver,
    error_of,
    fresh_email,
    link_token,
    signup_body,
)

ME = "/api/v1/auth/me"
COMPANY = "/api/v1/auth/company"
CHANGE = "/api/v1/auth/email/change"
CONFIRM = "/api/v1/auth/email/change/confirm"
DELETE = "/api/v1/auth/me/delete"
VERIFY = "/api/v1/auth/verify"


@pytest.fixture
def client(mail_app):
    """Its test client (so `api` uses it too)."""
    return mail_app.test_client()


def patch(api, path, token, body):
    """PATCH a JSON body with a token."""
    return api.client.patch(path, json=body, headers=bearer(token))


ACCEPTED = [
    ("phone", "+1 415 555 0123", "+14155550123"),
    ("phone", "+33 6 12 34 56 78", "+33612345678"),
    ("phone", "", ""),
    ("country", "fr", "FR"),
    ("country", "", ""),
    ("city", "  Paris ", "Paris"),
    ("avatar", "https://cdn.example.org/a.png", "https://cdn.example.org/a.png"),
    ("avatar", "", ""),
    ("avatar", "https://cdn.example.org:8443/a%20b.png?v=2&s=64#top", None),
    ("avatar", "https://[2001:db8::1]/a.png", None),
    ("avatar", "https://cdn.example.org/~me/a(1).png;x=y", None),
    ("language", "pt-br", "pt-BR"),
    ("language", "ZH-hant-tw", "zh-Hant-TW"),
    ("language", "", ""),
    ("timezone", "Europe/Paris", "Europe/Paris"),
    ("default_app", " tickets ", "tickets"),
    ("first_name", " Ada ", "Ada"),
]
REFUSED = [
    ("phone", "0612345678"),  # not international
    ("phone", "+1 555 0100"),  # possible length, no such number
    ("phone", "+999 12345"),
    ("country", "XX"),
    ("country", "ZZ"),
    ("country", "FRA"),
    ("city", "x" * 101),
    ("city", "a\x00b"),
    ("avatar", "http://cdn.example.org/a.png"),
    ("avatar", "https:///nohost"),
    ("avatar", "javascript:alert(1)"),
    ("avatar", "https://e.example/" + "a" * 2040),
    ("avatar", 'https://cdn.example.org/a.png"onerror="alert(1)'),
    ("avatar", "<script>"),
    ("avatar", "https://cdn.example.org/<script>"),
    ("avatar", "https://cdn.example.org\\@evil.example/"),
    ("avatar", "https://user:pw@cdn.example.org/a.png"),
    ("avatar", "https://cdn.example.org:99999/a.png"),
    ("avatar", "https://cdn.example.org:0/a.png"),
    ("avatar", "https://cdn.example.org/%zz"),
    ("avatar", "https://cdn.example.org/a b.png"),
    ("avatar", "https://cdn.example.org/{a}.png"),
    ("avatar", "https://cdn.example.org/a.png#x#y"),
    ("avatar", "https://-evil.example/a.png"),
    ("avatar", "https://bücher.de/a.png"),
    ("avatar", "https://[zz]/a.png"),
    ("language", "english"),
    ("language", "en_US"),
    ("language", "xx-YY"),
    ("timezone", "Mars/Olympus"),
    ("timezone", "europe/paris"),
    ("timezone", "localtime"),
    ("timezone", "posixrules"),
    ("timezone", "../../../etc/passwd"),
    ("default_app", "y" * 101),
    ("first_name", ""),
    ("first_name", None),
    ("phone", None),
    ("city", 7),
]


class TestProfile:
    @pytest.mark.parametrize(("field", "sent", "stored"), ACCEPTED)
    def test_each_rule_accepts_and_normalises(self, api, field, sent, stored):
        token, _ = account(api)
        response = patch(api, ME, token, {field: sent})
        assert response.status_code == 200, response.get_json()
        assert response.headers["Cache-Control"] == "no-store"
        stored = sent if stored is None else stored  # None: stored as sent
        assert response.get_json()["data"]["user"][field] == stored
        assert api.me(token).get_json()["data"]["user"][field] == stored

    @pytest.mark.parametrize(("field", "sent"), REFUSED)
    def test_each_rule_refuses(self, api, field, sent):
        token, user = account(api)
        response = patch(api, ME, token, {field: sent})
        assert response.status_code == 400
        error = error_of(response)
        assert error["code"] == "VALIDATION_ERROR" and list(error["fields"]) == [field]
        assert api.me(token).get_json()["data"]["user"] == user  # nothing changed

    def test_all_or_nothing_and_every_rule_at_once(self, api):
        token, user = account(api)
        body = {"city": "Lyon", "country": "XX", "phone": "123", "id": "x", "email": "a@b.org"}
        response = patch(api, ME, token, body)
        fields = error_of(response)["fields"]
        assert set(fields) == {"country", "phone", "id", "email"}
        assert fields["id"] == ["Unknown field."]
        assert "/api/v1/auth/email/change" in fields["email"][0]
        assert api.me(token).get_json()["data"]["user"]["city"] == ""

    @pytest.mark.parametrize("key", ["id", "role", "company", "state", "address", "citty"])
    def test_other_keys_are_refused(self, api, key):
        token, _ = account(api)
        response = patch(api, ME, token, {key: "x"})
        assert error_of(response)["fields"] == {key: ["Unknown field."]}

    def test_password_points_to_its_endpoint(self, api):
        token, _ = account(api)
        fields = error_of(patch(api, ME, token, {"password": "X"}))["fields"]
        assert "/api/v1/auth/password/change" in fields["password"][0]

    def test_an_empty_object_is_refused(self, api):
        token, _ = account(api)
        response = patch(api, ME, token, {})
        assert response.status_code == 400 and error_of(response)["code"] == "VALIDATION_ERROR"

    def test_needs_a_token_before_anything(self, client):
        response = client.patch(ME, data="{", content_type="application/json")
        assert response.status_code == 401

    def test_audited(self, api, mail_app):
        token, user = account(api)
        patch(api, ME, token, {"city": "Nice"})
        with mail_app.app_context():
            events = db.session.scalars(
                sa.select(AuditEvent.event).where(AuditEvent.user_id == user["id"])
            ).all()
        assert "profile_changed" in events

    def test_the_language_chooses_the_mails(self, api, mail_app, smtp_server):
        token, _ = account(api)
        patch(api, ME, token, {"language": "fr-CA"})
        api.client.post("/api/v1/auth/email/verification", headers=bearer(token))
        deliver(mail_app)
        subjects = [m[2]["Subject"] for m in smtp_server.messages]
        assert subjects[-1] == "Confirmez votre adresse e-mail"


class TestCompany:
    def test_an_admin_changes_the_company(self, api):
        token, user = account(api, "admin")
        body = {
            "name": " Acme ",
            "phone": "+44 20 7946 0958",
            "address": "1 Main St",
            "describe": "We sell <things> & more",
            "email": " Billing@Acme.Example ",
        }
        response = patch(api, COMPANY, token, body)
        assert response.status_code == 200
        company = response.get_json()["data"]["user"]["company"]
        assert company == {
            "id": user["company"]["id"],
            "name": "Acme",
            "phone": "+442079460958",
            "address": "1 Main St",
            "describe": "We sell <things> & more",
            "email": "billing@acme.example",
        }

    def test_a_customer_is_forbidden_after_the_body_is_read(self, api):
        token, _ = account(api)
        assert patch(api, COMPANY, token, {"name": "x" * 500}).status_code == 403
        bad_json = api.client.patch(
            COMPANY, data="{", content_type="application/json", headers=bearer(token)
        )
        assert bad_json.status_code == 400 and error_of(bad_json)["code"] == "INVALID_JSON"
        assert error_of(patch(api, COMPANY, token, {"name": "x"}))["code"] == "FORBIDDEN"

    @pytest.mark.parametrize(
        ("field", "sent"),
        [
            ("name", "n" * 201),
            ("address", "a" * 501),
            ("describe", "d" * 2001),
            ("email", "nope"),
            ("phone", "12"),
            ("id", "x"),
            ("name", None),
        ],
    )
    def test_rules(self, api, field, sent):
        token, _ = account(api, "admin")
        response = patch(api, COMPANY, token, {field: sent})
        assert response.status_code == 400 and list(error_of(response)["fields"]) == [field]

    def test_an_empty_object_is_refused(self, api):
        token, _ = account(api, "admin")
        assert patch(api, COMPANY, token, {}).status_code == 400


class TestEmailChange:
    def request(self, api, token, new_email, password=PASSWORD):
        return api.client.post(
            CHANGE, json={"new_email": new_email, "password": password}, headers=bearer(token)
        )

    def test_confirmed_by_the_new_address(self, api, mail_app, smtp_server):
        token, user = account(api)
        deliver(mail_app)
        old_verify_link = link_token(smtp_server.messages[0][2])
        new_email = fresh_email("moved")
        response = self.request(api, token, new_email.upper())
        assert response.status_code == 202
        assert api.me(token).get_json()["data"]["user"]["email"] == user["email"]  # not yet
        deliver(mail_app)
        ((sender, recipients, confirm),) = smtp_server.messages[1:]
        assert recipients == [new_email] and confirm["X-Lumyri-Mail"] == "confirm_email_change"
        confirmed = api.client.post(CONFIRM, json={"token": link_token(confirm)})
        assert confirmed.status_code == 200
        data = confirmed.get_json()["data"]
        assert data["user"]["email"] == new_email and data["email_verified"] is True
        again = api.client.post(CONFIRM, json={"token": link_token(confirm)})
        assert again.status_code == 400 and error_of(again)["code"] == "INVALID_LINK"
        stale = api.client.post("/api/v1/auth/email/verify", json={"token": old_verify_link})
        assert error_of(stale)["code"] == "INVALID_LINK"  # the old address's links are dead
        assert api.login(new_email).status_code == 200
        assert api.login(user["email"]).status_code == 401
        deliver(mail_app)
        notice = smtp_server.messages[-1]
        assert notice[1] == [user["email"]] and notice[2]["X-Lumyri-Mail"] == "email_changed"

    def test_refusals(self, api):
        token, user = account(api)
        _, other = account(api)
        own = self.request(api, token, user["email"].upper())
        assert own.status_code == 400 and "new_email" in error_of(own)["fields"]
        assert self.request(api, token, "nope").status_code == 400
        wrong = self.request(api, token, fresh_email(), password="Wrong@12345")
        assert wrong.status_code == 403 and error_of(wrong)["code"] == "WRONG_PASSWORD"
        taken = self.request(api, token, other["email"])
        assert taken.status_code == 409 and error_of(taken)["code"] == "EMAIL_TAKEN"

    def test_a_sign_up_of_the_address_meanwhile_wins(self, api, mail_app, smtp_server):
        token, _ = account(api)
        new_email = fresh_email("race")
        self.request(api, token, new_email)
        deliver(mail_app)
        confirm = next(m[2] for m in smtp_server.messages if m[1] == [new_email])
        assert api.signup("customer", signup_body(email=new_email)).status_code == 201
        response = api.client.post(CONFIRM, json={"token": link_token(confirm)})
        assert response.status_code == 409 and error_of(response)["code"] == "EMAIL_TAKEN"

    def test_limited_like_the_verification_mail(self, app, database_url):
        limited = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database_url,
                "RATELIMIT_ENABLED": True,
                "RATELIMIT_KEY_PREFIX": fresh_email(),
            }
        )
        api = Api(limited.test_client())
        token, _ = account(api)
        statuses = [self.request(api, token, fresh_email()).status_code for _ in range(4)]
        assert statuses == [202, 202, 202, 429]
        with limited.app_context():
            db.engine.dispose()


def personal_data_left(app, user, company_id):
    """Every row of every table that still names the account or holds its data."""
    found = []
    with app.app_context():
        checks = [
            sa.select(User).where(sa.or_(User.id == user["id"], User.email == user["email"])),
            sa.select(SigningCredential).where(SigningCredential.user_id == user["id"]),
            sa.select(IdempotencyKey).where(IdempotencyKey.user_id == user["id"]),
            sa.select(OutboxMail).where(
                sa.or_(OutboxMail.user_id == user["id"], OutboxMail.to_address == user["email"])
            ),
            sa.select(AuditEvent).where(
                sa.or_(AuditEvent.email == user["email"], AuditEvent.client_ip != "")
                & (AuditEvent.user_id == user["id"])
            ),
            sa.select(AuditEvent).where(AuditEvent.email == user["email"]),
        ]
        if company_id:
            checks.append(sa.select(Company).where(Company.id == company_id))
        for query in checks:
            found.extend(db.session.scalars(query).all())
        db.session.commit()
    return found


class TestDeletion:
    def delete(self, api, token, password=PASSWORD):
        return api.client.post(DELETE, json={"password": password}, headers=bearer(token))

    @pytest.mark.parametrize("kind", ["admin", "customer"])
    def test_nothing_personal_is_left(self, api, mail_app, smtp_server, kind):
        email = fresh_email("gone")
        response = api.signup(kind, signup_body(email=email), headers={"Idempotency-Key": "k1"})
        token, user = (
            response.get_json()["data"]["access_token"],
            response.get_json()["data"]["user"],
        )
        api.login(email)
        api.login(email, "Wrong@12345")
        patch(api, ME, token, {"city": "Oslo", "phone": "+47 412 34 567"})
        deliver(mail_app)
        verify_link = link_token(smtp_server.messages[0][2])
        assert self.delete(api, token).status_code == 204
        deliver(mail_app)  # the farewell mail goes, and with it the last copy of the address
        assert smtp_server.messages[-1][2]["X-Lumyri-Mail"] == "account_deleted"
        assert smtp_server.messages[-1][1] == [email]
        assert personal_data_left(mail_app, user, user["company"]["id"]) == []
        with mail_app.app_context():
            kept = db.session.scalars(
                sa.select(AuditEvent).where(AuditEvent.event == "account_deleted")
            ).all()
            assert [(e.user_id, e.email, e.client_ip) for e in kept] == [(user["id"], "", "")]
        assert api.me(token).status_code == 401
        assert api.client.get(VERIFY, headers=bearer(token)).status_code == 401
        again = api.signup("customer", signup_body(email=email))
        assert again.status_code == 201  # the address is free
        dead = api.client.post("/api/v1/auth/email/verify", json={"token": verify_link})
        assert error_of(dead)["code"] == "INVALID_LINK"  # bound to the deleted account

    def test_the_company_stays_while_another_member_has_it(self, api, mail_app):
        token, admin = account(api, "admin")
        _, other = account(api)
        with mail_app.app_context():
            db.session.execute(
                sa.update(User)
                .where(User.id == other["id"])
                .values(company_id=admin["company"]["id"], role_id=ADMIN_ROLE_ID)
            )
            db.session.commit()
        assert self.delete(api, token).status_code == 204
        with mail_app.app_context():
            assert db.session.get(Company, admin["company"]["id"]) is not None

    def test_a_wrong_password_deletes_nothing(self, api):
        token, _ = account(api)
        response = self.delete(api, token, "Wrong@12345")
        assert response.status_code == 403 and error_of(response)["code"] == "WRONG_PASSWORD"
        assert api.me(token).status_code == 200

    def test_a_missing_password_is_a_validation_error(self, api):
        token, _ = account(api)
        response = api.client.post(DELETE, json={}, headers=bearer(token))
        assert response.status_code == 400 and "password" in error_of(response)["fields"]

    def test_racing_a_log_in(self, api, mail_app, smtp_server):
        token, user = account(api)
        results = {}

        def log_in():
            results["login"] = Api(mail_app.test_client()).login(user["email"]).status_code

        def delete():
            results["delete"] = self.delete(Api(mail_app.test_client()), token).status_code

        threads = [threading.Thread(target=log_in), threading.Thread(target=delete)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results["delete"] == 204 and results["login"] in (200, 401)
        deliver(mail_app)  # the farewell mail holds the address until it is sent
        left = personal_data_left(mail_app, user, None)
        # A log-in that came after the deletion is a log-in with an unknown address,
        # recorded as any other (without the deleted account's id).
        left = [r for r in left if not (isinstance(r, AuditEvent) and r.user_id is None)]
        assert left == [], [(type(r).__name__, getattr(r, "event", ""), r.id) for r in left]
        assert api.login(user["email"]).status_code == 401


def test_a_deletion_during_a_password_reset_leaves_nothing(api, mail_app, smtp_server, monkeypatch):
    """The reset checked its link, then the account was deleted while the new hash was
    being made: the reset writes nothing and answers INVALID_LINK, not a 500."""
    from app import passwords

    token, user = account(api)
    api.client.post("/api/v1/auth/password/forgot", json={"email": user["email"]})
    deliver(mail_app)
    reset_link = link_token(smtp_server.messages[-1][2])
    real_hash = passwords.hash_password

    def hash_while_deleted(password):
        statuses = []  # the deletion is another request, in a thread (and session) of its own

        def delete():
            client = mail_app.test_client()
            statuses.append(
                client.post(DELETE, json={"password": PASSWORD}, headers=bearer(token)).status_code
            )

        monkeypatch.setattr(passwords, "hash_password", real_hash)
        worker = threading.Thread(target=delete)
        worker.start()
        worker.join()
        assert statuses == [204]
        return real_hash(password)

    monkeypatch.setattr(passwords, "hash_password", hash_while_deleted)
    response = api.client.post(
        "/api/v1/auth/password/reset", json={"token": reset_link, "password": "Racing@Pass1"}
    )
    assert response.status_code == 400 and error_of(response)["code"] == "INVALID_LINK"
    deliver(mail_app)
    assert personal_data_left(mail_app, user, None) == []


def test_a_profile_change_of_a_deleted_account_is_refused(api, mail_app, monkeypatch):
    from app import repository

    token, user = account(api)
    real_update = repository.update_profile

    def deleted_meanwhile(*, user, changes, context):
        with mail_app.app_context():
            db.session.execute(
                sa.delete(SigningCredential).where(SigningCredential.user_id == user.id)
            )
            db.session.execute(sa.delete(OutboxMail))
            db.session.execute(sa.delete(User).where(User.id == user.id))
            db.session.commit()
        return real_update(user=user, changes=changes, context=context)

    monkeypatch.setattr(repository, "update_profile", deleted_meanwhile)
    response = patch(api, ME, token, {"city": "Rome"})
    assert response.status_code == 401 and error_of(response)["code"] == "INVALID_TOKEN"
