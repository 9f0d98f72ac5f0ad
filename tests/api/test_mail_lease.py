"""The outbox's lease: a sender lost with its instance holds its mails for LEASE_SECONDS
at most (another sends them within a minute of the loss), and a sender begins a mail
only while its claim has room for the send, so no mail is sent by two senders."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.mail import delivery
from app.models import OutboxMail, utc_now
from tests.helpers import Api, deliver, signup_body


@pytest.fixture
def three_mails(mail_app):
    """Three sign-ups: three verification mails in the outbox."""
    api = Api(mail_app.test_client())
    for _ in range(3):
        assert api.signup("customer", signup_body()).status_code == 201
    return mail_app


def test_the_lease_is_under_a_minute():
    assert delivery.LEASE_SECONDS + 5 < 60  # plus a poll or two


def test_a_sender_begins_no_mail_too_near_the_end_of_its_claim(
    three_mails, smtp_server, monkeypatch
):
    """The send window (40 s - 3 x SMTP_TIMEOUT_SECONDS, 10 s) passes after the first
    mail: the two others stay claimed, unsent, until the lease ends; then they go."""
    clock = iter([0.0, 0.0, delivery.LEASE_SECONDS / 4 + 1])  # claimed, 1st mail, 2nd
    monkeypatch.setattr(delivery, "claim_clock", lambda: next(clock, 100.0))
    assert deliver(three_mails) == 3  # claimed
    assert len(smtp_server.messages) == 1  # sent
    monkeypatch.undo()
    assert deliver(three_mails) == 0  # the two others are still this claim's
    with three_mails.app_context():
        db.session.execute(
            sa.update(OutboxMail).values(claimed_until=utc_now() - timedelta(seconds=1))
        )
        db.session.commit()
    assert deliver(three_mails) == 2  # the lease ended: another sender's round
    assert len(smtp_server.wait_for(3)) == 3
    assert len({tuple(to) for _, to, _ in smtp_server.messages}) == 3  # each once
