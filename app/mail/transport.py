"""Handing a message to the mail server: SMTP (plain, STARTTLS or TLS; an international
domain as its A-label to a server without SMTPUTF8), or .eml files in development; what
is a temporary and what a permanent failure."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import smtplib
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote, urlsplit

import idna
from flask import Flask

log = logging.getLogger("app.mail")  # one logger for the mail package


class TemporaryFailure(Exception):
    """Try again later: SMTP unreachable, or a 4xx answer."""


class Unreachable(TemporaryFailure):
    """No SMTP session could be had: the batch's other mails need not try."""


class PermanentFailure(Exception):
    """Never try again: a 5xx answer."""


class Transport(Protocol):
    """Where mails go."""

    def recipient(self, to_address: str) -> str:
        """The address as this transport takes it (its To header and envelope), or
        PermanentFailure when it takes it in no form."""

    def send(self, message: bytes, *, from_address: str, to_address: str, kind: str) -> None:
        """Deliver one message (its bytes, lines ending in CRLF) to the address that
        `recipient` gave, or raise TemporaryFailure / PermanentFailure."""

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


def _recipient_for(connection: smtplib.SMTP, to_address: str) -> str:
    """The recipient as this server takes it: as it is when ASCII or when the server
    announces SMTPUTF8 (then sent with the SMTPUTF8 option); otherwise in its ASCII
    form. PermanentFailure when it has none."""
    connection.ehlo_or_helo_if_needed()
    if connection.has_extn("smtputf8"):
        return to_address
    ascii_to = ascii_address(to_address)
    if ascii_to is None:
        raise PermanentFailure("the address needs SMTPUTF8, which the SMTP server lacks")
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

    def _session(self) -> smtplib.SMTP:
        """The open session (opened on first use)."""
        if self.connection is None:
            self.connection = self._connect()
        return self.connection

    @contextlib.contextmanager
    def _failing_ends_session(self, what: str) -> Iterator[None]:
        """A failure of the session within: closed, and told as a 4xx (temporary), a
        5xx (permanent) or no answer (temporary)."""
        try:
            yield
        except smtplib.SMTPResponseException as error:
            self.close()
            raise _failure(error.smtp_code, what) from None
        except (OSError, smtplib.SMTPException) as error:
            self.close()
            raise TemporaryFailure(f"SMTP failed ({type(error).__name__})") from None

    def recipient(self, to_address: str) -> str:
        """An ASCII address as it is; any other as the server takes it (asked once the
        session is open)."""
        if to_address.isascii():
            return to_address
        with self._failing_ends_session("EHLO"):
            return _recipient_for(self._session(), to_address)

    def send(self, message: bytes, *, from_address: str, to_address: str, kind: str) -> None:
        """Send the bytes as they are (no second flattening) on the open session; an
        address that is not ASCII with SMTPUTF8 (the server announced it: `recipient`)."""
        connection = self._session()
        options = () if to_address.isascii() else ("SMTPUTF8", "BODY=8BITMIME")
        with self._failing_ends_session("send"):
            try:
                refused = connection.sendmail(from_address, [to_address], message, options)
            except smtplib.SMTPRecipientsRefused as error:  # the session lives on
                code = min(code for code, _ in error.recipients.values())
                raise _failure(code, "recipient") from None
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

    def recipient(self, to_address: str) -> str:
        """Any address as it is."""
        return to_address

    def send(self, message: bytes, *, from_address: str, to_address: str, kind: str) -> None:
        """Write the message; log where (never what: it holds a link)."""
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        name = f"{stamp}-{kind}-{random.getrandbits(32):08x}.eml"
        path = os.path.join(self.folder, name)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(message)
        log.info("mail %s to the account written to %s", kind, path)

    def close(self) -> None:
        """Nothing to close."""


def transport_for(app: Flask) -> Transport:
    """SMTP when SMTP_URL is set; files in the instance folder otherwise."""
    url = app.config["SMTP_URL"]
    if url:
        return SmtpTransport(url, float(app.config["SMTP_TIMEOUT_SECONDS"]))
    return FileTransport(os.path.join(app.instance_path, "mail"))
