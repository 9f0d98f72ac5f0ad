"""Idempotency-Key rows: claimed by an INSERT (the unique index decides who owns a key),
completed with what the first request answered, released when it failed, purged."""

from contextvars import ContextVar
from datetime import datetime
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import IdempotencyKey, utc_now
from app.repository.core import IDEMPOTENCY_KEYS, detached, end_read_transaction, insert, rollback

# The key a sign-up in progress completes in the transaction that writes its account
# (set by app.idempotency around the first request's work, read by create_account): the
# account and its key's answer are committed together or not at all, so a retry after
# the request's instance was lost finds either both or neither.
COMPLETED_WITH_ACCOUNT: ContextVar[IdempotencyKey | None] = ContextVar(
    "completed_with_account", default=None
)
CREATED = 201


class KeyTakenOver(Exception):
    """The key is no longer this request's: a retry took it over (its first request
    looked lost), or it was completed meanwhile. Nothing of this request was written."""


def _owned_by(row: IdempotencyKey) -> tuple[sa.ColumnElement[bool], ...]:
    """The key row as the request that holds it wrote it: its id and start time (a
    takeover starts it again, so the request it took over no longer matches)."""
    return (IDEMPOTENCY_KEYS.c.id == row.id, IDEMPOTENCY_KEYS.c.created_at == row.created_at)


class Claim(NamedTuple):
    """The outcome of claiming an Idempotency-Key: the key's row (None if it vanished
    meanwhile) and whether this request is the one that claimed it."""

    row: IdempotencyKey | None
    mine: bool


def claim_idempotency_key(*, endpoint: str, key: str, fingerprint: str) -> Claim:
    """Insert the key as in progress; the unique index decides whether this request
    claimed it or another did (then the existing row comes back)."""
    row = IdempotencyKey(endpoint=endpoint, key=key, fingerprint=fingerprint)
    try:
        insert(db.session.connection(), row)
        db.session.commit()
        return Claim(row, True)
    except IntegrityError:
        db.session.rollback()
    return Claim(get_idempotency_key(endpoint=endpoint, key=key), False)


def get_idempotency_key(*, endpoint: str, key: str) -> IdempotencyKey | None:
    """The key's row as the database has it now (or None), without holding a transaction."""
    row = db.session.scalar(
        sa.select(IdempotencyKey)
        .where(IdempotencyKey.endpoint == endpoint, IdempotencyKey.key == key)
        .execution_options(populate_existing=True)
    )
    end_read_transaction()
    return row


def complete_idempotency_key(
    *,
    row: IdempotencyKey,
    status: int,
    user_id: str | None = None,
    credential_id: str | None = None,
    result_id: str | None = None,
) -> None:
    """Store what the first request answered (and the credential its token was signed
    with, or the id of what it made), unless the key is no longer this request's."""
    values = {
        "status": status,
        "user_id": user_id,
        "credential_id": credential_id,
        "result_id": result_id,
    }
    db.session.connection().execute(
        sa.update(IDEMPOTENCY_KEYS)
        .where(*_owned_by(row), IDEMPOTENCY_KEYS.c.status.is_(None))
        .values(values)
    )
    db.session.commit()


def complete_in_transaction(connection: sa.Connection, *, user_id: str, credential_id: str) -> None:
    """In the transaction that writes an account: complete the key of COMPLETED_WITH_ACCOUNT
    (if any) with that account's answer; KeyTakenOver when it is no longer this
    request's (the caller rolls the account back)."""
    row = COMPLETED_WITH_ACCOUNT.get()
    if row is None:
        return
    values = {"status": CREATED, "user_id": user_id, "credential_id": credential_id}
    result = cast(
        sa.CursorResult[Any],
        connection.execute(
            sa.update(IDEMPOTENCY_KEYS)
            .where(*_owned_by(row), IDEMPOTENCY_KEYS.c.status.is_(None))
            .values(values)
        ),
    )
    if result.rowcount != 1:
        raise KeyTakenOver()
    row.status, row.user_id, row.credential_id = CREATED, user_id, credential_id


def take_over_idempotency_key(
    *, row: IdempotencyKey, started_before: datetime
) -> IdempotencyKey | None:
    """Claim for this request a key still in progress whose first request began before
    `started_before` (its instance was lost before it answered): the key starts again
    as this request's. None when it finished meanwhile or another retry took it."""
    started = utc_now()
    result = cast(
        sa.CursorResult[Any],
        db.session.connection().execute(
            sa.update(IDEMPOTENCY_KEYS)
            .where(
                *_owned_by(row),
                IDEMPOTENCY_KEYS.c.status.is_(None),
                IDEMPOTENCY_KEYS.c.created_at < started_before,
            )
            .values(created_at=started)
        ),
    )
    db.session.commit()
    if result.rowcount != 1:
        return None
    return cast(
        IdempotencyKey,
        detached(
            IdempotencyKey,
            id=row.id,
            endpoint=row.endpoint,
            key=row.key,
            fingerprint=row.fingerprint,
            created_at=started,
            status=None,
            user_id=None,
            credential_id=None,
            result_id=None,
        ),
    )


def release_idempotency_key(row: IdempotencyKey) -> None:
    """Forget a key whose request failed (a 5xx or a 429): a retry may run again (not
    when a retry took it over meanwhile)."""
    rollback()
    db.session.connection().execute(sa.delete(IDEMPOTENCY_KEYS).where(*_owned_by(row)))
    db.session.commit()


def purge_idempotency_keys(
    *, created_before: datetime, endpoint: str | None = None, key: str | None = None
) -> int:
    """Delete keys older than the cut-off (all of them, or one endpoint's key)."""
    query = sa.delete(IDEMPOTENCY_KEYS).where(IDEMPOTENCY_KEYS.c.created_at < created_before)
    if endpoint is not None:
        query = query.where(IDEMPOTENCY_KEYS.c.endpoint == endpoint, IDEMPOTENCY_KEYS.c.key == key)
    result = cast(sa.CursorResult[Any], db.session.connection().execute(query))
    db.session.commit()
    return result.rowcount
