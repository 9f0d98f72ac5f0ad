"""Accounts and their signing credentials: creating an account, and every read of one
(by address, by id, by a token's credential; the system roles, read once per process)."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple, cast

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from app.email_address import email_key
from app.extensions import db
from app.models import (
    ADMIN_ROLE,
    CUSTOMER_ROLE,
    STATE_ACTIVED,
    STATE_CARD_NOT_FOUND,
    Company,
    OutboxMail,
    Role,
    SigningCredential,
    User,
    as_utc,
    new_uuid,
    utc_now,
)
from app.repository.audit import AuditContext, write_event
from app.repository.core import (
    AUTOCOMMIT,
    COMPANIES,
    CREDENTIALS,
    ROLES,
    USERS,
    DuplicateEmail,
    detached,
    end_read_transaction,
    insert,
    read_connection,
    read_row,
    reads_in_autocommit,
)
from app.repository.idempotency import KeyTakenOver, complete_in_transaction
from app.repository.sessions import new_session

ROLES_KEY = "lumyri_system_roles"


@dataclass(frozen=True)
class NewAccount:
    """What a sign-up gives of the account it creates (validated by its schema)."""

    first_name: str
    last_name: str
    email: str


class Account(NamedTuple):
    """A user and the signing credential its next token is signed with."""

    user: User
    credential: SigningCredential


# The hot paths (sign-up, log-in, a bearer token's account) read and write with Core
# statements built once, not through the ORM (bench/README.md, "Figures behind the
# code's choices").
# What they return are ORM objects all the same, detached and fully loaded.
EMAIL_KEY_TAKEN = sa.select(USERS.c.id).where(USERS.c.email_key == sa.bindparam("email_key"))
# A user with its company and its role (a system role, or its company's custom role).
USER_ROW = sa.select(
    USERS,
    *(column.label(f"company__{column.key}") for column in COMPANIES.c),
    *(column.label(f"role__{column.key}") for column in ROLES.c),
).select_from(
    USERS.outerjoin(COMPANIES, COMPANIES.c.id == USERS.c.company_id).join(
        ROLES, ROLES.c.id == USERS.c.role_id
    )
)
USER_BY_EMAIL_KEY = USER_ROW.where(USERS.c.email_key == sa.bindparam("email_key"))
USER_BY_ID = USER_ROW.where(USERS.c.id == sa.bindparam("user_id"))
USER_BY_CREDENTIAL = (
    USER_ROW.add_columns(
        CREDENTIALS.c.id.label("credential__id"),
        CREDENTIALS.c.created_at.label("credential__created_at"),
        CREDENTIALS.c.last_used_at.label("credential__last_used_at"),
        CREDENTIALS.c.expires_at.label("credential__expires_at"),
    )
    .join(CREDENTIALS, CREDENTIALS.c.user_id == USERS.c.id)
    .where(CREDENTIALS.c.key == sa.bindparam("key"))
)
CREDENTIAL_OF_USER = sa.select(CREDENTIALS.c.key, CREDENTIALS.c.created_at).where(
    CREDENTIALS.c.id == sa.bindparam("credential_id"),
    CREDENTIALS.c.user_id == sa.bindparam("user_id"),
)


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
            rows = connection.execute(sa.select(ROLES)).all()
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
    return cast(Role, detached(Role, **{**values, "permission": json.loads(values["permission"])}))


def system_role(name: str) -> Role:
    """The system role with this name, as a fresh detached copy (see _system_roles)."""
    return _role_copy(_system_roles().by_name.get(name), name)


def system_role_by_id(role_id: str) -> Role:
    """The system role with this id, as a fresh detached copy (see _system_roles)."""
    return _role_copy(_system_roles().by_id.get(role_id), role_id)


def email_exists(email: str) -> bool:
    """True when an account has this mailbox (the canonical e-mail in any spelling)."""
    found = read_connection().execute(EMAIL_KEY_TAKEN, {"email_key": email_key(email)}).first()
    end_read_transaction()
    return found is not None


class AccountKind(NamedTuple):
    """What a sign-up of one kind creates: the role, the state, and whether a company."""

    role_name: str
    state: str
    with_company: bool


# An admin: a new company, the Admin role, CARD_NOT_FOUND; a customer: no company, the
# Customer role, ACTIVED (spelled as in the platform's document).
KINDS = {
    "admin": AccountKind(ADMIN_ROLE, STATE_CARD_NOT_FOUND, with_company=True),
    "customer": AccountKind(CUSTOMER_ROLE, STATE_ACTIVED, with_company=False),
}


def create_account(
    *,
    kind: Literal["admin", "customer"],
    record: NewAccount,
    password_hash: str,
    context: AuditContext,
    mail: OutboxMail | None = None,
) -> Account:
    """Write user, company (an admin's), signing credential, the audit event, the
    welcome mail (if any) and the Idempotency-Key's answer (if the request has a key:
    idempotency.COMPLETED_WITH_ACCOUNT) in one transaction; DuplicateEmail when the
    address has an account (the unique index on its comparison form settles a race
    between two sign-ups); KeyTakenOver when the key is no longer the request's."""
    role_name, state, with_company = KINDS[kind]
    role = system_role(role_name)
    user = User(
        id=new_uuid(),
        first_name=record.first_name,
        last_name=record.last_name,
        email=record.email,
        email_key=email_key(record.email),
        password_hash=password_hash,
        state=state,
        role_id=role.id,
    )
    credential = new_session(user.id, context)
    company = Company(id=new_uuid()) if with_company else None
    rows: list[Any] = [user, credential]
    if company is not None:
        user.company_id = company.id
        user.joined_at = utc_now()
        rows.insert(0, company)
    if mail is not None:
        mail.user_id = user.id
        rows.append(mail)
    try:
        connection = db.session.connection()
        insert(connection, *rows)
        write_event(
            connection, event="account_created", context=context, user_id=user.id, email=user.email
        )
        complete_in_transaction(connection, user_id=user.id, credential_id=credential.id)
        db.session.commit()
    except KeyTakenOver:
        db.session.rollback()
        raise
    except IntegrityError:
        db.session.rollback()
        if email_exists(record.email):
            raise DuplicateEmail() from None
        raise
    set_committed_value(user, "role", role)
    set_committed_value(user, "company", company)
    set_committed_value(credential, "user", user)
    return Account(user, credential)


def find_credential(key: str) -> SigningCredential | None:
    """The signing credential with this key and its account (see _user_of), or None:
    read with Core on every request with a bearer token."""
    values = read_row(USER_BY_CREDENTIAL, {"key": key})
    if values is None:
        return None
    session = {
        name: values.pop(f"credential__{name}")
        for name in ("id", "created_at", "last_used_at", "expires_at")
    }
    user = _user_of(values)
    credential: SigningCredential = detached(SigningCredential, key=key, user_id=user.id, **session)
    set_committed_value(credential, "user", user)
    return credential


def live_credential(*, credential_id: str, user: User) -> SigningCredential | None:
    """The account's signing credential with this id while it lives (None once it was
    deleted: a log-out, a new password, a deletion); never creates one."""
    values = read_row(CREDENTIAL_OF_USER, {"credential_id": credential_id, "user_id": user.id})
    if values is None:
        return None
    credential: SigningCredential = detached(
        SigningCredential,
        id=credential_id,
        key=values["key"],
        user_id=user.id,
        created_at=as_utc(values["created_at"]),
    )
    set_committed_value(credential, "user", user)
    return credential


class CredentialIdentity(NamedTuple):
    """What /verify needs of a credential's account, read in one small query: the user,
    the company, the role (id, name, permission tree) and the session (the credential)."""

    user_id: str
    company_id: str | None
    role_id: str
    role: str
    permission: dict[str, Any]
    email_verified_at: datetime | None
    session_id: str
    last_used_at: datetime | None


# One statement, built once, for /verify's cache miss (bench/README.md, "Figures behind
# the code's choices").
CREDENTIAL_IDENTITY = (
    sa.select(
        USERS.c.id,
        USERS.c.company_id,
        ROLES.c.id,
        ROLES.c.name,
        ROLES.c.permission,
        USERS.c.email_verified_at,
        CREDENTIALS.c.id,
        CREDENTIALS.c.last_used_at,
    )
    .join(CREDENTIALS, CREDENTIALS.c.user_id == USERS.c.id)
    .join(ROLES, ROLES.c.id == USERS.c.role_id)
    .where(CREDENTIALS.c.key == sa.bindparam("key"))
)


def credential_identity(key: str) -> CredentialIdentity | None:
    """The account of a signing credential, read on a connection of its own without the
    ORM session (the hot path of /verify on a cache miss)."""
    with db.engine.connect() as connection:
        if reads_in_autocommit(connection.dialect):
            connection = connection.execution_options(**AUTOCOMMIT)
        row = connection.execute(CREDENTIAL_IDENTITY, {"key": key}).first()
    return None if row is None else CredentialIdentity(*row)


def _read_user(statement: sa.Select[Any], params: dict[str, Any]) -> User | None:
    """The user of a USER_ROW statement, or None: read with Core, fully loaded (role and
    company) and detached, so no commit expires it."""
    values = read_row(statement, params)
    return None if values is None else _user_of(values)


def _user_of(values: dict[str, Any]) -> User:
    """A detached user (with role and company) from the columns of USER_ROW (nothing
    attaches it: every change is a Core statement)."""
    company_values = {
        column.key: values.pop(f"company__{column.key}") for column in COMPANIES.columns
    }
    role_values = {column.key: values.pop(f"role__{column.key}") for column in ROLES.columns}
    user: User = detached(User, **values)
    company = detached(Company, **company_values) if user.company_id else None
    set_committed_value(user, "company", company)
    set_committed_value(user, "role", detached(Role, **role_values))
    return user


def account_by_email(email: str) -> User | None:
    """The account with this mailbox (the canonical e-mail in any spelling), or None."""
    return _read_user(USER_BY_EMAIL_KEY, {"email_key": email_key(email)})


def account_by_id(user_id: str) -> User | None:
    """The account with this id, or None."""
    return _read_user(USER_BY_ID, {"user_id": user_id})
