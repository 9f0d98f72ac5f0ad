"""Mail: the outbox, the sender against a real SMTP server (aiosmtpd), the content, and
the endpoints that send: verification, forgotten password, reset and change."""

import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app import links
from app.extensions import db
from app.mail import EXTENSION_KEY
from app.models import AuditEvent, OutboxMail, utc_now
from tests.helpers import (
    PASSWORD,
    Api,
    bearer,
    deliver,
    error_of,
    fresh_email,
    link_token,
    metric_sample,
    signup_body,
)

VERIFY_EMAIL = "/api/v1/auth/email/verify"
VERIFICATION = "/api/v1/auth/email/verification"
FORGOT = "/api/v1/auth/password/forgot"
RESET = "/api/v1/auth/password/reset"
CHANGE = "/api/v1/auth/password/change"
NEW_PASSWORD = "Another@Pass9"
# RFC 5322: UTC is +0000; -0000 says the zone is unknown.
RFC5322_DATE_IN_UTC = re.compile(
    r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000"
)


@pytest.fixture
def client(mail_app):
    """Its test client (so `api` uses it too)."""
    return mail_app.test_client()


def outbox(app):
    """The outbox rows, oldest first."""
    with app.app_context():
        rows = db.session.scalars(sa.select(OutboxMail).order_by(OutboxMail.id)).all()
        db.session.commit()
        return rows


def make_due(app):
    """Every pending mail is due now (instead of waiting out its backoff)."""
    with app.app_context():
        db.session.execute(sa.update(OutboxMail).values(next_attempt_at=utc_now()))
        db.session.commit()


def text_of(message):
    """The text/plain part."""
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message):
    """The text/html part."""
    return message.get_body(preferencelist=("html",)).get_content()


def sign_up(api, kind="customer", **changes):
    """A new account: (token, user)."""
    response = api.signup(kind, signup_body(**changes))
    assert response.status_code == 201, response.get_json()
    data = response.get_json()["data"]
    return data["access_token"], data["user"]


class TestDelivery:
    def test_a_sign_up_sends_a_verification_mail(self, mail_app, api, smtp_server):
        _, user = sign_up(api, first_name="Ada")
        (row,) = outbox(mail_app)
        assert (row.kind, row.to_address, row.user_id) == (
            "verify_email",
            user["email"],
            user["id"],
        )
        assert deliver(mail_app) == 1
        ((sender, recipients, message),) = smtp_server.messages
        assert sender == "no-reply@localhost" and recipients == [user["email"]]
        assert message.get_content_type() == "multipart/alternative"
        for header in ("To", "From", "Subject", "Date", "Message-ID"):
            assert message[header], header
        assert RFC5322_DATE_IN_UTC.fullmatch(message["Date"]), message["Date"]
        assert message["X-Lumyri-Mail"] == "verify_email"
        assert message["To"] == user["email"]
        text = text_of(message)
        assert text.startswith("Hello Ada,")
        assert text.count("http://localhost:3000/verify-email?token=") == 1
        assert 'href="http://localhost:3000/verify-email?token=' in html_of(message)
        assert outbox(mail_app) == []  # sent: the row (and its address) is gone

    def test_names_are_escaped_in_html_only(self, mail_app, api, smtp_server):
        sign_up(api, first_name="<b>Bob</b> & Co")
        deliver(mail_app)
        ((_, _, message),) = smtp_server.messages
        assert "Hello <b>Bob</b> & Co," in text_of(message)
        html = html_of(message)
        assert "&lt;b&gt;Bob&lt;/b&gt; &amp; Co" in html and "<b>Bob</b>" not in html

    @pytest.mark.parametrize(
        ("accept", "language"),
        [
            ("fr-CA, en;q=0.5", "fr"),
            ("de, fr;q=0.8, en;q=0.5", "fr"),
            ("de", "en"),
            ("en;q=0.4, fr;q=0.9", "fr"),
            ("fr;q=0, de", "en"),
            ("", "en"),
        ],
    )
    def test_the_language_follows_accept_language(
        self, mail_app, api, smtp_server, accept, language
    ):
        headers = {"Accept-Language": accept} if accept else {}
        api.signup("customer", signup_body(), headers=headers)
        deliver(mail_app)
        ((_, _, message),) = smtp_server.messages
        subjects = {"fr": "Confirmez votre adresse e-mail", "en": "Verify your e-mail address"}
        assert message["Subject"] == subjects[language]

    def test_smtp_down_at_request_time_then_back(self, mail_app, api, smtp_server):
        smtp_server.stop()
        started = time.monotonic()
        sign_up(api)
        assert time.monotonic() - started < 2  # the request never waits for SMTP
        deliver(mail_app)
        (row,) = outbox(mail_app)
        assert row.status == "pending" and row.attempts == 1
        assert row.next_attempt_at.replace(tzinfo=None) > utc_now().replace(tzinfo=None)
        assert "unreachable" in row.last_error
        smtp_server.start()
        assert deliver(mail_app) == 0  # not due yet: the backoff holds
        make_due(mail_app)
        deliver(mail_app)
        assert len(smtp_server.messages) == 1 and outbox(mail_app) == []
        deliver(mail_app)
        assert len(smtp_server.messages) == 1  # once

    def test_a_temporary_refusal_is_retried_once_accepted(self, mail_app, api, smtp_server):
        smtp_server.refuse_next("451 4.3.0 Try again later")
        sign_up(api)
        deliver(mail_app)
        assert smtp_server.messages == [] and outbox(mail_app)[0].status == "pending"
        make_due(mail_app)
        deliver(mail_app)
        assert len(smtp_server.messages) == 1 and outbox(mail_app) == []

    def test_a_permanent_refusal_fails_without_retry(self, mail_app, api, smtp_server):
        smtp_server.refuse_next("550 5.1.1 No such mailbox")
        sign_up(api)
        sign_up(api)
        deliver(mail_app)
        (failed,) = outbox(mail_app)
        assert failed.status == "failed" and "550" in failed.last_error
        assert len(smtp_server.messages) == 1  # the other mail went out
        make_due(mail_app)
        assert deliver(mail_app) == 0  # a failed mail is not tried again

    def test_given_up_after_the_retry_window(self, make_app, api, smtp_server):
        app = make_app(SMTP_URL=smtp_server.url, MAIL_RETRY_HOURS=0.5)
        client = app.test_client()
        smtp_server.stop()
        Api(client).signup("customer", signup_body())
        deliver(app)
        assert outbox(app)[0].status == "pending"
        with app.app_context():
            earlier = utc_now() - timedelta(hours=1)
            db.session.execute(sa.update(OutboxMail).values(created_at=earlier))
            db.session.commit()
        make_due(app)
        deliver(app)
        assert outbox(app)[0].status == "failed"

    def test_pending_mails_are_sent_after_a_restart(self, make_app, smtp_server):
        first = make_app(SMTP_URL="smtp://127.0.0.1:9")  # down when the mails were written
        for _ in range(3):
            Api(first.test_client()).signup("customer", signup_body())
        restarted = make_app(SMTP_URL=smtp_server.url)
        deliver(restarted)
        assert len(smtp_server.messages) == 3
        deliver(restarted)
        assert len(smtp_server.messages) == 3

    def test_the_sender_thread_delivers_within_seconds(self, make_app, smtp_server):
        app = make_app(SMTP_URL=smtp_server.url, MAIL_POLL_SECONDS=0.2)
        app.extensions[EXTENSION_KEY].start()
        Api(app.test_client()).signup("customer", signup_body())
        assert len(smtp_server.wait_for(1, seconds=5)) == 1

    def test_under_load_the_sender_gathers_a_batch_and_otherwise_sends_at_once(
        self, make_app, smtp_server, monkeypatch
    ):
        from app.mail import delivery as mail_sender

        # A window wide enough for three sign-ups on a slow, shared CI machine (0.2 s
        # is not: a sign-up on Postgres there can take longer than that).
        monkeypatch.setattr(mail_sender, "GATHER_SECONDS", 2.0)
        app = make_app(SMTP_URL=smtp_server.url, MAIL_POLL_SECONDS=30)
        sender = app.extensions[EXTENSION_KEY]
        sender.start()
        try:
            client = Api(app.test_client())
            client.signup("customer", signup_body())  # one mail: no gathering
            assert not sender._under_load()
            assert len(smtp_server.wait_for(1, seconds=5)) == 1  # at once, not after the poll
            for _ in range(mail_sender.GATHER_WAKES):  # mails in quick succession: under load
                client.signup("customer", signup_body())
            assert sender._under_load()
            assert len(smtp_server.wait_for(1 + mail_sender.GATHER_WAKES, seconds=10)) == 4
        finally:
            sender.stop()

    def test_a_refused_change_sends_nothing(self, mail_app, api, smtp_server):
        token, user = sign_up(api)
        deliver(mail_app)
        assert api.signup("admin", signup_body(email=user["email"])).status_code == 409
        wrong = {"current_password": "Wrong@12345", "new_password": NEW_PASSWORD}
        assert api.client.post(CHANGE, json=wrong, headers=bearer(token)).status_code == 403
        assert outbox(mail_app) == []

    def test_a_rolled_back_change_sends_nothing(self, mail_app, api, monkeypatch):
        from app import repository

        def failing(*_args, **_kwargs):
            raise RuntimeError("the audit write failed")

        monkeypatch.setattr(repository.accounts, "write_event", failing)
        response = api.signup("customer", signup_body())
        assert response.status_code == 500
        assert outbox(mail_app) == []

    def test_without_smtp_development_writes_eml_files(
        self, make_app, tmp_path, monkeypatch, caplog
    ):
        monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
        app = make_app()  # testing allows files, as development does
        assert app.instance_path == str(tmp_path)
        Api(app.test_client()).signup("customer", signup_body(first_name="Eve"))
        with caplog.at_level("INFO", logger="app.mail"):
            deliver(app)
        (written,) = (tmp_path / "mail").iterdir()
        assert written.suffix == ".eml" and b"Hello Eve," in written.read_bytes()
        assert str(written) in caplog.text and "token=" not in caplog.text


def mails_counted(client, kind, outcome):
    """lumyri_mails_total for a kind and outcome."""
    return metric_sample(client, "lumyri_mails_total", kind=kind, outcome=outcome)


def pending_gauge(client):
    """lumyri_mail_outbox_pending."""
    return metric_sample(client, "lumyri_mail_outbox_pending", absent=None)


def test_mail_metrics(mail_app, api, smtp_server):
    client = api.client
    sent = mails_counted(client, "verify_email", "sent")
    retried = mails_counted(client, "verify_email", "retried")
    sign_up(api)
    assert pending_gauge(client) == 1
    smtp_server.refuse_next("451 later")
    deliver(mail_app)
    make_due(mail_app)
    deliver(mail_app)
    assert mails_counted(client, "verify_email", "retried") == retried + 1
    assert mails_counted(client, "verify_email", "sent") == sent + 1
    assert pending_gauge(client) == 0


class TestVerification:
    def test_the_link_verifies_the_address(self, mail_app, api, smtp_server):
        token, _ = sign_up(api)
        me = api.me(token).get_json()["data"]
        assert me["email_verified"] is False
        deliver(mail_app)
        link = link_token(smtp_server.messages[0][2])
        response = api.client.post(VERIFY_EMAIL, json={"token": link})
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert response.get_json()["data"]["email_verified"] is True
        assert response.get_json()["data"]["user"] == me["user"]
        assert api.me(token).get_json()["data"]["email_verified"] is True
        again = api.client.post(VERIFY_EMAIL, json={"token": link})
        assert again.status_code == 200  # again, while it is still the address
        with mail_app.app_context():
            events = db.session.scalars(
                sa.select(AuditEvent.event).where(AuditEvent.event == "email_verified")
            ).all()
        assert events == ["email_verified"]

    @pytest.mark.parametrize(
        "body", [{}, {"token": None}, {"token": ""}, {"token": 7}, {"token": ["x"]}]
    )
    def test_a_missing_token_is_a_validation_error(self, client, body):
        response = client.post(VERIFY_EMAIL, json=body)
        assert response.status_code == 400
        error = error_of(response)
        assert error["code"] == "VALIDATION_ERROR" and "token" in error["fields"]

    @pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 300])
    def test_a_bad_token_is_an_invalid_link(self, client, token):
        response = client.post(VERIFY_EMAIL, json={"token": token})
        assert response.status_code == 400 and error_of(response)["code"] == "INVALID_LINK"

    def test_a_link_of_another_purpose_is_an_invalid_link(self, mail_app, api, smtp_server):
        sign_up(api)
        deliver(mail_app)
        user_email = smtp_server.messages[0][1][0]
        api.client.post(FORGOT, json={"email": user_email})
        deliver(mail_app)
        reset_token = link_token(smtp_server.messages[1][2])
        response = api.client.post(VERIFY_EMAIL, json={"token": reset_token})
        assert response.status_code == 400 and error_of(response)["code"] == "INVALID_LINK"

    def test_an_expired_link_is_an_invalid_link(self, mail_app, api, monkeypatch):
        _, user = sign_up(api)
        with mail_app.app_context():
            bound = links.binding(links.VERIFY_EMAIL, user["id"], user["email"])
            real_time = time.time
            monkeypatch.setattr(time, "time", lambda: real_time() - 259200 - 60)
            old = links.make_token(links.VERIFY_EMAIL, user["id"], bound)
            monkeypatch.setattr(time, "time", real_time)
        response = api.client.post(VERIFY_EMAIL, json={"token": old})
        assert response.status_code == 400 and error_of(response)["code"] == "INVALID_LINK"

    def test_a_new_mail_on_request(self, mail_app, api, smtp_server):
        token, user = sign_up(api)
        response = api.client.post(VERIFICATION, headers=bearer(token), json={"ignored": 1})
        assert response.status_code == 202 and response.get_json() == {"error": None, "data": None}
        deliver(mail_app)
        assert [m[2]["X-Lumyri-Mail"] for m in smtp_server.messages] == ["verify_email"] * 2
        first, second = (link_token(m[2]) for m in smtp_server.messages)
        assert api.client.post(VERIFY_EMAIL, json={"token": first}).status_code == 200
        assert api.client.post(VERIFY_EMAIL, json={"token": second}).status_code == 200
        refused = api.client.post(VERIFICATION, headers=bearer(token))
        assert refused.status_code == 409
        assert error_of(refused)["code"] == "EMAIL_ALREADY_VERIFIED"

    def test_new_mails_are_limited_per_account(self, make_app, smtp_server):
        app = make_app(
            SMTP_URL=smtp_server.url, RATELIMIT_ENABLED=True, RATELIMIT_KEY_PREFIX=fresh_email()
        )
        api = Api(app.test_client())
        token, _ = sign_up(api)
        statuses = [
            api.client.post(VERIFICATION, headers=bearer(token)).status_code for _ in range(4)
        ]
        assert statuses == [202, 202, 202, 429]
        deliver(app)  # the sign-up's and two new ones: the address's count is spent
        assert len(smtp_server.messages) == 3

    def test_needs_a_token(self, client):
        response = client.post(VERIFICATION)
        assert response.status_code == 401 and error_of(response)["code"] == "INVALID_TOKEN"


class TestForgotAndReset:
    def forgot(self, api, email, **kwargs):
        return api.client.post(FORGOT, json={"email": email}, **kwargs)

    def test_known_and_unknown_addresses_get_the_same_answer(self, mail_app, api, smtp_server):
        _, user = sign_up(api)
        deliver(mail_app)
        known = self.forgot(api, user["email"].upper())
        unknown = self.forgot(api, fresh_email("nobody"))
        assert known.status_code == unknown.status_code == 202
        assert known.get_json() == unknown.get_json() == {"error": None, "data": None}
        deliver(mail_app)
        kinds = [(m[1], m[2]["X-Lumyri-Mail"]) for m in smtp_server.messages]
        assert kinds == [([user["email"]], "verify_email"), ([user["email"]], "reset_password")]
        with mail_app.app_context():
            events = db.session.scalars(
                sa.select(AuditEvent.event).where(AuditEvent.event == "password_reset_requested")
            ).all()
        assert len(events) == 2

    def test_a_bad_address_is_a_validation_error(self, client):
        response = client.post(FORGOT, json={"email": "not-an-address"})
        assert response.status_code == 400 and "email" in error_of(response)["fields"]

    def test_reset_with_the_link(self, mail_app, api, smtp_server):
        token, user = sign_up(api)
        login_token = api.login(user["email"]).get_json()["data"]["access_token"]
        self.forgot(api, user["email"])
        self.forgot(api, user["email"])  # a second link does not kill the first
        deliver(mail_app)
        first, second = (link_token(m[2]) for m in smtp_server.messages[1:])
        response = api.client.post(RESET, json={"token": first, "password": NEW_PASSWORD})
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        data = response.get_json()["data"]
        assert data["user"]["id"] == user["id"]
        assert api.me(data["access_token"]).get_json()["data"]["email_verified"] is True
        for earlier in (token, login_token):
            assert api.me(earlier).status_code == 401  # revoked
        assert api.login(user["email"], NEW_PASSWORD).status_code == 200
        assert api.login(user["email"], PASSWORD).status_code == 401
        for used in (first, second):  # after a change of the password: every earlier link
            again = api.client.post(RESET, json={"token": used, "password": "Third@Pass99"})
            assert again.status_code == 400 and error_of(again)["code"] == "INVALID_LINK"
        deliver(mail_app)
        assert smtp_server.messages[-1][2]["X-Lumyri-Mail"] == "password_changed"

    def test_a_weak_new_password_is_a_validation_error(self, mail_app, api, smtp_server):
        _, user = sign_up(api)
        self.forgot(api, user["email"])
        deliver(mail_app)
        link = link_token(smtp_server.messages[1][2])
        response = api.client.post(RESET, json={"token": link, "password": "weak"})
        assert response.status_code == 400
        assert set(error_of(response)["fields"]) == {"password"}
        # still good: nothing was changed
        ok = api.client.post(RESET, json={"token": link, "password": NEW_PASSWORD})
        assert ok.status_code == 200

    def test_a_missing_token_and_password_are_reported_together(self, client):
        response = client.post(RESET, json={"password": "x"})
        assert set(error_of(response)["fields"]) == {"token", "password"}

    def test_per_address_limit_suppresses_silently(self, make_app, smtp_server):
        app = make_app(
            SMTP_URL=smtp_server.url, RATELIMIT_ENABLED=True, RATELIMIT_KEY_PREFIX=fresh_email()
        )
        api = Api(app.test_client())
        _, user = sign_up(api)  # its verification mail spends the same count
        statuses = [self.forgot(api, user["email"]).status_code for _ in range(5)]
        assert statuses == [202] * 5
        deliver(app)
        resets = [m for m in smtp_server.messages if m[2]["X-Lumyri-Mail"] == "reset_password"]
        assert len(resets) == 2 and len(smtp_server.messages) == 3
        assert mails_counted(api.client, "reset_password", "suppressed") >= 3

    def test_per_ip_limit_is_a_429(self, make_app):
        app = make_app(
            RATELIMIT_ENABLED=True,
            RATELIMIT_PASSWORD_FORGOT="2/minute",
            RATELIMIT_KEY_PREFIX=fresh_email(),
        )
        api = Api(app.test_client())
        statuses = [self.forgot(api, fresh_email()).status_code for _ in range(3)]
        assert statuses == [202, 202, 429]


class TestChange:
    def change(self, api, token, current=PASSWORD, new=NEW_PASSWORD):
        body = {"current_password": current, "new_password": new}
        return api.client.post(CHANGE, json=body, headers=bearer(token))

    def test_a_change_revokes_every_other_token(self, mail_app, api, smtp_server):
        token, user = sign_up(api)
        other = api.login(user["email"]).get_json()["data"]["access_token"]
        response = self.change(api, token)
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
        fresh = response.get_json()["data"]["access_token"]
        assert api.me(fresh).status_code == 200
        assert api.me(token).status_code == api.me(other).status_code == 401
        assert api.login(user["email"], NEW_PASSWORD).status_code == 200
        deliver(mail_app)
        assert smtp_server.messages[-1][2]["X-Lumyri-Mail"] == "password_changed"

    def test_a_wrong_current_password_is_403(self, api):
        token, _ = sign_up(api)
        response = self.change(api, token, current="Wrong@12345")
        assert response.status_code == 403 and error_of(response)["code"] == "WRONG_PASSWORD"

    def test_a_weak_new_password_is_reported_under_its_name(self, api):
        token, _ = sign_up(api)
        response = self.change(api, token, current="Wrong@12345", new="short")
        assert response.status_code == 400  # the rules come before the password check
        assert set(error_of(response)["fields"]) == {"new_password"}

    def test_needs_a_token_first(self, client):
        response = client.post(CHANGE, data="not json", content_type="text/plain")
        assert response.status_code == 401

    def test_limited_like_log_in(self, make_app):
        app = make_app(
            RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="2/minute", RATELIMIT_KEY_PREFIX=fresh_email()
        )
        api = Api(app.test_client())
        token, _ = sign_up(api)
        statuses = [self.change(api, token, current="Wrong@12345").status_code for _ in range(3)]
        assert statuses == [403, 403, 429]


def test_the_cli_lists_the_outbox_without_links_and_retries(mail_app, api, smtp_server):
    smtp_server.refuse_next("550 5.1.1 No such mailbox")
    _, user = sign_up(api)
    deliver(mail_app)
    sign_up(api)
    runner = mail_app.test_cli_runner()
    listed = runner.invoke(args=["accounts", "mail"])
    assert listed.exit_code == 0
    lines = listed.output.strip().splitlines()
    assert len(lines) == 2 and "failed" in lines[0] and "pending" in lines[1]
    assert user["email"] in lines[0] and "token" not in listed.output
    failed_id = lines[0].split("\t")[0]
    retried = runner.invoke(args=["accounts", "mail", "--retry", failed_id])
    assert retried.exit_code == 0
    deliver(mail_app)
    assert outbox(mail_app) == [] and len(smtp_server.messages) == 2
    assert runner.invoke(args=["accounts", "mail", "--retry", failed_id]).exit_code != 0


def test_a_refused_session_is_retried_not_failed(make_app, api):
    """A server that refuses the session (a 554 greeting, or our login) is about the
    server or our settings, not the mail: it stays pending for the next try."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]

    def refuse():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.sendall(b"554 5.3.2 go away\r\n")
            connection.close()

    threading.Thread(target=refuse, daemon=True).start()
    try:
        app = make_app(SMTP_URL=f"smtp://127.0.0.1:{port}")
        Api(app.test_client()).signup("customer", signup_body())
        deliver(app)
        (row,) = outbox(app)
        assert row.status == "pending" and "554" in row.last_error
    finally:
        listener.close()


class TestInternationalAddresses:
    """A server without SMTPUTF8 gets the domain as its IDNA A-label; a local part that
    is not ASCII cannot go to it; a server with SMTPUTF8 gets the address as it is."""

    @pytest.fixture
    def utf8_server(self):
        """An SMTP server that announces SMTPUTF8."""
        from tests.smtp_server import SmtpServer

        server = SmtpServer(smtputf8=True)
        server.start()
        yield server
        server.stop()

    @pytest.mark.parametrize("typed", ["x@bücher.de", "x@xn--bcher-kva.de"])
    def test_without_smtputf8_the_domain_goes_as_its_a_label(
        self, mail_app, api, smtp_server, typed
    ):
        assert not smtp_server.smtputf8
        _, user = sign_up(api, email=typed)
        assert user["email"] == "x@bücher.de"  # stored as the U-label
        deliver(mail_app)
        ((_, recipients, message),) = smtp_server.messages
        assert recipients == ["x@xn--bcher-kva.de"] and message["To"] == "x@xn--bcher-kva.de"
        assert smtp_server.smtputf8_options == [False]
        assert outbox(mail_app) == []

    def test_without_smtputf8_a_local_part_not_ascii_fails_at_once(
        self, mail_app, api, smtp_server
    ):
        failed = mails_counted(api.client, "verify_email", "failed")
        retried = mails_counted(api.client, "verify_email", "retried")
        sign_up(api, email="ü@example.org")
        _, other = sign_up(api)
        deliver(mail_app)
        (row,) = outbox(mail_app)
        assert (row.to_address, row.status, row.attempts) == ("ü@example.org", "failed", 1)
        assert "SMTPUTF8" in row.last_error
        assert [m[1] for m in smtp_server.messages] == [[other["email"]]]  # the batch goes on
        assert mails_counted(api.client, "verify_email", "failed") == failed + 1
        assert mails_counted(api.client, "verify_email", "retried") == retried
        make_due(mail_app)
        assert deliver(mail_app) == 0  # not tried again

    @pytest.mark.parametrize("address", ["x@bücher.de", "ü@example.org", "ü@bücher.de"])
    def test_with_smtputf8_the_address_goes_as_it_is(self, make_app, utf8_server, address):
        app = make_app(SMTP_URL=utf8_server.url)
        sign_up(Api(app.test_client()), email=address)
        deliver(app)
        ((_, recipients, message),) = utf8_server.messages
        assert recipients == [address] and message["To"] == address
        assert utf8_server.smtputf8_options == [True]
        assert outbox(app) == []


DELETE = "/api/v1/auth/me/delete"
EMAIL_CHANGE = "/api/v1/auth/email/change"


def change_password_again_and_again(api, token, times):
    """Change the account's password `times` times, each with the token the last gave."""
    password = PASSWORD
    for round_ in range(times):
        new = f"{PASSWORD}{round_}"
        response = api.client.post(
            "/api/v1/auth/password/change",
            json={"current_password": password, "new_password": new},
            headers=bearer(token),
        )
        assert response.status_code == 200
        token, password = response.get_json()["data"]["access_token"], new


class TestPerAddressCount:
    """RATELIMIT_MAIL_PER_ADDRESS (3/hour) covers every mail to an address that is not
    verified; a verified address's notices always go."""

    @pytest.fixture
    def limited_app(self, make_app, smtp_server):
        """Limits on (their own keys); only the per-address mail count is tight."""
        return make_app(
            SMTP_URL=smtp_server.url,
            RATELIMIT_ENABLED=True,
            RATELIMIT_KEY_PREFIX=fresh_email(),
            RATELIMIT_SIGNUP="1000/minute",
            RATELIMIT_LOGIN="1000/minute",
            RATELIMIT_LOGIN_PER_IP="1000/minute",
        )

    def delete(self, api, token):
        return api.client.post(DELETE, json={"password": PASSWORD}, headers=bearer(token))

    def test_signing_up_and_deleting_again_and_again_cannot_flood_the_address(
        self, limited_app, smtp_server
    ):
        api = Api(limited_app.test_client())
        address = fresh_email("victim")
        suppressed = {
            kind: mails_counted(api.client, kind, "suppressed")
            for kind in ("verify_email", "account_deleted")
        }
        statuses = []
        for _ in range(6):
            body = signup_body(email=address, first_name="Buy cheap pills at spam.example")
            created = api.signup("customer", body)
            deliver(limited_app)  # the sender runs meanwhile, as it would
            token = created.get_json()["data"]["access_token"]
            statuses.append((created.status_code, self.delete(api, token).status_code))
            deliver(limited_app)
        assert statuses == [(201, 204)] * 6
        kinds = [m[2]["X-Lumyri-Mail"] for m in smtp_server.messages]
        assert kinds == ["verify_email", "account_deleted", "verify_email"]
        assert all(m[1] == [address] for m in smtp_server.messages)
        assert outbox(limited_app) == []
        assert mails_counted(api.client, "verify_email", "suppressed") == (
            suppressed["verify_email"] + 4
        )
        assert mails_counted(api.client, "account_deleted", "suppressed") == (
            suppressed["account_deleted"] + 5
        )

    def test_without_limits_nothing_is_suppressed(self, make_app, smtp_server):
        app = make_app(SMTP_URL=smtp_server.url, RATELIMIT_ENABLED=False)
        api = Api(app.test_client())
        address = fresh_email("victim")
        for _ in range(3):
            token, _ = sign_up(api, email=address)
            deliver(app)
            assert self.delete(api, token).status_code == 204
            deliver(app)
        assert len(smtp_server.messages) == 6

    def test_a_new_address_asked_for_again_and_again_is_not_flooded(self, limited_app, smtp_server):
        api = Api(limited_app.test_client())
        target = fresh_email("victim")
        for _ in range(2):  # two accounts: each may ask for 3 mails an hour
            token, _ = sign_up(api)
            for _ in range(3):
                body = {"new_email": target, "password": PASSWORD}
                response = api.client.post(EMAIL_CHANGE, json=body, headers=bearer(token))
                assert response.status_code == 202
        deliver(limited_app)
        to_target = [m for m in smtp_server.messages if m[1] == [target]]
        assert [m[2]["X-Lumyri-Mail"] for m in to_target] == ["confirm_email_change"] * 3

    def test_notices_to_a_verified_address_go_past_the_count(self, limited_app, smtp_server):
        api = Api(limited_app.test_client())
        token, user = sign_up(api)  # spends 1 of the address's 3
        deliver(limited_app)
        link = link_token(smtp_server.messages[0][2])
        assert api.client.post(VERIFY_EMAIL, json={"token": link}).status_code == 200
        for _ in range(3):  # 2 more spent, the third reset suppressed: the count is spent
            assert api.client.post(FORGOT, json={"email": user["email"]}).status_code == 202
        deliver(limited_app)  # before the deletion, which drops the account's unsent mails
        assert self.delete(api, token).status_code == 204
        deliver(limited_app)
        kinds = [m[2]["X-Lumyri-Mail"] for m in smtp_server.messages]
        assert kinds == ["verify_email", "reset_password", "reset_password", "account_deleted"]

    def test_password_changes_of_an_unverified_account_cannot_flood_the_address(
        self, limited_app, smtp_server
    ):
        api = Api(limited_app.test_client())
        token, user = sign_up(api)  # its verification mail spends 1 of the address's 3
        change_password_again_and_again(api, token, times=4)
        deliver(limited_app)
        kinds = [m[2]["X-Lumyri-Mail"] for m in smtp_server.messages if m[1] == [user["email"]]]
        assert kinds == ["verify_email", "password_changed", "password_changed"]

    def test_a_verified_address_gets_every_password_changed_notice(self, limited_app, smtp_server):
        api = Api(limited_app.test_client())
        token, user = sign_up(api)
        deliver(limited_app)
        link = link_token(smtp_server.messages[0][2])
        assert api.client.post(VERIFY_EMAIL, json={"token": link}).status_code == 200
        change_password_again_and_again(api, token, times=4)
        deliver(limited_app)
        kinds = [m[2]["X-Lumyri-Mail"] for m in smtp_server.messages]
        assert kinds == ["verify_email"] + ["password_changed"] * 4
