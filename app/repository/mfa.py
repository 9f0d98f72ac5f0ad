"""Two-factor's data: the TOTP columns of `users`, `recovery_codes` and `mfa_challenges`.

Every change locks the account's row first (core.lock_account) and checks what it
depends on under that lock (two-factor on or off, the pending secret, the challenge),
so of several requests acting on one reading exactly one writes. A code is used up by a
conditional UPDATE in the transaction of what it proves: a TOTP code's step is written to
`users.totp_last_step` only where the last step is earlier (and the secret the code was
checked against is still the account's), a recovery code's `used_at` only where it is
still null; a request that then fails rolls it back, so its code is not used up.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from app.extensions import db
from app.models import MfaChallenge, OutboxMail, RecoveryCode, SigningCredential, User, utc_now
from app.repository.accounts import Account
from app.repository.audit import AuditContext, write_event
from app.repository.changes import committed, write_new_password
from app.repository.core import (
    CREDENTIALS,
    USERS,
    AccountGone,
    end_read_transaction,
    insert,
    lock_account,
    lock_account_reading,
    read_connection,
)
from app.repository.sessions import open_session, replace_sessions

RECOVERY_CODES = cast(sa.Table, RecoveryCode.__table__)
CHALLENGES = cast(sa.Table, MfaChallenge.__table__)
MAX_MFA_FAILURES = 5  # wrong codes an mfa_token takes; the next is refused whatever it is


class TwoFactorOn(Exception):
    """The account has two-factor on (a set-up or a confirmation): nothing written."""


class TwoFactorOff(Exception):
    """The account has two-factor off, or no set-up pending (for a confirmation)."""


class CodeRefused(Exception):
    """The code (or the mfa_token) was used meanwhile, or no longer proves anything (its
    secret replaced, its challenge dead): nothing written."""


def is_on(enabled_at: datetime | None, secret: str | None) -> bool:
    """Two-factor is on: turned on, with a secret."""
    return enabled_at is not None and secret is not None


class TwoFactor(NamedTuple):
    """An account's two-factor state as read: the stored (encrypted) secrets, when it was
    turned on, the last step whose code was used, the unused recovery codes' hashes."""

    secret: str | None
    pending: str | None
    enabled_at: datetime | None
    last_step: int | None
    recovery_hashes: list[str]

    @property
    def on(self) -> bool:
        """Whether two-factor is on."""
        return is_on(self.enabled_at, self.secret)


class Proof(NamedTuple):
    """A code that was checked: a TOTP code's step (and the stored secret it was checked
    against), or a recovery code's hash."""

    step: int | None = None
    secret: str | None = None
    recovery_hash: str | None = None


class Challenge(NamedTuple):
    """An mfa_challenges row: what an mfa_token names."""

    id: str
    user_id: str
    expires_at: datetime
    failures: int
    used_at: datetime | None


STATE = sa.select(
    USERS.c.totp_secret,
    USERS.c.totp_pending_secret,
    USERS.c.totp_enabled_at,
    USERS.c.totp_last_step,
).where(USERS.c.id == sa.bindparam("user_id"))
UNUSED_CODES = sa.select(RECOVERY_CODES.c.code_hash).where(
    RECOVERY_CODES.c.user_id == sa.bindparam("user_id"), RECOVERY_CODES.c.used_at.is_(None)
)


def _state(connection: sa.Connection, user_id: str) -> TwoFactor | None:
    """The account's two-factor state on this connection (None: no such account)."""
    row = connection.execute(STATE, {"user_id": user_id}).first()
    if row is None:
        return None
    hashes = list(connection.execute(UNUSED_CODES, {"user_id": user_id}).scalars())
    return TwoFactor(*row, recovery_hashes=hashes)


def two_factor(user_id: str) -> TwoFactor | None:
    """The account's two-factor state now (None: the account is gone)."""
    state = _state(read_connection(), user_id)
    end_read_transaction()
    return state


def mfa_challenge(challenge_id: str) -> Challenge | None:
    """The mfa_challenges row of an mfa_token, if there is one."""
    row = (
        read_connection()
        .execute(
            sa.select(
                CHALLENGES.c.id,
                CHALLENGES.c.user_id,
                CHALLENGES.c.expires_at,
                CHALLENGES.c.failures,
                CHALLENGES.c.used_at,
            ).where(CHALLENGES.c.id == challenge_id)
        )
        .first()
    )
    end_read_transaction()
    return None if row is None else Challenge(*row)


def _locked_state(connection: sa.Connection, user_id: str) -> TwoFactor:
    """Lock the account and read its two-factor state under the lock."""
    lock_account(connection, user_id)
    state = _state(connection, user_id)
    if state is None:  # pragma: no cover - lock_account found it
        db.session.rollback()
        raise AccountGone()
    return state


def _refuse(error: Exception) -> Exception:
    """Roll back what the transaction wrote, and hand back the error to raise."""
    db.session.rollback()
    return error


def _use_up(connection: sa.Connection, user_id: str, proof: Proof) -> None:
    """Use up a checked code in this transaction (CodeRefused, all rolled back, when
    another request used it first or its secret is no longer the account's)."""
    if proof.recovery_hash is not None:
        statement = (
            sa.update(RECOVERY_CODES)
            .where(
                RECOVERY_CODES.c.user_id == user_id,
                RECOVERY_CODES.c.code_hash == proof.recovery_hash,
                RECOVERY_CODES.c.used_at.is_(None),
            )
            .values(used_at=utc_now())
        )
    else:
        statement = (
            sa.update(USERS)
            .where(
                USERS.c.id == user_id,
                USERS.c.totp_secret == proof.secret,
                sa.or_(USERS.c.totp_last_step.is_(None), USERS.c.totp_last_step < proof.step),
            )
            .values(totp_last_step=proof.step)
        )
    if cast(sa.CursorResult[Any], connection.execute(statement)).rowcount != 1:
        raise _refuse(CodeRefused())


def _event(
    connection: sa.Connection, user: User, event: str, context: AuditContext, detail: str = ""
) -> None:
    """An audit event of the account, by its current address."""
    write_event(
        connection, event=event, context=context, user_id=user.id, email=user.email, detail=detail
    )


def _proof_events(
    connection: sa.Connection, user: User, proof: Proof, context: AuditContext
) -> None:
    """recovery_code_used when the proof was a recovery code."""
    if proof.recovery_hash is not None:
        _event(connection, user, "recovery_code_used", context)


def _new_codes(connection: sa.Connection, user_id: str, hashes: list[str]) -> None:
    """The account's recovery codes become these (every earlier one dies)."""
    connection.execute(sa.delete(RECOVERY_CODES).where(RECOVERY_CODES.c.user_id == user_id))
    now = utc_now()
    insert(
        connection,
        *(RecoveryCode(user_id=user_id, code_hash=each, created_at=now) for each in hashes),
    )


def set_pending_secret(*, user: User, stored_secret: str) -> None:
    """A set-up: the new (encrypted) secret waits for its confirmation, replacing an
    unconfirmed one. TwoFactorOn (nothing written) when two-factor is on."""
    connection = db.session.connection()
    if _locked_state(connection, user.id).on:
        raise _refuse(TwoFactorOn())
    connection.execute(
        sa.update(USERS).where(USERS.c.id == user.id).values(totp_pending_secret=stored_secret)
    )
    db.session.commit()


def enable_mfa(
    *,
    user: User,
    pending: str,
    step: int,
    recovery_hashes: list[str],
    context: AuditContext,
    mail: OutboxMail | None,
) -> SigningCredential:
    """Two-factor on with the pending secret a code of `step` was checked against (that
    step used up), new recovery codes, every earlier session ended and a new one started,
    the notice, the event. TwoFactorOn / TwoFactorOff (no set-up pending) / CodeRefused
    (another set-up replaced the secret), nothing written, as found under the lock."""
    connection = db.session.connection()
    state = _locked_state(connection, user.id)
    if state.on:
        raise _refuse(TwoFactorOn())
    if state.pending is None:
        raise _refuse(TwoFactorOff())
    now = utc_now()
    result = connection.execute(
        sa.update(USERS)
        .where(USERS.c.id == user.id, USERS.c.totp_pending_secret == pending)
        .values(
            totp_secret=pending, totp_pending_secret=None, totp_enabled_at=now, totp_last_step=step
        )
    )
    if cast(sa.CursorResult[Any], result).rowcount != 1:
        raise _refuse(CodeRefused())
    _new_codes(connection, user.id, recovery_hashes)
    credential = replace_sessions(connection, user.id, context)
    if mail is not None:
        insert(connection, mail)
    _event(connection, user, "mfa_enabled", context)
    _event(connection, user, "tokens_revoked", context)
    db.session.commit()
    committed(
        user,
        {"totp_secret": pending, "totp_pending_secret": None, "totp_enabled_at": now},
    )
    set_committed_value(credential, "user", user)
    return credential


def _on_and_used_up(connection: sa.Connection, user: User, proof: Proof | None) -> None:
    """Under the account's lock: two-factor still on (TwoFactorOff) and the code used up
    (CodeRefused; no code: the operator's command), or nothing written."""
    if not _locked_state(connection, user.id).on:
        raise _refuse(TwoFactorOff())
    if proof is not None:
        _use_up(connection, user.id, proof)


def replace_recovery_codes(
    *, user: User, proof: Proof, recovery_hashes: list[str], context: AuditContext
) -> None:
    """New recovery codes (the old ones die), proved by a code that is used up here."""
    connection = db.session.connection()
    _on_and_used_up(connection, user, proof)
    _proof_events(connection, user, proof, context)
    _new_codes(connection, user.id, recovery_hashes)
    db.session.commit()


def disable_mfa(
    *, user: User, proof: Proof | None, context: AuditContext, mail: OutboxMail | None
) -> None:
    """Two-factor off, proved by a code (None: the operator's `accounts disable-mfa`):
    the secrets and the last step forgotten, the recovery codes and the account's
    mfa_tokens gone, the notice, the event."""
    connection = db.session.connection()
    _on_and_used_up(connection, user, proof)
    if proof is not None:
        _proof_events(connection, user, proof, context)
    values = {
        "totp_secret": None,
        "totp_pending_secret": None,
        "totp_enabled_at": None,
        "totp_last_step": None,
    }
    connection.execute(sa.update(USERS).where(USERS.c.id == user.id).values(values))
    connection.execute(sa.delete(RECOVERY_CODES).where(RECOVERY_CODES.c.user_id == user.id))
    connection.execute(sa.delete(CHALLENGES).where(CHALLENGES.c.user_id == user.id))
    if mail is not None:
        insert(connection, mail)
    _event(connection, user, "mfa_disabled", context)
    db.session.commit()
    committed(user, values)


def _new_challenge(connection: sa.Connection, user_id: str, lifetime: timedelta) -> Challenge:
    """A new mfa_challenges row (the account's dead ones deleted)."""
    now = utc_now()
    connection.execute(
        sa.delete(CHALLENGES).where(
            CHALLENGES.c.user_id == user_id,
            sa.or_(
                CHALLENGES.c.expires_at <= now,
                CHALLENGES.c.used_at.is_not(None),
                CHALLENGES.c.failures >= MAX_MFA_FAILURES,
            ),
        )
    )
    row = MfaChallenge(user_id=user_id, created_at=now, expires_at=now + lifetime, failures=0)
    insert(connection, row)
    return Challenge(row.id, user_id, row.expires_at, 0, None)


def start_login(
    *, user: User, context: AuditContext, challenge_lifetime: timedelta
) -> SigningCredential | Challenge:
    """A right password: with two-factor off (as found under the account's lock) a new
    session and the login_succeeded event; with it on, a new challenge for the mfa_token
    and no session. AccountGone, nothing written, when the account was deleted."""
    connection = db.session.connection()
    locked = lock_account_reading(connection, user.id, USERS.c.totp_enabled_at, USERS.c.totp_secret)
    if is_on(locked.totp_enabled_at, locked.totp_secret):
        challenge = _new_challenge(connection, user.id, challenge_lifetime)
        db.session.commit()
        return challenge
    credential = open_session(connection, user.id, context)
    _event(connection, user, "login_succeeded", context)
    db.session.commit()
    set_committed_value(credential, "user", user)
    return credential


def reset_password(
    *,
    user: User,
    password_hash: str,
    context: AuditContext,
    mail: OutboxMail | None,
    challenge_lifetime: timedelta,
) -> Account | Challenge:
    """A password reset (app.repository.changes.set_new_password's, proved by a link):
    every earlier session ends; with two-factor off a new one starts, with it on (under
    the lock) none does and a challenge is made for the mfa_token instead."""
    connection = db.session.connection()
    values = write_new_password(
        connection,
        user=user,
        password_hash=password_hash,
        event="password_reset",
        context=context,
        mail=mail,
        proved_by_link=True,
    )
    state = _state(connection, user.id)
    result: Account | Challenge
    if state is not None and state.on:
        connection.execute(sa.delete(CREDENTIALS).where(CREDENTIALS.c.user_id == user.id))
        result = _new_challenge(connection, user.id, challenge_lifetime)
    else:
        credential = replace_sessions(connection, user.id, context)
        set_committed_value(credential, "user", user)
        result = Account(user, credential)
    db.session.commit()
    committed(user, values)
    return result


def finish_mfa_login(
    *, user: User, challenge_id: str, proof: Proof, context: AuditContext
) -> SigningCredential:
    """The second factor of a log-in: the challenge used (once, unexpired, fewer than
    MAX_MFA_FAILURES wrong codes), the code used up, a new session, the events; CodeRefused
    (nothing written) when the challenge or the code was used meanwhile."""
    connection = db.session.connection()
    _on_and_used_up(connection, user, proof)
    now = utc_now()
    result = connection.execute(
        sa.update(CHALLENGES)
        .where(
            CHALLENGES.c.id == challenge_id,
            CHALLENGES.c.user_id == user.id,
            CHALLENGES.c.used_at.is_(None),
            CHALLENGES.c.expires_at > now,
            CHALLENGES.c.failures < MAX_MFA_FAILURES,
        )
        .values(used_at=now)
    )
    if cast(sa.CursorResult[Any], result).rowcount != 1:
        raise _refuse(CodeRefused())
    _proof_events(connection, user, proof, context)
    credential = open_session(connection, user.id, context)
    _event(connection, user, "login_succeeded", context)
    db.session.commit()
    set_committed_value(credential, "user", user)
    return credential


def record_mfa_failure(
    *, user: User, context: AuditContext, challenge_id: str | None = None, detail: str = ""
) -> None:
    """A wrong code: the mfa_failed event, and one more failure of the challenge (of an
    mfa_token) it was given with."""
    connection = db.session.connection()
    lock_account(connection, user.id)
    if challenge_id is not None:
        connection.execute(
            sa.update(CHALLENGES)
            .where(CHALLENGES.c.id == challenge_id, CHALLENGES.c.used_at.is_(None))
            .values(failures=CHALLENGES.c.failures + 1)
        )
    _event(connection, user, "mfa_failed", context, detail)
    db.session.commit()
