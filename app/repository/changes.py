"""Every change of an existing account, one model for all: lock the account's row
(core.lock_account: AccountGone when it was deleted meanwhile), write with Core, record
the audit events (audit.write_event) and queue the mails, commit."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from app.email_address import email_key
from app.extensions import db
from app.models import ADMIN_ROLE_ID, OutboxMail, User, utc_now
from app.repository.accounts import Account
from app.repository.audit import AuditContext, scrub_events, write_event
from app.repository.core import (
    COMPANIES,
    CREDENTIALS,
    IDEMPOTENCY_KEYS,
    INVITATIONS,
    OUTBOX,
    ROLES,
    USERS,
    AccountGone,
    ChangedMeanwhile,
    CompanyGone,
    DuplicateEmail,
    LastAdminStays,
    insert,
    lock_account,
    lock_company,
)
from app.repository.sessions import replace_sessions

DELETE_CREDENTIALS = sa.delete(CREDENTIALS).where(CREDENTIALS.c.user_id == sa.bindparam("user_id"))


def committed(instance: Any, values: dict[str, Any]) -> None:
    """Show what was committed on an object read before (detached: nothing reloads it)."""
    for name, value in values.items():
        set_committed_value(instance, name, value)


def _event(connection: sa.Connection, user: User, event: str, context: AuditContext) -> None:
    """An audit event of the account, by its current address."""
    write_event(connection, event=event, context=context, user_id=user.id, email=user.email)


def set_password_hash(*, user: User, password_hash: str) -> None:
    """Store a new hash for the user (a re-hash with today's parameters at a log-in)."""
    lock_account(db.session.connection(), user.id, values={"password_hash": password_hash})
    db.session.commit()
    committed(user, {"password_hash": password_hash})


def mark_email_verified(*, user: User, context: AuditContext) -> None:
    """The address is proved: record when, once (a verified one is left as it is)."""
    if user.email_verified_at is not None:
        return
    values = {"email_verified_at": utc_now()}
    connection = db.session.connection()
    lock_account(connection, user.id, values=values)
    _event(connection, user, "email_verified", context)
    db.session.commit()
    committed(user, values)


def record_reset_request(
    *, email: str, user: User | None, context: AuditContext, mail: OutboxMail | None
) -> None:
    """The audit event of a forgotten password (known address or not) and its mail (no
    change of the account: nothing to lock)."""
    connection = db.session.connection()
    user_id = user.id if user else None
    write_event(
        connection,
        event="password_reset_requested",
        context=context,
        user_id=user_id,
        email=email,
    )
    if mail is not None:
        insert(connection, mail)
    db.session.commit()


def write_new_password(
    connection: sa.Connection,
    *,
    user: User,
    password_hash: str,
    event: str,
    context: AuditContext,
    mail: OutboxMail | None,
    proved_by_link: bool = False,
) -> dict[str, Any]:
    """The writes of a new password short of its sessions and the commit (the account
    locked first): the hash, the security version one further, the address verified by a
    reset, the notice, the events. The values written, for the caller to show once it
    commits; ChangedMeanwhile or AccountGone (nothing written) as set_new_password says."""
    values: dict[str, Any] = {"password_hash": password_hash}
    newly_verified = proved_by_link and user.email_verified_at is None
    if newly_verified:
        values["email_verified_at"] = utc_now()
    if proved_by_link:
        lock_account(connection, user.id, values=values, unchanged_since=user.security_version)
        values["security_version"] = user.security_version + 1
    else:
        lock_account(
            connection,
            user.id,
            values={**values, "security_version": USERS.c.security_version + 1},
        )
    if mail is not None:
        insert(connection, mail)
    if newly_verified:
        _event(connection, user, "email_verified", context)
    _event(connection, user, event, context)
    _event(connection, user, "tokens_revoked", context)
    return values


def set_new_password(
    *,
    user: User,
    password_hash: str,
    event: str,
    context: AuditContext,
    mail: OutboxMail | None,
    proved_by_link: bool = False,
) -> Account:
    """A new password (a reset or a change): every earlier token revoked (a new
    credential), every earlier reset and e-mail-change link dead (the security version
    counts one more change), the events recorded, the notice queued. A reset
    (`proved_by_link`) also proves the address, and is written only if nothing changed the
    password or the address since its link was checked (ChangedMeanwhile otherwise: of
    several uses of one link exactly one succeeds); a change, proved by the current
    password, always is."""
    connection = db.session.connection()
    values = write_new_password(
        connection,
        user=user,
        password_hash=password_hash,
        event=event,
        context=context,
        mail=mail,
        proved_by_link=proved_by_link,
    )
    credential = replace_sessions(connection, user.id, context)
    db.session.commit()
    committed(user, values)
    set_committed_value(credential, "user", user)
    return Account(user, credential)


def update_profile(*, user: User, changes: dict[str, Any], context: AuditContext) -> None:
    """Change profile fields of the user, all or nothing, with the audit event (the lock
    is the UPDATE itself)."""
    connection = db.session.connection()
    lock_account(connection, user.id, values=changes)
    _event(connection, user, "profile_changed", context)
    db.session.commit()
    committed(user, changes)


def record_email_change_request(
    *, user: User, mail: OutboxMail | None, context: AuditContext
) -> None:
    """The confirmation mail to the new address (unless suppressed), and the audit event."""
    connection = db.session.connection()
    lock_account(connection, user.id)
    _event(connection, user, "email_change_requested", context)
    if mail is not None:
        insert(connection, mail)
    db.session.commit()


def change_email(
    *, user: User, new_email: str, context: AuditContext, notice: OutboxMail | None
) -> None:
    """The new (proved) address, the notice to the old one, written only if nothing
    changed the password or the address since the link was checked (ChangedMeanwhile
    otherwise); DuplicateEmail when another account has the address (the unique index
    settles a race with a sign-up)."""
    connection = db.session.connection()
    values: dict[str, Any] = {
        "email": new_email,
        "email_key": email_key(new_email),
        "email_verified_at": utc_now(),
    }
    try:
        lock_account(connection, user.id, values=values, unchanged_since=user.security_version)
    except IntegrityError:
        db.session.rollback()
        raise DuplicateEmail() from None
    values["security_version"] = user.security_version + 1
    write_event(
        connection, event="email_changed", context=context, user_id=user.id, email=new_email
    )
    if notice is not None:
        insert(connection, notice)
    db.session.commit()
    committed(user, values)


def _membership(connection: sa.Connection, user_id: str) -> tuple[str | None, str] | None:
    """The account's company and role as they are now (None: no such account)."""
    row = connection.execute(
        sa.select(USERS.c.company_id, USERS.c.role_id).where(USERS.c.id == user_id)
    ).first()
    return None if row is None else (row.company_id, row.role_id)


def _lock_for_deletion(connection: sa.Connection, user: User) -> str | None:
    """Lock what a deletion changes, in the order every team change takes: the account's
    company (if it has one), then the account; the company it has under those locks.
    LastAdminStays (nothing written) when it is the last Admin of a company with other
    members; AccountGone when it was deleted meanwhile."""
    company_id = user.company_id
    for _ in range(3):
        if company_id is not None:
            try:
                lock_company(connection, company_id)
            except CompanyGone:
                connection = db.session.connection()
        lock_account(connection, user.id)
        membership = _membership(connection, user.id)
        if membership is None:  # pragma: no cover - lock_account found it
            raise AccountGone()
        if membership[0] == company_id:
            break
        company_id = membership[0]  # joined or left a company meanwhile: lock that one
        db.session.rollback()
        connection = db.session.connection()
    else:
        db.session.rollback()
        raise ChangedMeanwhile()
    if company_id is not None and membership[1] == ADMIN_ROLE_ID:
        admins = connection.execute(
            sa.select(sa.func.count())
            .select_from(USERS)
            .where(USERS.c.company_id == company_id, USERS.c.role_id == ADMIN_ROLE_ID)
        ).scalar_one()
        others = connection.execute(
            sa.select(USERS.c.id)
            .where(USERS.c.company_id == company_id, USERS.c.id != user.id)
            .limit(1)
        ).first()
        if admins == 1 and others is not None:
            db.session.rollback()
            raise LastAdminStays()
    return company_id


def delete_account(*, user: User, context: AuditContext, farewell: OutboxMail | None) -> None:
    """In one transaction: the user, its credentials, idempotency keys and unsent mails,
    its company (with its custom roles and invitations) when no other user belongs to
    it; every audit event of the account or its address loses the address and the
    client's IP; an account_deleted event with the user id only; the farewell mail (None:
    suppressed), which holds the address until it is sent. The invitations it sent stay
    the company's (their inviter becomes null). Of two deletions at the same moment the
    second finds the account gone (AccountGone, nothing written); the last Admin of a
    company with other members is refused (LastAdminStays, nothing written)."""
    user_id = user.id
    connection = db.session.connection()
    company_id = _lock_for_deletion(connection, user)
    connection = db.session.connection()
    connection.execute(DELETE_CREDENTIALS, {"user_id": user_id})
    connection.execute(sa.delete(IDEMPOTENCY_KEYS).where(IDEMPOTENCY_KEYS.c.user_id == user_id))
    connection.execute(sa.delete(OUTBOX).where(OUTBOX.c.user_id == user_id))
    connection.execute(
        sa.update(INVITATIONS).where(INVITATIONS.c.invited_by == user_id).values(invited_by=None)
    )
    scrub_events(connection, user_id=user_id, email=user.email)
    connection.execute(sa.delete(USERS).where(USERS.c.id == user_id))
    if company_id is not None:
        others = sa.select(USERS.c.id).where(USERS.c.company_id == company_id).limit(1)
        if connection.execute(others).first() is None:
            connection.execute(sa.delete(INVITATIONS).where(INVITATIONS.c.company_id == company_id))
            connection.execute(sa.delete(ROLES).where(ROLES.c.company_id == company_id))
            connection.execute(sa.delete(COMPANIES).where(COMPANIES.c.id == company_id))
    anonymous = AuditContext(client_ip="", request_id=context.request_id)
    write_event(connection, event="account_deleted", context=anonymous, user_id=user_id)
    if farewell is not None:
        insert(connection, farewell)
    db.session.commit()
