"""Mail: what is written to the outbox, how a mail is made, and the sender that delivers.

A change that causes a mail adds an outbox row in its own transaction (a rolled-back
change sends nothing; app.repository). A sender thread in every gunicorn worker (started
by gunicorn.conf.py's post_fork) claims due rows, with a lease, in one UPDATE (Postgres
skips rows another sender locked), makes each message (its link token is made now and
bound to what it proves: a row whose account changed meanwhile is dropped), and sends it
over SMTP: a connection failure or a 4xx is retried with a doubling backoff, a 5xx is
final. No request waits for SMTP; the thread has its own database connection.
"""

from __future__ import annotations

import logging
import os
import random
import smtplib
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import idna
from flask import Flask, current_app, has_request_context, request
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app import links, metrics, postgres_budget, ratelimit, repository
from app.email_address import email_key
from app.models import OutboxMail, utc_now
from config import ConfigError

log = logging.getLogger(__name__)

EXTENSION_KEY = "lumyri_mail_sender"
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
MAIL_TEMPLATES = os.path.join(TEMPLATES, "mail")
DEFAULT_LANGUAGE = "en"
FIRST_RETRY_SECONDS = 5
JITTER = 0.2
LEASE_SECONDS = 120
BATCH = 20
# Under load (GATHER_WAKES wake-ups within GATHER_SECONDS), the sender lets the mails
# committed in the next GATHER_SECONDS join the batch: several mails then share one claim
# and one SMTP session (each mail in a batch of its own cost its sender and the SMTP
# server about twice as much CPU: bench/README.md). A mail waits this much longer at
# most, and only under load: otherwise it leaves at once.
GATHER_SECONDS = 0.2
GATHER_WAKES = 3
# The longest pause of a sender whose rounds keep failing (the database unreachable).
FAILING_PAUSE_SECONDS = 30

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"], default_for_string=False, default=False),
    undefined=StrictUndefined,
    keep_trailing_newline=False,
)


def shipped_languages() -> tuple[str, ...]:
    """The languages whose templates are shipped: a folder under templates/mail each."""
    return tuple(
        sorted(
            name
            for name in os.listdir(MAIL_TEMPLATES)
            if os.path.isdir(os.path.join(MAIL_TEMPLATES, name))
        )
    )


SHIPPED = shipped_languages()


def choose_language(account_language: str = "") -> str:
    """The account's language if shipped; else the first shipped one in the request's
    Accept-Language, by q (RFC 4647 lookup: fr-CA finds fr); else English."""
    for candidate in _lookup_chain(account_language):
        if candidate in SHIPPED:
            return candidate
    if has_request_context():
        ranked = sorted(
            (
                (quality, -position, tag)
                for position, (tag, quality) in enumerate(request.accept_languages)
            ),
            reverse=True,
        )
        for quality, _, tag in ranked:
            if quality <= 0:
                continue
            for candidate in _lookup_chain(tag):
                if candidate in SHIPPED:
                    return candidate
    return DEFAULT_LANGUAGE


def _lookup_chain(tag: str) -> list[str]:
    """RFC 4647 lookup: `fr-CA-x` tries `fr-ca-x`, `fr-ca`, `fr` (lower-cased)."""
    parts = tag.strip().lower().replace("_", "-").split("-") if tag and tag != "*" else []
    return ["-".join(parts[:size]) for size in range(len(parts), 0, -1)]


@dataclass(frozen=True)
class Rendered:
    """A mail's subject, text and HTML."""

    subject: str
    text: str
    html: str


def render(kind: str, language: str, context: dict[str, Any]) -> Rendered:
    """The kind's templates in the language: the text's first line is the subject."""
    text = _environment.get_template(f"mail/{language}/{kind}.txt").render(context)
    subject, _, body = text.partition("\n")
    context = {**context, "subject": subject.strip(), "language": language}
    html = _environment.get_template(f"mail/{language}/{kind}.html").render(context)
    return Rendered(subject.strip(), body.strip() + "\n", html)


def new_mail(
    kind: str,
    to_address: str,
    first_name: str,
    language: str,
    user_id: str | None = None,
    **params: Any,
) -> OutboxMail:
    """An outbox row, for the repository to add in the transaction of its change."""
    return OutboxMail(
        kind=kind,
        to_address=to_address,
        first_name=first_name,
        language=language,
        user_id=user_id,
        params=params,
    )


def unless_suppressed(outbox_mail: OutboxMail, *, verified: bool) -> OutboxMail | None:
    """The mail to queue, or None when it is suppressed: every mail to an address that is
    not verified spends the address's RATELIMIT_MAIL_PER_ADDRESS (the count reset mails
    spend too), so nobody can flood an address by signing it up again and again; beyond
    it the mail is not written (counted `suppressed`). A verified address's mails go."""
    if verified or ratelimit.mail_allowed_to(outbox_mail.to_address):
        return outbox_mail
    count_suppressed(outbox_mail.kind)
    return None


class Superseded(Exception):
    """What the mail would prove changed since it was written: it is not sent."""


def message_context(mail: OutboxMail) -> dict[str, Any]:
    """The template context of a mail, its link made now; Superseded when the account or
    what the link is bound to changed since the mail was written."""
    context: dict[str, Any] = {"first_name": mail.first_name, **mail.params}
    if mail.kind not in links.SETTINGS:
        return context  # a notice: no link
    user = repository.account_by_id(mail.user_id) if mail.user_id else None
    if user is None:
        raise Superseded()
    if mail.kind != links.VERIFY_EMAIL and mail.params.get("v") != user.security_version:
        raise Superseded()  # reset and change: the password or the address changed since
    if mail.kind != links.RESET_PASSWORD and email_key(user.email) != email_key(
        mail.params["email"]
    ):
        raise Superseded()  # verification and change: asked from the address it has now
    token = links.token_for(mail.kind, user, mail.params.get("new_email", ""))
    context["link"] = links.link(mail.kind, token)
    lifetime = links.lifetime_seconds(mail.kind)
    context["hours"], context["minutes"] = lifetime // 3600, lifetime // 60
    return context


def build_message(mail: OutboxMail, sender: str) -> EmailMessage:
    """The multipart/alternative message of an outbox row."""
    rendered = render(mail.kind, mail.language, message_context(mail))
    message = EmailMessage()
    message["To"] = mail.to_address
    message["From"] = sender
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(utc_now())  # +0000 (RFC 5322), not -0000
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["X-Lumyri-Mail"] = mail.kind
    # Not quoted-printable: a link stays one line, readable (and copyable) as it is.
    message.set_content(rendered.text, cte="7bit" if rendered.text.isascii() else "8bit")
    message.add_alternative(rendered.html, subtype="html")
    return message


class TemporaryFailure(Exception):
    """Try again later: SMTP unreachable, or a 4xx answer."""


class Unreachable(TemporaryFailure):
    """No SMTP session could be had: the batch's other mails need not try."""


class PermanentFailure(Exception):
    """Never try again: a 5xx answer."""


class Transport(Protocol):
    """Where mails go."""

    def send(self, message: EmailMessage, from_address: str, to_address: str) -> None:
        """Deliver one message or raise TemporaryFailure / PermanentFailure."""

    def close(self) -> None:
        """End the session, if any."""


def _failure(code: int, what: str) -> Exception:
    """A 4xx is temporary, anything else from the server (5xx) permanent."""
    if 400 <= code < 500:
        return TemporaryFailure(f"SMTP {code} ({what})")
    return PermanentFailure(f"SMTP {code} ({what})")


def ascii_address(address: str) -> str | None:
    """The address with its domain as the IDNA A-label (`x@bücher.de` is
    `x@xn--bcher-kva.de`), as a server without SMTPUTF8 takes it; None when its local
    part is not ASCII: such an address has no ASCII form."""
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        return None
    if domain.isascii():
        return address
    try:
        return f"{local}@{idna.encode(domain).decode('ascii')}"
    except idna.IDNAError:
        return None


def _recipient_for(connection: smtplib.SMTP, message: EmailMessage, to_address: str) -> str:
    """The recipient as this server takes it: as it is when ASCII or when the server
    announces SMTPUTF8 (smtplib then sends with the SMTPUTF8 option); otherwise in its
    ASCII form, in the To header too. PermanentFailure when it has none."""
    if to_address.isascii():
        return to_address
    connection.ehlo_or_helo_if_needed()
    if connection.has_extn("smtputf8"):
        return to_address
    ascii_to = ascii_address(to_address)
    if ascii_to is None:
        raise PermanentFailure("the address needs SMTPUTF8, which the SMTP server lacks")
    message.replace_header("To", ascii_to)
    return ascii_to


@dataclass
class SmtpTransport:
    """One SMTP session per batch: smtp://, smtp+starttls:// or smtps://."""

    url: str
    timeout: float
    connection: smtplib.SMTP | None = field(default=None, init=False)

    def _connect(self) -> smtplib.SMTP:
        parts = urlsplit(self.url)
        scheme, host = parts.scheme, parts.hostname or "localhost"
        port = parts.port or (465 if scheme == "smtps" else 25)
        try:
            if scheme == "smtps":
                context = ssl.create_default_context()
                connection: smtplib.SMTP = smtplib.SMTP_SSL(
                    host, port, timeout=self.timeout, context=context
                )
            else:
                connection = smtplib.SMTP(host, port, timeout=self.timeout)
                if scheme == "smtp+starttls":
                    connection.starttls(context=ssl.create_default_context())
            if parts.username:
                connection.login(unquote(parts.username), unquote(parts.password or ""))
        except smtplib.SMTPResponseException as error:
            # A refused greeting, STARTTLS or login is about the server or our settings,
            # not about a mail: retried (and logged) until fixed, never a mail's failure.
            raise Unreachable(f"SMTP refused the session ({error.smtp_code})") from None
        except (OSError, smtplib.SMTPException) as error:
            raise Unreachable(f"SMTP unreachable ({type(error).__name__})") from None
        return connection

    def send(self, message: EmailMessage, from_address: str, to_address: str) -> None:
        """Send on the open session (opened on first use)."""
        if self.connection is None:
            self.connection = self._connect()
        try:
            to_address = _recipient_for(self.connection, message, to_address)
            refused = self.connection.send_message(message, from_address, [to_address])
        except smtplib.SMTPRecipientsRefused as error:
            code = min(code for code, _ in error.recipients.values())
            raise _failure(code, "recipient") from None
        except smtplib.SMTPResponseException as error:
            self.close()
            raise _failure(error.smtp_code, "send") from None
        except (OSError, smtplib.SMTPException) as error:
            self.close()
            raise TemporaryFailure(f"SMTP failed ({type(error).__name__})") from None
        if refused:
            code = min(code for code, _ in refused.values())
            raise _failure(code, "recipient")

    def close(self) -> None:
        """QUIT, ignoring a session that died already."""
        if self.connection is not None:
            try:
                self.connection.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self.connection = None


@dataclass
class FileTransport:
    """Development without SMTP_URL: each mail an .eml file under instance/mail/."""

    folder: str

    def send(self, message: EmailMessage, from_address: str, to_address: str) -> None:
        """Write the message; log where (never what: it holds a link)."""
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        kind = message["X-Lumyri-Mail"]
        name = f"{stamp}-{kind}-{random.getrandbits(32):08x}.eml"
        path = os.path.join(self.folder, name)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(message.as_bytes())
        log.info("mail %s to the account written to %s", kind, path)

    def close(self) -> None:
        """Nothing to close."""


def transport_for(app: Flask) -> Transport:
    """SMTP when SMTP_URL is set; files in the instance folder otherwise."""
    url = app.config["SMTP_URL"]
    if url:
        return SmtpTransport(url, float(app.config["SMTP_TIMEOUT_SECONDS"]))
    return FileTransport(os.path.join(app.instance_path, "mail"))


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
            transport = transport_for(self.app)
            unreachable: Unreachable | None = None
            try:
                for mail in mails:
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
            message = build_message(mail, sender)
            transport.send(message, parseaddr(sender)[1], mail.to_address)
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
        deadline = _aware(mail.created_at) + timedelta(hours=float(config["MAIL_RETRY_HOURS"]))
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


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=utc_now().tzinfo)


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


def count_suppressed(kind: str) -> None:
    """A mail not written because its address had too many of them."""
    metrics.MAILS.labels(kind, "suppressed").inc()
