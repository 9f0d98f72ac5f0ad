"""Sessions: one signing credential per answer that hands out a token (a log-in, a
sign-up, a new password, ...), so each can end alone.

A session is written in the transaction of the change that starts it (`open_session`,
or `replace_sessions` when that change ends every earlier one); ending sessions is a
change of the account like any other (its row locked first). An account keeps at most
MAX_SESSIONS_PER_ACCOUNT live sessions (the oldest ends), and its ended ones (past
`expires_at`) are deleted whenever it starts a new one; `purge_ended_sessions` sweeps
every account's now and then (app.sessions), so nothing piles up.
"""

from __future__ import annotations

import secrets
import string
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.models import SigningCredential, as_utc, new_uuid, utc_now
from app.repository.audit import AuditContext, write_event
from app.repository.core import (
    CREDENTIALS,
    end_read_transaction,
    insert,
    lock_account,
    read_connection,
)

CREDENTIAL_KEY_ALPHABET = string.ascii_letters + string.digits
CREDENTIAL_KEY_LENGTH = 32
USER_AGENT_MAX = 255
# last_used_at is written when it is older than this (not on every request).
LAST_USED_PRECISION = timedelta(minutes=5)


class SessionGone(Exception):
    """No such live session of the account (another's, already ended, or none)."""


def new_credential_key() -> str:
    """A 32-character [A-Za-z0-9] key, like an API gateway's JWT credential key (uniform:
    random bytes of 248 or more are dropped, 248 being 4 x 62)."""
    key = ""
    while len(key) < CREDENTIAL_KEY_LENGTH:
        key += "".join(
            CREDENTIAL_KEY_ALPHABET[byte % 62] for byte in secrets.token_bytes(40) if byte < 248
        )
    return key[:CREDENTIAL_KEY_LENGTH]


def new_session(user_id: str, context: AuditContext) -> SigningCredential:
    """A new session of the account (not written yet): a new key, its start and end (its
    token's `iat` and `exp`), and the User-Agent and client of the request starting it."""
    now = utc_now()
    lifetime = timedelta(seconds=current_app.config["ACCESS_TOKEN_TTL_SECONDS"])
    return SigningCredential(
        id=new_uuid(),
        key=new_credential_key(),
        user_id=user_id,
        created_at=now,
        expires_at=now + lifetime,
        last_used_at=now,
        user_agent=context.user_agent[:USER_AGENT_MAX],
        ip=context.client_ip[:64],
    )


def open_session(
    connection: sa.Connection, user_id: str, context: AuditContext
) -> SigningCredential:
    """Start a session in the caller's transaction (the account locked or new): the
    account's ended sessions go, and the oldest live ones past MAX_SESSIONS_PER_ACCOUNT."""
    credential = new_session(user_id, context)
    insert(connection, credential)
    kept = (  # the newest live ones (the new one among them), in one DELETE with the rest
        sa.select(CREDENTIALS.c.id)
        .where(CREDENTIALS.c.user_id == user_id, CREDENTIALS.c.expires_at > credential.created_at)
        .order_by(CREDENTIALS.c.created_at.desc(), CREDENTIALS.c.id.desc())
        .limit(int(current_app.config["MAX_SESSIONS_PER_ACCOUNT"]))
    )
    connection.execute(
        sa.delete(CREDENTIALS).where(
            CREDENTIALS.c.user_id == user_id, CREDENTIALS.c.id.not_in(kept.scalar_subquery())
        )
    )
    return credential


def replace_sessions(
    connection: sa.Connection, user_id: str, context: AuditContext
) -> SigningCredential:
    """End every session of the account (the account locked) and start a new one."""
    connection.execute(sa.delete(CREDENTIALS).where(CREDENTIALS.c.user_id == user_id))
    return open_session(connection, user_id, context)


def end_sessions(
    *,
    user_id: str,
    scope: Literal["all", "current", "others"],
    current_id: str,
    context: AuditContext,
    email: str,
) -> None:
    """A log-out: every session of the account, the caller's only, or every other one
    (AccountGone when the account was deleted meanwhile)."""
    connection = db.session.connection()
    lock_account(connection, user_id)
    statement = sa.delete(CREDENTIALS).where(CREDENTIALS.c.user_id == user_id)
    if scope == "current":
        statement = statement.where(CREDENTIALS.c.id == current_id)
    elif scope == "others":
        statement = statement.where(CREDENTIALS.c.id != current_id)
    connection.execute(statement)
    if scope == "current":
        write_event(
            connection,
            event="session_ended",
            context=context,
            user_id=user_id,
            email=email,
            target_id=current_id,
        )
    else:
        write_event(
            connection,
            event="tokens_revoked",
            context=context,
            user_id=user_id,
            email=email,
            detail=scope,
        )
    db.session.commit()


def end_session(*, user_id: str, session_id: str, context: AuditContext, email: str) -> None:
    """End one session of the account; SessionGone (nothing written) when it has no such
    live session."""
    connection = db.session.connection()
    lock_account(connection, user_id)
    result = connection.execute(
        sa.delete(CREDENTIALS).where(
            CREDENTIALS.c.user_id == user_id,
            CREDENTIALS.c.id == session_id,
            CREDENTIALS.c.expires_at > utc_now(),
        )
    )
    if cast(sa.CursorResult[Any], result).rowcount != 1:
        db.session.rollback()
        raise SessionGone()
    write_event(
        connection,
        event="session_ended",
        context=context,
        user_id=user_id,
        email=email,
        target_id=session_id,
    )
    db.session.commit()


LIVE_SESSIONS = (
    sa.select(
        CREDENTIALS.c.id,
        CREDENTIALS.c.created_at,
        CREDENTIALS.c.last_used_at,
        CREDENTIALS.c.user_agent,
        CREDENTIALS.c.ip,
    )
    .where(
        CREDENTIALS.c.user_id == sa.bindparam("user_id"),
        CREDENTIALS.c.expires_at > sa.bindparam("now"),
    )
    .order_by(CREDENTIALS.c.created_at.desc(), CREDENTIALS.c.id.desc())
)


def live_sessions(*, user_id: str) -> list[dict[str, Any]]:
    """The account's live sessions, newest first."""
    rows = read_connection().execute(LIVE_SESSIONS, {"user_id": user_id, "now": utc_now()}).all()
    end_read_transaction()
    return [
        {
            **row._asdict(),
            "created_at": as_utc(row.created_at),
            "last_used_at": as_utc(row.last_used_at or row.created_at),
        }
        for row in rows
    ]


TOUCH = (
    sa.update(CREDENTIALS)
    .where(
        CREDENTIALS.c.id == sa.bindparam("session_id"),
        sa.or_(
            CREDENTIALS.c.last_used_at.is_(None),
            CREDENTIALS.c.last_used_at < sa.bindparam("stale_before"),
        ),
    )
    .values(last_used_at=sa.bindparam("now"))
)


def needs_touch(last_used_at: datetime | None, now: datetime) -> bool:
    """Whether a session's last_used_at is old enough to be written again."""
    return last_used_at is None or as_utc(last_used_at) < now - LAST_USED_PRECISION


def touch_session(session_id: str) -> None:
    """Record that a session was used (written only when its last_used_at is older than
    LAST_USED_PRECISION: one write per session per 5 minutes, whatever the traffic), on a
    connection of its own, outside the request's transaction."""
    now = utc_now()
    with db.engine.begin() as connection:
        connection.execute(
            TOUCH, {"session_id": session_id, "stale_before": now - LAST_USED_PRECISION, "now": now}
        )


def purge_ended_sessions() -> int:
    """Delete every account's ended sessions (their tokens expired with them)."""
    with db.engine.begin() as connection:
        result = connection.execute(
            sa.delete(CREDENTIALS).where(CREDENTIALS.c.expires_at <= utc_now())
        )
    return int(cast(sa.CursorResult[Any], result).rowcount or 0)
