"""Mail: what is written to the outbox, how a mail is made, and the sender that delivers.

A change that causes a mail adds an outbox row in its own transaction (a rolled-back
change sends nothing; app.repository). A sender thread in every gunicorn worker (started
by gunicorn.conf.py's post_fork) claims due rows, with a lease, in one UPDATE (Postgres
skips rows another sender locked), makes each message (its link token is made now and
bound to what it proves: a row whose account changed meanwhile is dropped), and sends it
over SMTP: a connection failure or a 4xx is retried with a doubling backoff, a 5xx is
final. No request waits for SMTP; the thread has its own database connection.

The package: `compose` (languages, templates, the outbox row, the message), `transport`
(SMTP or files), `delivery` (the sender thread); what the rest of the app uses is re-exported here.
"""

from app.mail.compose import (
    choose_language,
    count_suppressed,
    new_mail,
    unless_suppressed,
)
from app.mail.delivery import EXTENSION_KEY, init_app, sender, wake_sender

__all__ = [
    "EXTENSION_KEY",
    "choose_language",
    "count_suppressed",
    "init_app",
    "new_mail",
    "sender",
    "unless_suppressed",
    "wake_sender",
]
