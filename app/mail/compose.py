"""Composing a mail: the shipped languages and templates, the outbox row a change adds
(unless the address has had too many), and the message made from it when it is sent
(its link made then, bound to what it proves)."""

from __future__ import annotations

import email.policy
import logging
import os
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from flask import has_request_context, request
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app import links, metrics, ratelimit, repository
from app.email_address import email_key
from app.models import INVITATION_PENDING, OutboxMail, utc_now

log = logging.getLogger("app.mail")  # one logger for the mail package

# The templates folder of the app (app/templates), this package's parent's.
TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates")
MAIL_TEMPLATES = os.path.join(TEMPLATES, "mail")
DEFAULT_LANGUAGE = "en"


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
    if mail.kind == links.INVITATION:
        return _invitation_context(mail, context)
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


def _invitation_context(mail: OutboxMail, context: dict[str, Any]) -> dict[str, Any]:
    """An invitation's link, made now: Superseded once the invitation was accepted,
    revoked or resent (a resend queues a mail of its own), or its company is gone."""
    invitation = repository.invitation_by_id(invitation_id=str(mail.params["invitation_id"]))
    if (
        invitation is None
        or invitation.status != INVITATION_PENDING
        or invitation.link_version != mail.params.get("v")
    ):
        raise Superseded()
    context["link"] = links.link(links.INVITATION, links.invitation_token(invitation))
    context["days"] = max(1, links.lifetime_seconds(links.INVITATION) // 86400)
    return context


# Written with CRLF, as SMTP sends it; utf8 when the recipient is an SMTPUTF8 address.
MESSAGE_POLICY = email.policy.SMTP
# RFC 5322 2.1.1: a line is at most 998 octets; 78 is where a header is folded.
LONGEST_LINE = 998
HEADER_WIDTH = 78


def build_message(mail: OutboxMail, sender: str, to_address: str) -> bytes:
    """The bytes of the multipart/alternative message of an outbox row, to `to_address`
    (the recipient as the server takes it). What needs no encoding or folding (ASCII
    headers, bodies of short lines) is written as it is, skipping the email package's
    header parser (the larger part of a mail's CPU); the rest goes through it."""
    rendered = render(mail.kind, mail.language, message_context(mail))
    message = EmailMessage(policy=MESSAGE_POLICY)
    _header(message, "To", to_address)
    _header(message, "From", sender)
    _header(message, "Subject", rendered.subject)
    _header(message, "Date", format_datetime(utc_now()))  # +0000 (RFC 5322), not -0000
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    _header(message, "Message-ID", make_msgid(domain=domain))
    _header(message, "X-Lumyri-Mail", mail.kind)
    _header(message, "MIME-Version", "1.0")
    # Parsed once here: the generator reads it back several times.
    message["Content-Type"] = f'multipart/alternative; boundary="{_boundary()}"'
    # Not quoted-printable: a link stays one line, readable (and copyable) as it is.
    message.attach(_text_part(rendered.text, "plain"))
    message.attach(_text_part(rendered.html, "html"))
    policy = MESSAGE_POLICY.clone(utf8=not to_address.isascii())
    return message.as_bytes(policy=policy)


def _header(message: EmailMessage, name: str, value: str) -> None:
    """Set a header: as it is when it is short ASCII of one line (nothing to encode or
    fold, nothing to inject), else through the header parser (encoded words, folding,
    and CR or LF refused)."""
    if value.isascii() and len(name) + 2 + len(value) <= HEADER_WIDTH and value.isprintable():
        message.set_raw(name, value)
    else:
        message[name] = value


def _boundary() -> str:
    """A multipart boundary no line of a body can hold (as the email package's own)."""
    return "=_" + secrets.token_hex(16)


def _text_part(content: str, subtype: str) -> EmailMessage:
    """A text part: 7bit or 8bit as it is when every line fits RFC 5322's 998 octets,
    else quoted-printable through the email package's content manager."""
    part = EmailMessage(policy=MESSAGE_POLICY)
    body = content.encode("utf-8")
    if max((len(line) for line in body.splitlines()), default=0) > LONGEST_LINE:
        part.set_content(content, subtype=subtype, cte="quoted-printable")
        del part["MIME-Version"]
        return part
    ascii_only = content.isascii()
    part["Content-Type"] = f'text/{subtype}; charset="{"us-ascii" if ascii_only else "utf-8"}"'
    part.set_raw("Content-Transfer-Encoding", "7bit" if ascii_only else "8bit")
    # Bytes kept as surrogates, which the generator writes back as they were.
    part.set_payload(body.decode("ascii", "surrogateescape"))
    return part


def count_suppressed(kind: str) -> None:
    """A mail not written because its address had too many of them."""
    metrics.MAILS.labels(kind, "suppressed").inc()
