"""Idempotency-Key rows: claimed by an INSERT (the unique index decides who owns a key),
completed with what the first request answered, released when it failed, purged."""

from datetime import datetime
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import IdempotencyKey
from app.repository.core import IDEMPOTENCY_KEYS, end_read_transaction, insert, rollback


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
    with, or the id of what it made)."""
    values = {
        "status": status,
        "user_id": user_id,
        "credential_id": credential_id,
        "result_id": result_id,
    }
    db.session.connection().execute(
        sa.update(IDEMPOTENCY_KEYS).where(IDEMPOTENCY_KEYS.c.id == row.id).values(values)
    )
    db.session.commit()


def release_idempotency_key(row: IdempotencyKey) -> None:
    """Forget a key whose request failed (a 5xx or a 429): a retry may run again."""
    rollback()
    db.session.connection().execute(
        sa.delete(IDEMPOTENCY_KEYS).where(IDEMPOTENCY_KEYS.c.id == row.id)
    )
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
