"""The mail outbox: rows written in the transaction of the change they announce (by the
other modules, with core.insert), claimed and retired by the senders (app.mail)."""

import secrets
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from app.extensions import db
from app.models import OutboxMail
from app.repository.core import OUTBOX, detached, end_read_transaction, insert

DELETE_MAIL = sa.delete(OUTBOX).where(OUTBOX.c.id == sa.bindparam("mail_id"))


def queue_mail(mail: OutboxMail) -> None:
    """A mail that records no other change (a new verification mail)."""
    insert(db.session.connection(), mail)
    db.session.commit()


def claim_mails(*, now: datetime, lease_until: datetime, limit: int) -> list[OutboxMail]:
    """Claim up to `limit` due mails for this sender until `lease_until`, in one UPDATE
    that returns them, oldest first (a row another sender holds, by lease or by lock, is
    skipped)."""
    claim = secrets.token_hex(16)
    due = sa.select(OUTBOX.c.id).where(
        OUTBOX.c.status == "pending",
        OUTBOX.c.next_attempt_at <= now,
        sa.or_(OUTBOX.c.claimed_until.is_(None), OUTBOX.c.claimed_until < now),
    )
    connection = db.session.connection()
    # Most polls find nothing: a read first, so that they take no write lock.
    if connection.execute(due.limit(1)).first() is None:
        end_read_transaction()
        return []
    due = due.order_by(OUTBOX.c.id).limit(limit).with_for_update(skip_locked=True)
    rows = connection.execute(
        sa.update(OUTBOX)
        .where(OUTBOX.c.id.in_(due.scalar_subquery()))
        .values(claimed_until=lease_until, claim=claim, attempts=OUTBOX.c.attempts + 1)
        .returning(*OUTBOX.c)  # the claimed rows in the same statement
    ).mappings()
    mails = sorted((detached(OutboxMail, **row) for row in rows), key=lambda mail: mail.id)
    db.session.commit()
    return mails


def mail_done(mail: OutboxMail) -> None:
    """Sent (or superseded): the row goes, and with it the address it held."""
    db.session.connection().execute(DELETE_MAIL, {"mail_id": mail.id})
    db.session.commit()


def mail_retry_at(*, mail: OutboxMail, when: datetime, error: str) -> None:
    """Try again at `when`."""
    db.session.connection().execute(
        sa.update(OUTBOX)
        .where(OUTBOX.c.id == mail.id)
        .values(next_attempt_at=when, claimed_until=None, last_error=error[:255])
    )
    db.session.commit()


def mail_failed(*, mail: OutboxMail, error: str) -> None:
    """Given up (a 5xx, or retried for MAIL_RETRY_HOURS): kept for the operator."""
    db.session.connection().execute(
        sa.update(OUTBOX)
        .where(OUTBOX.c.id == mail.id)
        .values(status="failed", claimed_until=None, last_error=error[:255])
    )
    db.session.commit()


def outbox(*, limit: int = 100) -> list[OutboxMail]:
    """The mails not sent yet (pending and failed), oldest first."""
    mails = list(db.session.scalars(sa.select(OutboxMail).order_by(OutboxMail.id).limit(limit)))
    end_read_transaction()
    return mails


def retry_mail(*, mail_id: int, now: datetime) -> bool:
    """Send a failed mail again, with a new retry window; False if there is none."""
    result = db.session.connection().execute(
        sa.update(OUTBOX)
        .where(OUTBOX.c.id == mail_id, OUTBOX.c.status == "failed")
        .values(
            status="pending", next_attempt_at=now, created_at=now, attempts=0, claimed_until=None
        )
    )
    db.session.commit()
    return bool(cast(sa.CursorResult[Any], result).rowcount)


def pending_mail_count() -> int:
    """Mails waiting to go out."""
    count = db.session.connection().scalar(
        sa.select(sa.func.count()).select_from(OUTBOX).where(OUTBOX.c.status == "pending")
    )
    end_read_transaction()
    return int(count or 0)
