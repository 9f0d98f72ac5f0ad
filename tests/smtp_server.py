"""A real SMTP server for the tests: aiosmtpd on loopback, recording what it accepts.

It can be told to answer the next messages with an error (a 451 or a 550), and be
stopped and started again on the same port (SMTP down, then back). It announces
SMTPUTF8 only when asked to (`SmtpServer(smtputf8=True)`): without it, it refuses a
command that is not ASCII ("500 Error: strict ASCII mode")."""

import email
import email.policy
import threading

from aiosmtpd.controller import Controller

from tests.helpers import free_port


class Recorder:
    """aiosmtpd handler: keeps every accepted message; answers queued errors first."""

    def __init__(self):
        self.messages = []
        self.smtputf8 = []  # per accepted message: was it sent with the SMTPUTF8 option?
        self.refusals = []  # e.g. "451 4.3.0 try later", answered to the next DATA each
        self.lock = threading.Lock()
        self.accepted = threading.Condition(self.lock)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        with self.lock:
            if self.refusals:
                return self.refusals.pop(0)
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
            self.smtputf8.append(envelope.smtp_utf8)
            self.accepted.notify_all()
        return "250 OK"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 at a fixed port; `url` is the service's SMTP_URL."""

    def __init__(self, smtputf8=False):
        self.port = free_port()
        self.smtputf8 = smtputf8
        self.recorder = Recorder()
        self.controller = None
        self.url = f"smtp://127.0.0.1:{self.port}"

    def start(self):
        """Listen (again)."""
        self.controller = Controller(
            self.recorder, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=self.smtputf8
        )
        self.controller.start()

    def stop(self):
        """Stop listening: SMTP is down."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self):
        """(envelope sender, recipients, parsed message) of every accepted mail."""
        with self.recorder.lock:
            return list(self.recorder.messages)

    @property
    def smtputf8_options(self):
        """Per accepted mail: whether it came with the SMTPUTF8 option of MAIL FROM."""
        with self.recorder.lock:
            return list(self.recorder.smtputf8)

    def refuse_next(self, *answers):
        """Answer the next DATA commands with these SMTP replies, in turn."""
        with self.recorder.lock:
            self.recorder.refusals.extend(answers)

    def wait_for(self, count, seconds=10):
        """Wait until `count` messages were accepted; the messages."""
        with self.recorder.accepted:
            self.recorder.accepted.wait_for(lambda: len(self.recorder.messages) >= count, seconds)
        return self.messages
