"""The shared Core plumbing: the tables, the one lock of an account's row, inserts that
let the database fill what is not given, and reads that hold no transaction."""

from collections.abc import Mapping
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import make_transient_to_detached

from app.extensions import Base as Model
from app.extensions import db
from app.models import (
    AuditEvent,
    Company,
    IdempotencyKey,
    Invitation,
    OutboxMail,
    Role,
    SigningCredential,
    User,
)

USERS = cast(sa.Table, User.__table__)
COMPANIES = cast(sa.Table, Company.__table__)
ROLES = cast(sa.Table, Role.__table__)
CREDENTIALS = cast(sa.Table, SigningCredential.__table__)
AUDIT_EVENTS = cast(sa.Table, AuditEvent.__table__)
OUTBOX = cast(sa.Table, OutboxMail.__table__)
IDEMPOTENCY_KEYS = cast(sa.Table, IdempotencyKey.__table__)
INVITATIONS = cast(sa.Table, Invitation.__table__)


class AccountGone(Exception):
    """The account was deleted while this change was being made: nothing was written."""


class ChangedMeanwhile(Exception):
    """The account's password or address changed (another request committed first) since
    it was read: the change that was to follow from that reading wrote nothing."""


class DuplicateEmail(Exception):
    """An account with this normalised e-mail exists (the unique index said so)."""


class LastAdminStays(Exception):
    """The change would leave a company with members but no Admin: nothing was written."""


class CompanyGone(Exception):
    """The company was deleted (with its last member) while this change was being made:
    nothing was written."""


# The lock alone: a write that changes nothing (built once: the hottest of its kind).
LOCK_ACCOUNT = sa.update(USERS).where(USERS.c.id == sa.bindparam("user_id")).values(id=USERS.c.id)
ACCOUNT_EXISTS = sa.select(USERS.c.id).where(USERS.c.id == sa.bindparam("user_id"))


def lock_account(
    connection: sa.Connection,
    user_id: str,
    *,
    values: Mapping[str, Any] | None = None,
    unchanged_since: int | None = None,
) -> None:
    """The first statement of every change of an account: one UPDATE of its row (the
    `values` given, or nothing) that finds it, locks it until the commit (Postgres: a
    change or a deletion of the same account waits; SQLite: this transaction holds the
    write lock), and checks it is still there: AccountGone, with nothing written, when it
    was deleted meanwhile. With `unchanged_since`, the row is written only where its
    security version is still that one, and counted one change further: of several
    requests acting on one reading exactly one writes, the others get ChangedMeanwhile."""
    if values is None and unchanged_since is None:
        result = connection.execute(LOCK_ACCOUNT, {"user_id": user_id})
    else:
        statement = sa.update(USERS).where(USERS.c.id == user_id)
        changes = dict(values or {"id": USERS.c.id})
        if unchanged_since is not None:
            statement = statement.where(USERS.c.security_version == unchanged_since)
            changes["security_version"] = unchanged_since + 1
        result = connection.execute(statement.values(changes))
    if cast(sa.CursorResult[Any], result).rowcount != 1:
        exists = unchanged_since is not None and (
            connection.execute(ACCOUNT_EXISTS, {"user_id": user_id}).first() is not None
        )
        db.session.rollback()
        raise ChangedMeanwhile() if exists else AccountGone()


def lock_account_reading(
    connection: sa.Connection, user_id: str, *columns: sa.ColumnElement[Any]
) -> sa.Row[Any]:
    """lock_account, and the account's `columns` as they are under the lock, in the same
    statement (UPDATE ... RETURNING: one round trip where a lock and a read took two)."""
    row = connection.execute(LOCK_ACCOUNT.returning(*columns), {"user_id": user_id}).first()
    if row is None:
        db.session.rollback()
        raise AccountGone()
    return row


LOCK_COMPANY = (
    sa.update(COMPANIES)
    .where(COMPANIES.c.id == sa.bindparam("company_id"))
    .values(id=COMPANIES.c.id)
)


def lock_company(connection: sa.Connection, company_id: str) -> None:
    """The first statement of every change of a company's team (its members' roles and
    membership, its roles, its invitations, its fields) and of an account deletion in a
    company: locks the company's row until the commit, so such changes of one company
    happen one after the other and each checks its rules (permissions, the last Admin)
    on the state it commits on. The account rows it changes are locked after it (always
    in this order: company, then accounts). CompanyGone, with nothing written, when the
    company was deleted meanwhile."""
    result = connection.execute(LOCK_COMPANY, {"company_id": company_id})
    if cast(sa.CursorResult[Any], result).rowcount != 1:
        db.session.rollback()
        raise CompanyGone()


_INSERTS: dict[sa.Table, sa.Insert] = {}


def insert(connection: sa.Connection, *instances: Model) -> None:
    """INSERT new ORM objects with Core: the columns given, and what the columns'
    defaults and the database fill for the rest (read back, RETURNING where the database
    makes a value); then make them detached as if loaded: usable after the commit, never
    flushed. A column nothing fills is None, as the database has it."""
    for instance in instances:
        table = cast(sa.Table, instance.__table__)
        given = instance.__dict__
        row = {column.key: given[column.key] for column in table.columns if column.key in given}
        statement = _INSERTS.get(table)
        if statement is None:
            statement = _INSERTS[table] = table.insert().return_defaults()
        result = connection.execute(statement, row)
        # What was sent, the Python-side defaults included (one row: a mapping).
        filled = dict(cast(Mapping[str, Any], result.last_inserted_params()))
        returned = result.returned_defaults  # what the database made (ids, server defaults)
        if returned is not None:
            filled.update(returned._asdict())
        for column in table.columns:
            if column.key not in given:
                setattr(instance, column.key, filled.get(column.key))
    for instance in instances:
        make_transient_to_detached(instance)


def detached(model: type[Model], **values: Any) -> Any:
    """An ORM object of a row read with Core: detached, as if loaded by a query."""
    instance = model(**values)
    make_transient_to_detached(instance)
    return instance


# On Postgres a read that opens the session's work (then ends it: end_read_transaction)
# runs in autocommit: the statement alone, without the BEGIN and COMMIT round trips
# (bench/README.md, "Figures behind the code's choices"). The pool sets the connection
# back on its return. SQLite's driver begins no transaction for a read: nothing to spare.
AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


def reads_in_autocommit(dialect: sa.Dialect) -> bool:
    """Whether a read that ends at once may run without a transaction here."""
    return dialect.name == "postgresql"


def read_connection() -> sa.Connection:
    """The session's connection for a read it ends right after (not in autocommit when
    the session is in a transaction already)."""
    session = db.session()
    if not session.in_transaction() and reads_in_autocommit(db.engine.dialect):
        return session.connection(execution_options=AUTOCOMMIT)
    return session.connection()


# Set in the session's info while a change holds its locks (teams.team_change).
LOCKED = "lumyri_locked_change"


def end_read_transaction() -> None:
    """Close the read transaction so no connection sits idle in a transaction while the
    caller hashes a password (far longer than a read); objects already loaded stay usable.
    Never inside a change that holds locks: that would commit half of it."""
    if db.session.info.get(LOCKED):
        raise RuntimeError("a read that ends its transaction, inside a locked change")
    db.session.commit()


def read_row(statement: sa.Select[Any], params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first row of a read, as a dict (or None), the read transaction closed."""
    row = read_connection().execute(statement, params).first()
    end_read_transaction()
    return None if row is None else row._asdict()


def ping() -> None:
    """Read the seeded roles; raises when the database cannot be reached or is not
    migrated (a service that cannot sign anyone up is not ready)."""
    db.session.execute(sa.select(ROLES.c.id).limit(1)).all()
    db.session.rollback()


def rollback() -> None:
    """Drop whatever the current transaction holds (used after errors)."""
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - a dead connection must not hide the original error
        pass
