"""The mail senders inside real gunicorn workers: every instance runs one per worker,
several share one Postgres and send each mail once, and a stalled SMTP server delays
no request."""

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures import postgres_schema
from tests.gunicorn_rig import run_server
from tests.helpers import (
    SIGNUP_PATHS,
    fresh_email,
    link_token,
    run_example,
    run_example_json,
    signup_body,
)

pytestmark = pytest.mark.e2e


@pytest.mark.postgres
def test_two_instances_on_one_postgres_send_each_mail_once(postgres_server, smtp_server, tmp_path):
    settings = {"SMTP_URL": smtp_server.url, "MAIL_POLL_SECONDS": "0.2", "WEB_CONCURRENCY": "2"}
    with postgres_schema(postgres_server) as url:
        with run_server(url, tmp_path, **settings) as first:
            with run_server(url, tmp_path, migrate_first=False, **settings) as second:
                with ThreadPoolExecutor(max_workers=8) as pool:
                    statuses = list(
                        pool.map(
                            lambda n: (first, second)[n % 2].post_json(
                                SIGNUP_PATHS["customer"], signup_body()
                            )[0],
                            range(30),
                        )
                    )
                assert statuses == [201] * 30
                messages = smtp_server.wait_for(30, seconds=20)
                time.sleep(1.5)  # would a second copy of any of them still come?
                messages = smtp_server.messages
    recipients = sorted(rcpt for _, rcpts, _ in messages for rcpt in rcpts)
    assert len(recipients) == 30 and len(set(recipients)) == 30


class StalledSmtp:
    """A server that accepts connections and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self):
        self.running = False
        self.sock.close()
        for connection in self.held:
            connection.close()


def test_a_stalled_smtp_server_delays_no_request(tmp_path):
    stalled = StalledSmtp()
    settings = {
        "SMTP_URL": f"smtp://127.0.0.1:{stalled.port}",
        "SMTP_TIMEOUT_SECONDS": "30",
        "MAIL_POLL_SECONDS": "0.1",
        "WEB_CONCURRENCY": "1",
    }
    try:
        with run_server(f"sqlite:///{tmp_path / 'stalled.db'}", tmp_path, **settings) as server:
            server.post_json(SIGNUP_PATHS["customer"], signup_body())
            time.sleep(0.5)  # the worker's sender now waits on the silent server
            started = time.monotonic()
            for _ in range(5):
                assert server.post_json(SIGNUP_PATHS["customer"], signup_body())[0] == 201
                assert server.request("GET", "/healthz")[0] == 200
            assert time.monotonic() - started < 5
            assert stalled.held  # the sender did connect, and is still waiting
    finally:
        stalled.close()


def test_the_curl_walk_through_of_the_mails(smtp_server, tmp_path):
    """The README's flow with the examples/ scripts: sign up, verify, forgot, reset, change."""
    settings = {"SMTP_URL": smtp_server.url, "MAIL_POLL_SECONDS": "0.2", "WEB_CONCURRENCY": "1"}
    email = fresh_email("walk-mail")
    with run_server(f"sqlite:///{tmp_path / 'walk.db'}", tmp_path, **settings) as server:
        signed_up = run_example_json(server, "customer-signup.sh", EMAIL=email)["data"]
        (verify_mail,) = [m[2] for m in smtp_server.wait_for(1)]
        verified = run_example_json(server, "verify-email.sh", link_token(verify_mail))
        assert verified["data"]["email_verified"] is True
        again = run_example_json(server, "resend-verification.sh", signed_up["access_token"])
        assert again["error"]["code"] == "EMAIL_ALREADY_VERIFIED"
        assert run_example_json(server, "forgot-password.sh", EMAIL=email) == {
            "error": None,
            "data": None,
        }
        reset_mail = smtp_server.wait_for(2)[1][2]
        reset = run_example_json(
            server, "reset-password.sh", link_token(reset_mail), PASSWORD="Reset@Pass123"
        )
        changed = run_example_json(
            server,
            "change-password.sh",
            reset["data"]["access_token"],
            CURRENT="Reset@Pass123",
            NEW="Changed@Pass123",
        )
        assert changed["data"]["user"]["id"] == signed_up["user"]["id"]
        kinds = [m[2]["X-Lumyri-Mail"] for m in smtp_server.wait_for(4)]
        assert kinds == ["verify_email", "reset_password", "password_changed", "password_changed"]


def test_the_curl_walk_through_of_self_service(smtp_server, tmp_path):
    """examples/ for the profile, the company, the e-mail change and the deletion."""
    settings = {"SMTP_URL": smtp_server.url, "MAIL_POLL_SECONDS": "0.2", "WEB_CONCURRENCY": "1"}
    email, new_email = fresh_email("walk-self"), fresh_email("walk-moved")
    with run_server(f"sqlite:///{tmp_path / 'self.db'}", tmp_path, **settings) as server:
        admin = run_example_json(server, "admin-signup.sh", EMAIL=email)["data"]
        token = admin["access_token"]
        profile = run_example_json(
            server, "update-profile.sh", token, '{"phone": "+1 415 555 0123", "language": "fr"}'
        )
        assert profile["data"]["user"]["phone"] == "+14155550123"
        company = run_example_json(server, "update-company.sh", token, '{"name": "Acme"}')
        assert company["data"]["user"]["company"]["name"] == "Acme"
        accepted = run_example_json(
            server, "change-email.sh", token, NEW_EMAIL=new_email, PASSWORD="Password@123"
        )
        assert accepted == {"error": None, "data": None}
        confirm = next(m[2] for m in smtp_server.wait_for(2) if m[1] == [new_email])
        changed = run_example_json(server, "confirm-email-change.sh", link_token(confirm))
        assert changed["data"]["user"]["email"] == new_email
        status = run_example(server, "delete-account.sh", token, PASSWORD="Password@123").strip()
        assert status == "204"
        kinds = [m[2]["X-Lumyri-Mail"] for m in smtp_server.wait_for(4)]
        assert kinds.count("account_deleted") == 1 and kinds.count("email_changed") == 1
