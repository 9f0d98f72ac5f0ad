"""The sender: a daemon thread per process that claims due outbox rows, sends them,
retries with a doubling backoff and gives up after MAIL_RETRY_HOURS."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from datetime import datetime, timedelta
from email.utils import parseaddr

from flask import Flask, current_app

from app import metrics, postgres_budget, repository
from app.mail.compose import Superseded, build_message
from app.mail.transport import (
    PermanentFailure,
    TemporaryFailure,
    Transport,
    Unreachable,
    transport_for,
)
from app.models import OutboxMail, as_utc, utc_now
from config import ConfigError

log = logging.getLogger("app.mail")  # one logger for the mail package

EXTENSION_KEY = "lumyri_mail_sender"
FIRST_RETRY_SECONDS = 5
JITTER = 0.2
# A claim lasts this long: the mails of a sender lost with its instance (a SIGKILL) go out
# from another sender once it ends (the contract: within a minute of the loss). A sender
# begins a mail of its batch only while its claim has SMTP_COMMANDS_PER_MAIL times
# SMTP_TIMEOUT_SECONDS left (the longest a send can wait on SMTP), or a quarter of the
# lease; the rest of the batch waits for the claim to end, so no mail is sent by two.
LEASE_SECONDS = 40
SMTP_COMMANDS_PER_MAIL = 3
# The clock of a claim's send window (a test moves it).
claim_clock = time.monotonic
BATCH = 20
# Under load (GATHER_WAKES wake-ups within GATHER_SECONDS), the sender lets the mails
# committed in the next GATHER_SECONDS join the batch: several mails then share one claim
# and one SMTP session (a batch of one costs the sender and the SMTP server more CPU per
# mail: bench/README.md, "Figures behind the code's choices"). A mail waits this much
# longer at most, and only under load: otherwise it leaves at once.
GATHER_SECONDS = 0.2
GATHER_WAKES = 3
# The longest pause of a sender whose rounds keep failing (the database unreachable).
FAILING_PAUSE_SECONDS = 30


def retry_delay(attempts: int, longest: int) -> float:
    """5 s, doubling per attempt, at most `longest`, up to 20 % later (jitter)."""
    base = float(min(FIRST_RETRY_SECONDS * 2 ** max(0, attempts - 1), longest))
    return base * (1 + random.uniform(0, JITTER))


class MailSender:
    """Delivers the outbox: a daemon thread per process (or `deliver_due()` called by
    hand). Safe with other senders in other processes and instances."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.wake_up = threading.Event()
        self.recent_wakes: deque[float] = deque(maxlen=GATHER_WAKES)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the loop in a daemon thread of this process."""
        if self.thread is not None and self.thread.is_alive():
            return
        self.stopping.clear()
        self.thread = threading.Thread(target=self._loop, name="lumyri-mail", daemon=True)
        self.thread.start()

    def stop(self, seconds: float = 5) -> None:
        """Ask the loop to end and wait for it a little."""
        self.stopping.set()
        self.wake_up.set()
        if self.thread is not None:
            self.thread.join(seconds)
            self.thread = None

    def wake(self) -> None:
        """A mail was committed: look now rather than at the next poll."""
        self.recent_wakes.append(time.monotonic())
        self.wake_up.set()

    def _under_load(self) -> bool:
        """GATHER_WAKES mails committed within the last GATHER_SECONDS."""
        recent = self.recent_wakes  # appended to by request threads; never shrinks
        return len(recent) == GATHER_WAKES and time.monotonic() - recent[0] < GATHER_SECONDS

    def _loop(self) -> None:
        poll = float(self.app.config["MAIL_POLL_SECONDS"])
        database_time = self.app.config["DB_REQUEST_TIMEOUT_MS"] / 1000
        failures = 0  # rounds failed in a row (the database unreachable): the pause doubles
        while not self.stopping.is_set():
            try:
                with postgres_budget.budget(database_time):
                    busy = self.deliver_due() >= BATCH
            except Exception as error:  # noqa: BLE001 - the loop must survive anything
                failures += 1
                if failures == 1:  # said once, not at every try
                    log.warning("mail sender: %s; trying ever less often", type(error).__name__)
                busy = False
            else:
                if failures:
                    log.info("mail sender: working again after %d failed rounds", failures)
                failures = 0
            if not busy:
                pause = min(poll * 2 ** min(failures, 16), max(poll, FAILING_PAUSE_SECONDS))
                if self.wake_up.wait(pause) and self._under_load():
                    self.stopping.wait(GATHER_SECONDS)  # let the next mails join the batch
                self.wake_up.clear()

    def deliver_due(self) -> int:
        """Claim and send the mails that are due; how many were claimed."""
        with self.app.app_context():
            now = utc_now()
            mails = repository.claim_mails(
                now=now, lease_until=now + timedelta(seconds=LEASE_SECONDS), limit=BATCH
            )
            if not mails:
                return 0
            claimed_at = claim_clock()
            smtp_wait = SMTP_COMMANDS_PER_MAIL * int(self.app.config["SMTP_TIMEOUT_SECONDS"])
            send_window = max(LEASE_SECONDS - smtp_wait, LEASE_SECONDS / 4)
            transport = transport_for(self.app)
            unreachable: Unreachable | None = None
            try:
                for mail in mails:
                    if claim_clock() - claimed_at > send_window:
                        break  # too near the claim's end: the rest go when it ends
                    if unreachable is not None:  # SMTP is down: the others wait too
                        self._temporary_failure(mail, unreachable, now)
                        continue
                    try:
                        self._deliver(mail, transport, now)
                    except Unreachable as error:
                        unreachable = error
                        self._temporary_failure(mail, error, now)
            finally:
                transport.close()
            return len(mails)

    def _deliver(self, mail: OutboxMail, transport: Transport, now: datetime) -> None:
        """Send one claimed mail and record the outcome (Unreachable is the caller's)."""
        config = self.app.config
        sender = str(config["MAIL_FROM"])
        try:
            to_address = transport.recipient(mail.to_address)
            transport.send(
                build_message(mail, sender, to_address),
                from_address=parseaddr(sender)[1],
                to_address=to_address,
                kind=mail.kind,
            )
        except Superseded:
            repository.mail_done(mail)
            metrics.MAILS.labels(mail.kind, "superseded").inc()
            return
        except Unreachable:
            raise
        except TemporaryFailure as error:
            self._temporary_failure(mail, error, now)
            return
        except PermanentFailure as error:
            repository.mail_failed(mail=mail, error=str(error))
            metrics.MAILS.labels(mail.kind, "failed").inc()
            log.warning("mail %s %s refused: %s", mail.id, mail.kind, error)
            return
        repository.mail_done(mail)
        metrics.MAILS.labels(mail.kind, "sent").inc()

    def _temporary_failure(self, mail: OutboxMail, error: Exception, now: datetime) -> None:
        """Try again after the backoff, or give up past MAIL_RETRY_HOURS."""
        config = self.app.config
        deadline = as_utc(mail.created_at) + timedelta(hours=float(config["MAIL_RETRY_HOURS"]))
        delay = retry_delay(mail.attempts, int(config["MAIL_RETRY_MAX_SECONDS"]))
        if now + timedelta(seconds=delay) > deadline:
            repository.mail_failed(mail=mail, error=str(error))
            metrics.MAILS.labels(mail.kind, "failed").inc()
            log.warning("mail %s %s given up: %s", mail.id, mail.kind, error)
        else:
            repository.mail_retry_at(
                mail=mail, when=now + timedelta(seconds=delay), error=str(error)
            )
            metrics.MAILS.labels(mail.kind, "retried").inc()


def init_app(app: Flask) -> None:
    """One sender per app; production without SMTP_URL refuses to start."""
    if not app.config["SMTP_URL"] and not app.config["MAIL_FILES_ALLOWED"]:
        raise ConfigError(
            "SMTP_URL is not set; set it to smtp://, smtp+starttls:// or smtps://host:port"
        )
    app.extensions[EXTENSION_KEY] = MailSender(app)


def sender() -> MailSender:
    """This app's sender."""
    found: MailSender = current_app.extensions[EXTENSION_KEY]
    return found


def wake_sender() -> None:
    """A mail was committed: this process's sender (if it runs) looks now."""
    sender().wake()
