"""The audit trail: one writer for every event, in the transaction of what it records."""

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, utc_now
from app.repository.core import AUDIT_EVENTS

WRITE_EVENT = AUDIT_EVENTS.insert()


@dataclass(frozen=True)
class AuditContext:
    """Who asked: recorded with every audit event (the User-Agent only with the sessions
    a request starts)."""

    client_ip: str = ""
    request_id: str = ""
    user_agent: str = ""


def write_event(
    connection: sa.Connection,
    *,
    event: str,
    context: AuditContext,
    user_id: str | None = None,
    email: str = "",
    target_id: str | None = None,
    detail: str = "",
) -> None:
    """Add an audit event to the connection's transaction (committed with what it records):
    who acted (`user_id`, `email`), on what (`target_id`: a member, invitation, role or
    session), and details (`detail`)."""
    connection.execute(
        WRITE_EVENT,
        {
            "created_at": utc_now(),
            "event": event,
            "user_id": user_id,
            "email": email,
            "client_ip": context.client_ip,
            "request_id": context.request_id,
            "target_id": target_id,
            "detail": detail,
        },
    )


def record_audit_event(
    *, event: str, context: AuditContext, user_id: str | None = None, email: str = ""
) -> None:
    """Write an audit event that records no other change (a refused sign-up or log-in)."""
    write_event(db.session.connection(), event=event, context=context, user_id=user_id, email=email)
    db.session.commit()


def scrub_events(connection: sa.Connection, *, user_id: str, email: str) -> None:
    """The account's events, and every event that holds its address (a refused duplicate
    sign-up, a failed log-in, a reset asked for it), lose the address and the client's IP."""
    connection.execute(
        sa.update(AUDIT_EVENTS)
        .where(sa.or_(AUDIT_EVENTS.c.user_id == user_id, AUDIT_EVENTS.c.email == email))
        .values(email="", client_ip="")
    )


def audit_events(*, email: str | None = None, limit: int = 100) -> Sequence[AuditEvent]:
    """The newest audit events first, optionally of one e-mail (read with the ORM)."""
    query = sa.select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    if email:
        query = query.where(AuditEvent.email == email)
    events = db.session.scalars(query.limit(limit)).all()
    db.session.commit()
    return events
