"""The bytes of a mail (app.mail.compose.build_message): what needs no encoding is
written as it is, the rest through the email package; either way a mail reader gets
back exactly what was rendered, and nothing a value holds becomes a header."""

import email
import email.policy

import pytest

from app.mail import compose
from app.models import OutboxMail

SENDER = "Lumyri <no-reply@lumyri.example>"


@pytest.fixture
def rendered(monkeypatch):
    """Set what the templates render (the subject, text and HTML) for the next mail."""
    shown = {}

    def render(kind, language, context):
        return compose.Rendered(shown["subject"], shown["text"], shown["html"])

    monkeypatch.setattr(compose, "render", render)
    monkeypatch.setattr(compose, "message_context", lambda mail: {})

    def set_to(subject="Verify your e-mail address", text="Hello\n", html="<p>Hello</p>\n"):
        shown.update(subject=subject, text=text, html=html)

    set_to()
    return set_to


def build(to_address="jane@example.org", sender=SENDER):
    """A verification mail's bytes, and the message a reader parses from them."""
    mail = OutboxMail(
        kind="verify_email",
        to_address=to_address,
        first_name="Jane",
        language="en",
        user_id="u",
        params={},
    )
    data = compose.build_message(mail, sender, to_address)
    return data, email.message_from_bytes(data, policy=email.policy.default)


def body_of(message, subtype):
    """A part's text as a mail reader shows it (the wire's CRLF read as line ends)."""
    return message.get_body(preferencelist=(subtype,)).get_content().replace("\r\n", "\n")


def test_lines_end_in_crlf_and_none_is_longer_than_998_octets(rendered):
    rendered(text="a" * 5000 + "\n", html="<p>" + "é" * 3000 + "</p>\n")
    data, _ = build()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_short_ascii_headers_are_written_as_they_are(rendered):
    data, message = build()
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "\r\nTo: jane@example.org\r\n" in "\r\n" + head + "\r\n"
    assert "\r\nFrom: Lumyri <no-reply@lumyri.example>\r\n" in "\r\n" + head + "\r\n"
    assert "\r\nSubject: Verify your e-mail address\r\n" in "\r\n" + head + "\r\n"
    assert message["X-Lumyri-Mail"] == "verify_email"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]


@pytest.mark.parametrize(
    "subject",
    [
        "Bestätigen Sie Ihre E-Mail-Adresse",  # not ASCII: an encoded word
        "Verify " + "your e-mail address " * 8,  # longer than a line: folded
    ],
)
def test_other_subjects_are_encoded_or_folded_and_read_back_the_same(rendered, subject):
    rendered(subject=subject)
    data, message = build()
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert message["Subject"] == subject


def test_a_sender_with_a_name_not_in_ascii_keeps_its_address(rendered):
    _, message = build(sender="Lümyri Konten <no-reply@lumyri.example>")
    assert message["From"].addresses[0].display_name == "Lümyri Konten"
    assert message["From"].addresses[0].addr_spec == "no-reply@lumyri.example"


def test_a_line_break_in_a_header_value_is_never_written(rendered):
    rendered(subject="Hello\r\nBcc: victim@example.org")
    with pytest.raises(ValueError):
        build()


@pytest.mark.parametrize(
    ("text", "encoding", "charset"),
    [
        ("Hello Jane,\n\nhttps://accounts.example.org/verify?token=abc\n", "7bit", "us-ascii"),
        ("Bonjour Zoë,\n\nMerci.\n", "8bit", "utf-8"),
        ("x" * 1200 + "\nnext line\n", "quoted-printable", "utf-8"),  # over RFC 5322's line
    ],
)
def test_bodies_read_back_as_rendered(rendered, text, encoding, charset):
    rendered(text=text, html=f"<p>{text}</p>\n")
    _, message = build()
    plain = message.get_body(preferencelist=("plain",))
    assert plain["Content-Transfer-Encoding"] == encoding
    assert plain.get_content_charset() == charset
    assert body_of(message, "plain") == text
    assert body_of(message, "html") == f"<p>{text}</p>\n"


def test_a_body_line_like_the_boundary_does_not_split_the_message(rendered):
    _, first = build()
    boundary = first.get_boundary()
    rendered(text=f"--{boundary}\nafter\n")
    _, message = build()
    assert message.get_boundary() != boundary  # a new one each mail
    assert body_of(message, "plain") == f"--{boundary}\nafter\n"


def test_an_address_not_in_ascii_is_written_in_utf8_for_smtputf8(rendered):
    data, message = build(to_address="jöhn@bücher.de")
    assert "\r\nTo: jöhn@bücher.de\r\n".encode() in b"\r\n" + data
