"""The only module that queries or writes the database.

Plain functions over `db.session`. Views never touch the session; models never commit.
"""

import contextlib
import json
import secrets
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key

from app.emails import email_key
from app.extensions import db
from app.models import (
    ADMIN_ROLE,
    CUSTOMER_ROLE,
    STATE_ACTIVED,
    STATE_CARD_NOT_FOUND,
    AuditEvent,
    Company,
    IdempotencyKey,
    Model,
    OutboxMail,
    Role,
    SigningCredential,
    User,
    new_uuid,
    utc_now,
)

CREDENTIAL_KEY_ALPHABET = string.ascii_letters + string.digits
CREDENTIAL_KEY_LENGTH = 32


class AccountGone(Exception):
    """The account was deleted while this change was being made: nothing was written."""


@contextlib.contextmanager
def _change_of(user: User) -> Iterator[None]:
    """Make and commit a change of an account that may be deleted meanwhile: the
    change's writes go first (so that, on SQLite, this transaction holds the write lock),
    then the account's row is locked and must still be there (on Postgres a deletion
    locks it first too: the two never interleave). If it is gone nothing is written and
    AccountGone is raised."""
    user_id = user.id  # read now: a rollback expires the object
    _attach(user)
    try:
        yield
        db.session.flush()
        if db.session.scalar(_account_row(user_id)) is None:
            raise AccountGone()
        db.session.commit()
    except AccountGone:
        db.session.rollback()
        raise
    except (StaleDataError, IntegrityError):
        db.session.rollback()
        if db.session.scalar(_account_row(user_id)) is None:
            db.session.rollback()
            raise AccountGone() from None
        raise


def _attach(user: User) -> None:
    """A user read with Core (detached) joins the session, so that the changes made to
    it, before or after, are flushed; its role copy stays out (User.role cascades no
    save), so it cannot clash with a role the session holds."""
    if sa.inspect(user).detached:
        db.session.add(user)


def _account_row(user_id: str) -> sa.Select[str]:
    """The account's row, locked for the rest of the transaction (Postgres)."""
    return sa.select(User.id).where(User.id == user_id).with_for_update()


def _commit_change_of(user: User) -> None:
    """Commit a change already made (see _change_of)."""
    with _change_of(user):
        pass


class ChangedMeanwhile(Exception):
    """The account's password or address changed (another request committed first) since
    it was read: the change that was to follow from that reading wrote nothing."""


class DuplicateEmail(Exception):
    """An account with this normalised e-mail exists (the unique index said so)."""


class Account(NamedTuple):
    """A user and the signing credential its next token is signed with."""

    user: User
    credential: SigningCredential


class Claim(NamedTuple):
    """The outcome of claiming an Idempotency-Key: the key's row (None if it vanished
    meanwhile) and whether this request is the one that claimed it."""

    row: IdempotencyKey | None
    mine: bool


@dataclass(frozen=True)
class AuditContext:
    """Who asked: recorded with every audit event."""

    client_ip: str = ""
    request_id: str = ""


def _add_audit_event(
    event: str, context: AuditContext, user_id: str | None = None, email: str = ""
) -> None:
    """Add an audit event to the current transaction (committed with what it records)."""
    db.session.add(AuditEvent(**_audit_values(event, context, user_id, email)))


def _audit_values(
    event: str, context: AuditContext, user_id: str | None, email: str
) -> dict[str, Any]:
    """The columns of an audit event (for the ORM, or for _insert_audit_event)."""
    return {
        "created_at": utc_now(),
        "event": event,
        "user_id": user_id,
        "email": email,
        "client_ip": context.client_ip,
        "request_id": context.request_id,
    }


def record_audit_event(
    event: str, context: AuditContext, user_id: str | None = None, email: str = ""
) -> None:
    """Write an audit event that records no other change (a refused sign-up or log-in)."""
    _add_audit_event(event, context, user_id, email)
    db.session.commit()


def audit_events(email: str | None = None, limit: int = 100) -> Sequence[AuditEvent]:
    """The newest audit events first, optionally of one e-mail."""
    query = sa.select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    if email:
        query = query.where(AuditEvent.email == email)
    return db.session.scalars(query.limit(limit)).all()


def new_credential_key() -> str:
    """A 32-character [A-Za-z0-9] key, like an API gateway's JWT credential key (uniform:
    random bytes of 248 or more are dropped, 248 being 4 x 62)."""
    key = ""
    while len(key) < CREDENTIAL_KEY_LENGTH:
        key += "".join(
            CREDENTIAL_KEY_ALPHABET[byte % 62] for byte in secrets.token_bytes(40) if byte < 248
        )
    return key[:CREDENTIAL_KEY_LENGTH]


# On Postgres a read that opens the session's work (then ends it: _end_read_transaction)
# runs in autocommit: the statement alone, without the BEGIN and COMMIT round trips
# (measured here: 464 -> 289 us a read). The pool sets the connection back on its return.
# SQLite's driver begins no transaction for a read: nothing to spare there.
AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


def _reads_in_autocommit(dialect: sa.Dialect) -> bool:
    """Whether a read that ends at once may run without a transaction here."""
    return dialect.name == "postgresql"


def _read_connection() -> sa.Connection:
    """The session's connection for a read it ends right after (not in autocommit when
    the session holds changes: the commit that ends the read would flush them, each
    statement then on its own)."""
    session = db.session()
    pending = session.new or session.dirty or session.deleted
    if not pending and not session.in_transaction() and _reads_in_autocommit(db.engine.dialect):
        return session.connection(execution_options=AUTOCOMMIT)
    return session.connection()


def _end_read_transaction() -> None:
    """Close the read transaction so no connection sits idle in a transaction while the
    caller spends ~100 ms on argon2; objects already loaded stay usable."""
    db.session.commit()


# The hot paths (sign-up, log-in) read and write with SQLAlchemy Core statements built
# once, not through the ORM's unit of work: with a cheap argon2 profile the ORM's flush
# and loading cost a quarter of the hash (bench/README.md, "Work outside the hash").
# What they return are ORM objects all the same, detached and fully loaded.
USERS = cast(sa.Table, User.__table__)
COMPANIES = cast(sa.Table, Company.__table__)
CREDENTIALS = cast(sa.Table, SigningCredential.__table__)
AUDIT_EVENTS = cast(sa.Table, AuditEvent.__table__)
EMAIL_KEY_TAKEN = sa.select(USERS.c.id).where(USERS.c.email_key == sa.bindparam("email_key"))
USER_ROW = sa.select(
    USERS, *(column.label(f"company__{column.key}") for column in COMPANIES.c)
).select_from(USERS.outerjoin(COMPANIES, COMPANIES.c.id == USERS.c.company_id))
USER_BY_EMAIL_KEY = USER_ROW.where(USERS.c.email_key == sa.bindparam("email_key"))
USER_BY_ID = USER_ROW.where(USERS.c.id == sa.bindparam("user_id"))
USER_BY_CREDENTIAL = (
    USER_ROW.add_columns(
        CREDENTIALS.c.id.label("credential__id"),
        CREDENTIALS.c.created_at.label("credential__created_at"),
    )
    .join(CREDENTIALS, CREDENTIALS.c.user_id == USERS.c.id)
    .where(CREDENTIALS.c.key == sa.bindparam("key"))
)
OUTBOX = cast(sa.Table, OutboxMail.__table__)
DELETE_MAIL = sa.delete(OUTBOX).where(OUTBOX.c.id == sa.bindparam("mail_id"))
# The account's row, locked (Postgres), with its newest credential (None if it has none).
LOCKED_WITH_CREDENTIAL = (
    sa.select(USERS.c.id, CREDENTIALS.c.id, CREDENTIALS.c.key, CREDENTIALS.c.created_at)
    .select_from(USERS.outerjoin(CREDENTIALS, CREDENTIALS.c.user_id == USERS.c.id))
    .where(USERS.c.id == sa.bindparam("user_id"))
    .order_by(CREDENTIALS.c.created_at.desc())
    .limit(1)
    .with_for_update(of=USERS)
)
ROLES_KEY = "lumyri_system_roles"


_INSERTS: dict[sa.Table, sa.Insert] = {}


def _insert_row(connection: sa.Connection, table: sa.Table, row: dict[str, Any]) -> Any:
    """INSERT one row (every column given, but an autoincrement id); its primary key."""
    statement = _INSERTS.get(table)
    if statement is None:
        statement = _INSERTS[table] = table.insert()
    inserted = connection.execute(statement, row).inserted_primary_key
    return inserted[0] if inserted else None


def _insert(connection: sa.Connection, *instances: Model) -> None:
    """INSERT new ORM objects with Core (unset columns get their column's default
    first), then make them detached as if loaded: usable after the commit, never
    flushed again."""
    for instance in instances:
        table = cast(sa.Table, instance.__table__)
        values = instance.__dict__
        for column in table.columns:
            if column.key not in values:
                setattr(instance, column.key, _default_of(column))
        key = table.primary_key.columns[0].key
        row = {column.key: values[column.key] for column in table.columns}
        if row[key] is None:  # an autoincrement id: the INSERT makes it
            del row[key]
            setattr(instance, key, _insert_row(connection, table, row))
        else:
            _insert_row(connection, table, row)
    for instance in instances:
        make_transient_to_detached(instance)


def _insert_audit_event(
    connection: sa.Connection,
    event: str,
    context: AuditContext,
    user_id: str | None = None,
    email: str = "",
) -> None:
    """INSERT an audit event with Core (see _add_audit_event)."""
    _insert_row(connection, AUDIT_EVENTS, _audit_values(event, context, user_id, email))


def _default_of(column: sa.Column[Any]) -> Any:
    """The value an INSERT gives a column it is not given (its Python default, or None;
    None for an autoincrement id, which the INSERT makes)."""
    default = column.default
    if default is None or not isinstance(default, sa.ColumnDefault):
        return None
    return default.arg(None) if default.is_callable else default.arg


def _detached(model: type[Model], **values: Any) -> Any:
    """An ORM object of a row read with Core: detached, as if loaded by a query."""
    instance = model(**values)
    make_transient_to_detached(instance)
    return instance


class _SystemRoles(NamedTuple):
    """The roles' rows, by name and by id; each permission tree kept as JSON text, so
    that every copy gets its own (nothing can change the cached one)."""

    by_name: dict[str, dict[str, Any]]
    by_id: dict[str, dict[str, Any]]


def _system_roles() -> _SystemRoles:
    """Every role's row, read once per app and process on a connection of its own (the
    roles are seeded by a migration and never change while the service runs: restart it
    after a migration that changes them)."""
    roles: _SystemRoles | None = current_app.extensions.get(ROLES_KEY)
    if roles is None:
        with db.engine.connect() as connection:
            rows = connection.execute(sa.select(Role.__table__)).all()
        values = [{**row._asdict(), "permission": json.dumps(row.permission)} for row in rows]
        roles = _SystemRoles(
            {value["name"]: value for value in values}, {value["id"]: value for value in values}
        )
        current_app.extensions[ROLES_KEY] = roles  # one assignment: safe between threads
    return roles


def _role_copy(values: dict[str, Any] | None, which: str) -> Role:
    """A fresh detached Role from cached values."""
    if values is None:
        raise RuntimeError(f"system role {which!r} is missing: run the migrations")
    return cast(Role, _detached(Role, **{**values, "permission": json.loads(values["permission"])}))


def system_role(name: str) -> Role:
    """The system role with this name, as a fresh detached copy (see _system_roles)."""
    return _role_copy(_system_roles().by_name.get(name), name)


def system_role_by_id(role_id: str) -> Role:
    """The system role with this id, as a fresh detached copy (see _system_roles)."""
    return _role_copy(_system_roles().by_id.get(role_id), role_id)


def email_exists(email: str) -> bool:
    """True when an account has this mailbox (the canonical e-mail in any spelling)."""
    found = _read_connection().execute(EMAIL_KEY_TAKEN, {"email_key": email_key(email)}).first()
    _end_read_transaction()
    return found is not None


def _create_account(
    fields: dict[str, Any],
    password_hash: str,
    role_name: str,
    state: str,
    company: Company | None,
    context: AuditContext,
    mail: OutboxMail | None = None,
) -> Account:
    """Write user, company (if any), signing credential, the audit event and the welcome
    mail (if any) in one transaction."""
    role = system_role(role_name)
    user = User(
        id=new_uuid(),
        first_name=fields["first_name"],
        last_name=fields["last_name"],
        email=fields["email"],
        email_key=email_key(fields["email"]),
        password_hash=password_hash,
        state=state,
        role_id=role.id,
        company_id=None,
    )
    credential = SigningCredential(id=new_uuid(), key=new_credential_key(), user_id=user.id)
    rows: list[Model] = [user, credential]
    if company is not None:
        company.id = user.company_id = new_uuid()
        rows.insert(0, company)
    if mail is not None:
        mail.user_id = user.id
        rows.append(mail)
    try:
        connection = db.session.connection()
        _insert(connection, *rows)
        _insert_audit_event(connection, "account_created", context, user.id, user.email)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        # The unique index on the e-mail's comparison form is what settles a race.
        if email_exists(fields["email"]):
            raise DuplicateEmail() from None
        raise
    set_committed_value(user, "role", role)
    set_committed_value(user, "company", company)
    set_committed_value(credential, "user", user)
    return Account(user, credential)


def create_admin_account(
    fields: dict[str, Any],
    password_hash: str,
    context: AuditContext = AuditContext(),
    mail: OutboxMail | None = None,
) -> Account:
    """Create an admin: a new company, the Admin role, state CARD_NOT_FOUND."""
    company = Company()
    return _create_account(
        fields, password_hash, ADMIN_ROLE, STATE_CARD_NOT_FOUND, company, context, mail
    )


def create_customer_account(
    fields: dict[str, Any],
    password_hash: str,
    context: AuditContext = AuditContext(),
    mail: OutboxMail | None = None,
) -> Account:
    """Create a customer: no company, the Customer role, state ACTIVED."""
    return _create_account(fields, password_hash, CUSTOMER_ROLE, STATE_ACTIVED, None, context, mail)


def find_credential(key: str) -> SigningCredential | None:
    """Return the signing credential with this key (and its user, see _read_user), or
    None: read with Core on every request with a bearer token."""
    values = _read_row(USER_BY_CREDENTIAL, {"key": key})
    if values is None:
        return None
    credential_id, created_at = values.pop("credential__id"), values.pop("credential__created_at")
    user = _user_of(values)
    credential = _detached(
        SigningCredential, id=credential_id, key=key, user_id=user.id, created_at=created_at
    )
    set_committed_value(credential, "user", user)
    return cast(SigningCredential, credential)


class CredentialIdentity(NamedTuple):
    """What /verify needs of a credential's account, read in one small query."""

    user_id: str
    company_id: str | None
    role: str
    email_verified_at: datetime | None


# One statement, built once: on a /verify cache miss, building and caching an ORM
# select cost more than running it (bench/README.md).
CREDENTIAL_IDENTITY = (
    sa.select(User.id, User.company_id, Role.name, User.email_verified_at)
    .join(SigningCredential, SigningCredential.user_id == User.id)
    .join(Role, Role.id == User.role_id)
    .where(SigningCredential.key == sa.bindparam("key"))
)


def credential_identity(key: str) -> CredentialIdentity | None:
    """The account of a signing credential, read on a connection of its own without the
    ORM session (the hot path of /verify on a cache miss)."""
    with db.engine.connect() as connection:
        if _reads_in_autocommit(connection.dialect):
            connection = connection.execution_options(**AUTOCOMMIT)
        row = connection.execute(CREDENTIAL_IDENTITY, {"key": key}).first()
    return None if row is None else CredentialIdentity(*row)


def _read_user(statement: sa.Select[Any], params: dict[str, Any]) -> User | None:
    """The user of a USER_ROW statement, or None: read with Core, fully loaded (role and
    company) and detached, so no commit expires it. A change through the ORM attaches it
    first (_change_of); the hot paths change it with Core."""
    values = _read_row(statement, params)
    return None if values is None else _user_of(values)


def _read_row(statement: sa.Select[Any], params: dict[str, Any]) -> dict[str, Any] | None:
    """The first row of a read, as a dict (or None), the read transaction closed."""
    row = _read_connection().execute(statement, params).first()
    _end_read_transaction()
    return None if row is None else row._asdict()


def _user_of(values: dict[str, Any]) -> User:
    """A detached user (with role and company) from the columns of USER_ROW; the
    session's own instance instead if it holds this user already (one instance per
    account and session: attaching a second would fail)."""
    held: User | None = db.session.identity_map.get(identity_key(User, values["id"]))
    if held is not None:
        return held
    company_values = {
        column.key: values.pop(f"company__{column.key}") for column in COMPANIES.columns
    }
    user: User = _detached(User, **values)
    company = _detached(Company, **company_values) if user.company_id else None
    set_committed_value(user, "company", company)
    set_committed_value(user, "role", system_role_by_id(user.role_id))
    return user


def account_by_email(email: str) -> User | None:
    """The account with this mailbox (the canonical e-mail in any spelling), read with
    Core (see _read_user), or None."""
    return _read_user(USER_BY_EMAIL_KEY, {"email_key": email_key(email)})


def account_by_id(user_id: str) -> User | None:
    """The account with this id, read with Core (see _read_user), or None."""
    return _read_user(USER_BY_ID, {"user_id": user_id})


def set_password_hash(user: User, password_hash: str) -> None:
    """Store a new hash for the user (after a re-hash with today's parameters);
    AccountGone when the account was deleted meanwhile."""
    _update_account(db.session.connection(), user, {"password_hash": password_hash})
    db.session.commit()
    set_committed_value(user, "password_hash", password_hash)


def _update_account(connection: sa.Connection, user: User, values: dict[str, Any]) -> None:
    """UPDATE the account's row with Core: the statement also finds (and on Postgres
    locks) the row, so AccountGone, with nothing written, when it was deleted meanwhile."""
    result = connection.execute(sa.update(USERS).where(USERS.c.id == user.id).values(values))
    if cast(sa.CursorResult[Any], result).rowcount != 1:
        db.session.rollback()
        raise AccountGone()


LOCK_ACCOUNT = sa.update(USERS).where(USERS.c.id == sa.bindparam("user_id")).values(id=USERS.c.id)


def _lock_account(connection: sa.Connection, user_id: str) -> None:
    """Lock the account's row for the rest of the transaction with a write that changes
    nothing (on SQLite the transaction then holds the write lock; on Postgres a change
    or a deletion of the account waits for it); AccountGone, with nothing written, when
    the account was deleted meanwhile."""
    result = connection.execute(LOCK_ACCOUNT, {"user_id": user_id})
    if cast(sa.CursorResult[Any], result).rowcount != 1:
        db.session.rollback()
        raise AccountGone()


def _update_if_unchanged(connection: sa.Connection, user: User, values: dict[str, Any]) -> int:
    """UPDATE the account's row, and count one more change of its password or address,
    only where its security version is still the one read: of several requests acting
    on one reading (one link used at the same moment) exactly one writes. AccountGone when
    the account was deleted meanwhile, ChangedMeanwhile when another change came first;
    nothing written either way. The new version."""
    version = user.security_version
    result = connection.execute(
        sa.update(USERS)
        .where(USERS.c.id == user.id, USERS.c.security_version == version)
        .values({**values, "security_version": version + 1})
    )
    if cast(sa.CursorResult[Any], result).rowcount != 1:
        exists = connection.execute(EXISTS_ACCOUNT, {"user_id": user.id}).first() is not None
        db.session.rollback()
        raise ChangedMeanwhile() if exists else AccountGone()
    return version + 1


EXISTS_ACCOUNT = sa.select(USERS.c.id).where(USERS.c.id == sa.bindparam("user_id"))


def start_session(user: User, context: AuditContext) -> SigningCredential:
    """A successful log-in: the audit event written first (on SQLite this transaction
    then holds the write lock), then the account's row locked and read with its newest
    signing credential (one is created if it has none). AccountGone, with nothing
    written, when the account was deleted meanwhile."""
    connection = db.session.connection()
    _insert_audit_event(connection, "login_succeeded", context, user.id, user.email)
    row = connection.execute(LOCKED_WITH_CREDENTIAL, {"user_id": user.id}).first()
    if row is None:
        db.session.rollback()
        raise AccountGone()
    _, credential_id, key, created_at = row
    if credential_id is None:
        credential = SigningCredential(id=new_uuid(), key=new_credential_key(), user_id=user.id)
        _insert(connection, credential)
    else:
        credential = _detached(
            SigningCredential, id=credential_id, key=key, user_id=user.id, created_at=created_at
        )
    db.session.commit()
    set_committed_value(credential, "user", user)
    return credential


CREDENTIAL_OF_USER = sa.select(CREDENTIALS.c.key, CREDENTIALS.c.created_at).where(
    CREDENTIALS.c.id == sa.bindparam("credential_id"),
    CREDENTIALS.c.user_id == sa.bindparam("user_id"),
)


def live_credential(credential_id: str, user: User) -> SigningCredential | None:
    """The account's signing credential with this id while it lives (None once it was
    deleted: a log-out, a new password, a deletion), read with Core; never creates one."""
    values = _read_row(CREDENTIAL_OF_USER, {"credential_id": credential_id, "user_id": user.id})
    if values is None:
        return None
    created_at = values["created_at"]
    credential = _detached(
        SigningCredential,
        id=credential_id,
        key=values["key"],
        user_id=user.id,
        created_at=created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC),
    )
    set_committed_value(credential, "user", user)
    return cast(SigningCredential, credential)


def rotate_credential(user: User, context: AuditContext = AuditContext()) -> SigningCredential:
    """Delete every signing credential of the user and create a new one, in one transaction.

    Every token signed before is refused from then on; the new key signs the next login.
    AccountGone, with nothing written, when the account was deleted meanwhile."""
    connection = db.session.connection()
    _lock_account(connection, user.id)
    connection.execute(sa.delete(CREDENTIALS).where(CREDENTIALS.c.user_id == user.id))
    credential = SigningCredential(id=new_uuid(), key=new_credential_key(), user_id=user.id)
    _insert(connection, credential)
    _insert_audit_event(connection, "tokens_revoked", context, user.id, user.email)
    db.session.commit()
    set_committed_value(credential, "user", user)
    return credential


def ping() -> None:
    """Read the seeded roles; raises when the database cannot be reached or is not
    migrated (a service that cannot sign anyone up is not ready)."""
    db.session.execute(sa.select(Role.id).limit(1)).all()
    db.session.rollback()


def rollback() -> None:
    """Drop whatever the current transaction holds (used after errors)."""
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - a dead connection must not hide the original error
        pass


def claim_idempotency_key(endpoint: str, key: str, fingerprint: str) -> Claim:
    """Insert the key as in progress; the unique index decides whether this request
    claimed it or another did (then the existing row comes back)."""
    row = IdempotencyKey(endpoint=endpoint, key=key, fingerprint=fingerprint)
    db.session.add(row)
    try:
        db.session.commit()
        return Claim(row, True)
    except IntegrityError:
        db.session.rollback()
    return Claim(get_idempotency_key(endpoint, key), False)


def get_idempotency_key(endpoint: str, key: str) -> IdempotencyKey | None:
    """The key's row as the database has it now (or None), without holding a transaction."""
    row = db.session.scalar(
        sa.select(IdempotencyKey)
        .where(IdempotencyKey.endpoint == endpoint, IdempotencyKey.key == key)
        .execution_options(populate_existing=True)
    )
    _end_read_transaction()
    return row


def complete_idempotency_key(
    row: IdempotencyKey,
    status: int,
    user_id: str | None = None,
    credential_id: str | None = None,
) -> None:
    """Store what the first request answered (and the credential its token was signed with)."""
    row.status = status
    row.user_id = user_id
    row.credential_id = credential_id
    db.session.commit()


def release_idempotency_key(row: IdempotencyKey) -> None:
    """Forget a key whose request failed (a 5xx or a 429): a retry may run again."""
    rollback()
    db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.id == row.id))
    db.session.commit()


def purge_idempotency_keys(
    created_before: datetime, endpoint: str | None = None, key: str | None = None
) -> int:
    """Delete keys older than the cut-off (all of them, or one endpoint's key)."""
    query = sa.delete(IdempotencyKey).where(IdempotencyKey.created_at < created_before)
    if endpoint is not None:
        query = query.where(IdempotencyKey.endpoint == endpoint, IdempotencyKey.key == key)
    # A DELETE's result is a CursorResult (Session.execute is typed as the general Result).
    result = cast(
        sa.CursorResult[Any],
        db.session.execute(query.execution_options(synchronize_session="fetch")),
    )
    deleted = result.rowcount
    db.session.commit()
    return deleted


# Account lifecycle: each change, its audit events and its mails in one transaction.


def mark_email_verified(user: User, context: AuditContext) -> None:
    """The address is proved: record when, once."""
    if user.email_verified_at is None:
        user.email_verified_at = utc_now()
        _add_audit_event("email_verified", context, user.id, user.email)
    _commit_change_of(user)


def queue_mail(mail: OutboxMail) -> None:
    """A mail that records no other change (a new verification mail)."""
    db.session.add(mail)
    db.session.commit()


def record_reset_request(
    email: str, user: User | None, context: AuditContext, mail: OutboxMail | None
) -> None:
    """The audit event of a forgotten password (known address or not) and its mail."""
    connection = db.session.connection()
    user_id = user.id if user else None
    _insert_audit_event(connection, "password_reset_requested", context, user_id, email)
    if mail is not None:
        _insert(connection, mail)
    db.session.commit()


def set_new_password(
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
    password, always is. AccountGone, with nothing written, when the account is gone."""
    connection = db.session.connection()
    values: dict[str, Any] = {"password_hash": password_hash}
    newly_verified = proved_by_link and user.email_verified_at is None
    if newly_verified:
        values["email_verified_at"] = utc_now()
    if proved_by_link:
        values["security_version"] = _update_if_unchanged(connection, user, values)
    else:
        _update_account(
            connection, user, {**values, "security_version": USERS.c.security_version + 1}
        )
    connection.execute(sa.delete(CREDENTIALS).where(CREDENTIALS.c.user_id == user.id))
    credential = SigningCredential(id=new_uuid(), key=new_credential_key(), user_id=user.id)
    _insert(connection, credential, *([mail] if mail is not None else []))
    if newly_verified:
        _insert_audit_event(connection, "email_verified", context, user.id, user.email)
    _insert_audit_event(connection, event, context, user.id, user.email)
    _insert_audit_event(connection, "tokens_revoked", context, user.id, user.email)
    db.session.commit()
    for name, value in values.items():
        set_committed_value(user, name, value)
    set_committed_value(credential, "user", user)
    return Account(user, credential)


# The mail outbox, for the senders.


def claim_mails(now: datetime, lease_until: datetime, limit: int) -> list[OutboxMail]:
    """Claim up to `limit` due mails for this sender until `lease_until`, in one UPDATE
    (a row another sender holds, by lease or by lock, is skipped)."""
    claim = secrets.token_hex(16)
    due = sa.select(OutboxMail.id).where(
        OutboxMail.status == "pending",
        OutboxMail.next_attempt_at <= now,
        sa.or_(OutboxMail.claimed_until.is_(None), OutboxMail.claimed_until < now),
    )
    # Most polls find nothing: a read first, so that they take no write lock.
    if db.session.scalar(due.limit(1)) is None:
        _end_read_transaction()
        return []
    due = due.order_by(OutboxMail.id).limit(limit).with_for_update(skip_locked=True)
    db.session.execute(
        sa.update(OutboxMail)
        .where(OutboxMail.id.in_(due.scalar_subquery()))
        .values(claimed_until=lease_until, claim=claim, attempts=OutboxMail.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    claimed = sa.select(OutboxMail).where(OutboxMail.claim == claim).order_by(OutboxMail.id)
    mails = list(db.session.scalars(claimed))
    db.session.commit()
    return mails


def mail_done(mail: OutboxMail) -> None:
    """Sent (or superseded): the row goes, and with it the address it held."""
    db.session.connection().execute(DELETE_MAIL, {"mail_id": mail.id})
    db.session.commit()


def mail_retry_at(mail: OutboxMail, when: datetime, error: str) -> None:
    """Try again at `when`."""
    db.session.execute(
        sa.update(OutboxMail)
        .where(OutboxMail.id == mail.id)
        .values(next_attempt_at=when, claimed_until=None, last_error=error[:255])
    )
    db.session.commit()


def mail_failed(mail: OutboxMail, error: str) -> None:
    """Given up (a 5xx, or retried for MAIL_RETRY_HOURS): kept for the operator."""
    db.session.execute(
        sa.update(OutboxMail)
        .where(OutboxMail.id == mail.id)
        .values(status="failed", claimed_until=None, last_error=error[:255])
    )
    db.session.commit()


def outbox(limit: int = 100) -> list[OutboxMail]:
    """The mails not sent yet (pending and failed), oldest first."""
    query = sa.select(OutboxMail).order_by(OutboxMail.id).limit(limit)
    mails = list(db.session.scalars(query))
    _end_read_transaction()
    return mails


def retry_mail(mail_id: int, now: datetime) -> bool:
    """Send a failed mail again, with a new retry window; False if there is none."""
    result = db.session.execute(
        sa.update(OutboxMail)
        .where(OutboxMail.id == mail_id, OutboxMail.status == "failed")
        .values(
            status="pending", next_attempt_at=now, created_at=now, attempts=0, claimed_until=None
        )
    )
    db.session.commit()
    return bool(cast(sa.CursorResult[Any], result).rowcount)


def pending_mail_count() -> int:
    """Mails waiting to go out."""
    count = db.session.scalar(
        sa.select(sa.func.count()).select_from(OutboxMail).where(OutboxMail.status == "pending")
    )
    _end_read_transaction()
    return int(count or 0)


# Self-service: the profile, the company, the address, deletion.


def update_profile(user: User, changes: dict[str, Any], context: AuditContext) -> None:
    """Change profile fields of the user, all or nothing, with the audit event (one
    UPDATE, which also finds, and on Postgres locks, the account's row: AccountGone, with
    nothing written, when it was deleted meanwhile)."""
    connection = db.session.connection()
    _update_account(connection, user, changes)
    _insert_audit_event(connection, "profile_changed", context, user.id, user.email)
    db.session.commit()
    for name, value in changes.items():
        set_committed_value(user, name, value)


def update_company(user: User, changes: dict[str, Any], context: AuditContext) -> None:
    """Change fields of the user's company, all or nothing, with the audit event."""
    company = user.company
    if company is None:  # the caller checked the role: an admin always has one
        raise RuntimeError("this account has no company")
    for name, value in changes.items():
        setattr(company, name, value)
    _add_audit_event("company_changed", context, user.id, user.email)
    _commit_change_of(user)


def record_email_change_request(user: User, mail: OutboxMail | None, context: AuditContext) -> None:
    """The confirmation mail to the new address (unless suppressed), and the audit event."""
    _add_audit_event("email_change_requested", context, user.id, user.email)
    if mail is not None:
        db.session.add(mail)
    _commit_change_of(user)


def change_email(
    user: User, new_email: str, context: AuditContext, notice: OutboxMail | None
) -> None:
    """The new (proved) address, the notice to the old one, written only if nothing
    changed the password or the address since the link was checked (ChangedMeanwhile
    otherwise; AccountGone when the account is gone); DuplicateEmail when another account
    has the address (the unique index settles a race with a sign-up)."""
    connection = db.session.connection()
    values: dict[str, Any] = {
        "email": new_email,
        "email_key": email_key(new_email),
        "email_verified_at": utc_now(),
    }
    try:
        values["security_version"] = _update_if_unchanged(connection, user, values)
    except IntegrityError:
        db.session.rollback()
        raise DuplicateEmail() from None
    _insert_audit_event(connection, "email_changed", context, user.id, new_email)
    if notice is not None:
        _insert(connection, notice)
    db.session.commit()
    for name, value in values.items():
        set_committed_value(user, name, value)


def delete_account(user: User, context: AuditContext, farewell: OutboxMail | None) -> None:
    """In one transaction: the user, its credentials, idempotency keys and unsent mails,
    its company when no other user belongs to it; its earlier audit events lose their
    e-mail and client IP; an account_deleted event with the user id only; the farewell
    mail (which holds the address until it is sent)."""
    user_id, company_id = user.id, user.company_id
    # The row first: a change of the account in flight (a log-in recording its event)
    # finishes before, or sees the account gone after (see _change_of); of two deletions
    # at the same moment the second finds it gone (AccountGone, nothing written).
    _lock_account(db.session.connection(), user_id)
    db.session.execute(sa.delete(SigningCredential).where(SigningCredential.user_id == user_id))
    db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.user_id == user_id))
    db.session.execute(sa.delete(OutboxMail).where(OutboxMail.user_id == user_id))
    # Its events, and every event that holds its address (a refused duplicate sign-up, a
    # failed log-in, a reset asked for it), lose the address and the client's IP.
    db.session.execute(
        sa.update(AuditEvent)
        .where(sa.or_(AuditEvent.user_id == user_id, AuditEvent.email == user.email))
        .values(email="", client_ip="")
    )
    db.session.execute(sa.delete(User).where(User.id == user_id))
    if company_id is not None:
        others = sa.select(User.id).where(User.company_id == company_id).limit(1)
        if db.session.scalar(others) is None:
            db.session.execute(sa.delete(Company).where(Company.id == company_id))
    anonymous = AuditContext(client_ip="", request_id=context.request_id)
    _add_audit_event("account_deleted", anonymous, user_id, "")
    if farewell is not None:  # None: suppressed (app.mail.unless_suppressed)
        db.session.add(farewell)
    db.session.commit()
    db.session.expunge_all()
