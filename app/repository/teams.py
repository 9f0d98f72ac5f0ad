"""A company's team: its members, custom roles and invitations.

Reads (lists, one member, one role, an invitation for its link) hold no lock. Every
change goes through `team_change`: it locks the company's row first (core.lock_company,
so changes of one team happen one after the other), reads the acting member again under
that lock, and hands the caller a TeamChange whose reads see the state the change will
commit on (the caller checks permissions and the last Admin there) and whose writes are
Core statements, accounts locked with core.lock_account after the company; the audit
events go through audit.write_event; all of it commits at the end of the `with`, or
nothing does.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import Base as Model
from app.extensions import db
from app.models import (
    ADMIN_ROLE_ID,
    CUSTOMER_ROLE_ID,
    INVITATION_PENDING,
    STATE_ACTIVED,
    SigningCredential,
    User,
    as_utc,
    utc_now,
)
from app.repository.audit import AuditContext, write_event
from app.repository.core import (
    COMPANIES,
    CREDENTIALS,
    INVITATIONS,
    LOCKED,
    ROLES,
    USERS,
    AccountGone,
    DuplicateEmail,
    end_read_transaction,
    insert,
    lock_account,
    lock_company,
    read_connection,
)
from app.repository.sessions import open_session, replace_sessions


def role_name_key(name: str) -> str:
    """A role name's comparison form: NFKC, case folded (`ADMIN`, `admin` and `Ａdmin`
    are one name)."""
    return unicodedata.normalize("NFKC", name).casefold()


@dataclass(frozen=True)
class RoleRecord:
    """A role as the team endpoints show it (`members`: how many members have it)."""

    id: str
    name: str
    description: str
    category: str
    permission: dict[str, Any]
    company_id: str | None
    members: int = 0


@dataclass(frozen=True)
class MemberRecord:
    """A member of a company with its role (and the role's tree, for the rules)."""

    id: str
    first_name: str
    last_name: str
    email: str
    avatar: str
    language: str
    email_verified_at: datetime | None
    joined_at: datetime | None
    role_id: str
    role_name: str
    role_category: str
    role_permission: dict[str, Any]


@dataclass(frozen=True)
class InvitationRecord:
    """An invitation with what its answers show: the role (its current name while it
    exists, the one it had otherwise) and the inviter (None once that account is gone)."""

    id: str
    company_id: str
    email: str
    email_key: str
    role_id: str
    role_name: str
    status: str  # as stored: pending, accepted or revoked
    link_version: int
    created_at: datetime
    expires_at: datetime
    invited_by: dict[str, str] | None
    company_name: str = ""


class Membership(NamedTuple):
    """An account's company (None: none) and address (its comparison form), as locked."""

    company_id: str | None
    email_key: str


# --- reads ------------------------------------------------------------------------------

MEMBERS = (
    sa.select(
        USERS.c.id,
        USERS.c.first_name,
        USERS.c.last_name,
        USERS.c.email,
        USERS.c.avatar,
        USERS.c.language,
        USERS.c.email_verified_at,
        USERS.c.joined_at,
        ROLES.c.id.label("role_id"),
        ROLES.c.name.label("role_name"),
        ROLES.c.category.label("role_category"),
        ROLES.c.permission.label("role_permission"),
    )
    .select_from(USERS.join(ROLES, ROLES.c.id == USERS.c.role_id))
    .where(USERS.c.company_id == sa.bindparam("company_id"))
)


def _member(row: sa.RowMapping) -> MemberRecord:
    values = dict(row)
    for key in ("email_verified_at", "joined_at"):
        if values[key] is not None:
            values[key] = as_utc(values[key])
    return MemberRecord(**values)


def member_page(
    *, company_id: str, query: str, after: tuple[datetime, str] | None, limit: int
) -> list[MemberRecord]:
    """Up to `limit` members, oldest first, after a (joined_at, id) position; `query`, if
    given, a case-insensitive substring of the first name, last name or address. One
    statement, whatever the company's size (the index on (company_id, joined_at, id))."""
    statement = MEMBERS
    if query:
        needle = query.lower()
        statement = statement.where(
            sa.or_(
                *(
                    sa.func.lower(column).contains(needle, autoescape=True)
                    for column in (USERS.c.first_name, USERS.c.last_name, USERS.c.email)
                )
            )
        )
    if after is not None:
        statement = statement.where(sa.tuple_(USERS.c.joined_at, USERS.c.id) > sa.tuple_(*after))
    statement = statement.order_by(USERS.c.joined_at, USERS.c.id).limit(limit)
    rows = read_connection().execute(statement, {"company_id": company_id}).mappings().all()
    end_read_transaction()
    return [_member(row) for row in rows]


def member_of(*, company_id: str, user_id: str) -> MemberRecord | None:
    """One member of the company, or None (not a member, or no such user)."""
    row = (
        read_connection()
        .execute(MEMBERS.where(USERS.c.id == user_id), {"company_id": company_id})
        .mappings()
        .first()
    )
    end_read_transaction()
    return None if row is None else _member(row)


def _role(row: sa.RowMapping) -> RoleRecord:
    return RoleRecord(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        category=row["category"],
        permission=row["permission"],
        company_id=row["company_id"],
        members=int(row.get("members") or 0),
    )


def _company_roles_statement(company_id: str) -> sa.Select[Any]:
    members = (
        sa.select(sa.func.count())
        .select_from(USERS)
        .where(USERS.c.role_id == ROLES.c.id, USERS.c.company_id == company_id)
        .scalar_subquery()
    )
    return sa.select(
        ROLES.c.id,
        ROLES.c.name,
        ROLES.c.description,
        ROLES.c.category,
        ROLES.c.permission,
        ROLES.c.company_id,
        members.label("members"),
    ).where(sa.or_(ROLES.c.id == ADMIN_ROLE_ID, ROLES.c.company_id == company_id))


def company_roles(*, company_id: str) -> list[RoleRecord]:
    """The roles a member of the company may have: the Admin role first, then the
    company's custom roles by name, each with how many members have it."""
    statement = _company_roles_statement(company_id).order_by(
        ROLES.c.company_id.is_not(None), ROLES.c.name_key, ROLES.c.id
    )
    rows = read_connection().execute(statement).mappings().all()
    end_read_transaction()
    return [_role(row) for row in rows]


def company_role(*, company_id: str, role_id: str) -> RoleRecord | None:
    """The Admin role or one of the company's custom roles by id (None otherwise: the
    Customer role, another company's role, no such role)."""
    statement = _company_roles_statement(company_id).where(ROLES.c.id == role_id)
    row = read_connection().execute(statement).mappings().first()
    end_read_transaction()
    return None if row is None else _role(row)


def any_role(*, role_id: str) -> RoleRecord | None:
    """A role by id, of any company or the system (to tell 403 from 404 on a role path)."""
    row = (
        read_connection().execute(sa.select(ROLES).where(ROLES.c.id == role_id)).mappings().first()
    )
    end_read_transaction()
    return None if row is None else _role(row)


INVITER = USERS.alias("inviter")
INVITATION_ROWS = sa.select(
    INVITATIONS,
    sa.func.coalesce(ROLES.c.name, INVITATIONS.c.role_name).label("current_role_name"),
    INVITER.c.id.label("inviter_id"),
    INVITER.c.first_name.label("inviter_first_name"),
    INVITER.c.last_name.label("inviter_last_name"),
    COMPANIES.c.name.label("company_name"),
).select_from(
    INVITATIONS.outerjoin(ROLES, ROLES.c.id == INVITATIONS.c.role_id)
    .outerjoin(INVITER, INVITER.c.id == INVITATIONS.c.invited_by)
    .join(COMPANIES, COMPANIES.c.id == INVITATIONS.c.company_id)
)


def _invitation(row: sa.RowMapping) -> InvitationRecord:
    inviter = None
    if row["inviter_id"] is not None:
        inviter = {
            "id": row["inviter_id"],
            "first_name": row["inviter_first_name"],
            "last_name": row["inviter_last_name"],
        }
    return InvitationRecord(
        id=row["id"],
        company_id=row["company_id"],
        email=row["email"],
        email_key=row["email_key"],
        role_id=row["role_id"],
        role_name=row["current_role_name"],
        status=row["status"],
        link_version=row["link_version"],
        created_at=as_utc(row["created_at"]),
        expires_at=as_utc(row["expires_at"]),
        invited_by=inviter,
        company_name=row["company_name"],
    )


def invitation_page(
    *,
    company_id: str,
    status: str | None,
    now: datetime,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[InvitationRecord]:
    """Up to `limit` invitations of the company, newest first, before a (created_at, id)
    position, optionally of one shown status (`expired`: pending past expires_at)."""
    statement = INVITATION_ROWS.where(INVITATIONS.c.company_id == company_id)
    if status == "pending":
        statement = statement.where(
            INVITATIONS.c.status == INVITATION_PENDING, INVITATIONS.c.expires_at > now
        )
    elif status == "expired":
        statement = statement.where(
            INVITATIONS.c.status == INVITATION_PENDING, INVITATIONS.c.expires_at <= now
        )
    elif status is not None:
        statement = statement.where(INVITATIONS.c.status == status)
    if before is not None:
        statement = statement.where(
            sa.tuple_(INVITATIONS.c.created_at, INVITATIONS.c.id) < sa.tuple_(*before)
        )
    statement = statement.order_by(INVITATIONS.c.created_at.desc(), INVITATIONS.c.id.desc()).limit(
        limit
    )
    rows = read_connection().execute(statement).mappings().all()
    end_read_transaction()
    return [_invitation(row) for row in rows]


def invitation_by_id(
    *, invitation_id: str, company_id: str | None = None
) -> InvitationRecord | None:
    """An invitation (of the company, when given), or None."""
    statement = INVITATION_ROWS.where(INVITATIONS.c.id == invitation_id)
    if company_id is not None:
        statement = statement.where(INVITATIONS.c.company_id == company_id)
    row = read_connection().execute(statement).mappings().first()
    end_read_transaction()
    return None if row is None else _invitation(row)


# --- changes ----------------------------------------------------------------------------


class TeamChange:
    """One change of a company's team, under its company's lock (see team_change)."""

    def __init__(
        self,
        connection: sa.Connection,
        company_id: str,
        actor_id: str | None,
        context: AuditContext,
    ) -> None:
        self.connection = connection
        self.company_id = company_id
        self.context = context
        self.actor: MemberRecord | None = None
        if actor_id is not None:
            self.actor = self.member(actor_id)
            if self.actor is None:  # removed from the company, or deleted, meanwhile
                raise AccountGone()

    # reads under the lock
    def member(self, user_id: str) -> MemberRecord | None:
        """A member of this company as it is now."""
        row = (
            self.connection.execute(
                MEMBERS.where(USERS.c.id == user_id), {"company_id": self.company_id}
            )
            .mappings()
            .first()
        )
        return None if row is None else _member(row)

    def admins(self) -> int:
        """How many members have the Admin role."""
        count = self.connection.execute(
            sa.select(sa.func.count())
            .select_from(USERS)
            .where(USERS.c.company_id == self.company_id, USERS.c.role_id == ADMIN_ROLE_ID)
        ).scalar_one()
        return int(count)

    def members_besides(self, user_id: str) -> bool:
        """Whether the company has a member other than this one."""
        row = self.connection.execute(
            sa.select(USERS.c.id)
            .where(USERS.c.company_id == self.company_id, USERS.c.id != user_id)
            .limit(1)
        ).first()
        return row is not None

    def role(self, role_id: str) -> RoleRecord | None:
        """The Admin role or one of this company's custom roles, with its member count."""
        statement = _company_roles_statement(self.company_id).where(ROLES.c.id == role_id)
        row = self.connection.execute(statement).mappings().first()
        return None if row is None else _role(row)

    def role_name_taken(self, name: str, *, besides: str | None = None) -> bool:
        """Whether another custom role of this company has this name (by case folding)."""
        statement = sa.select(ROLES.c.id).where(
            ROLES.c.company_id == self.company_id, ROLES.c.name_key == role_name_key(name)
        )
        if besides is not None:
            statement = statement.where(ROLES.c.id != besides)
        return self.connection.execute(statement.limit(1)).first() is not None

    def role_in_use(self, role_id: str) -> bool:
        """Whether a member or a pending (or expired) invitation has the role."""
        member = sa.select(USERS.c.id).where(
            USERS.c.company_id == self.company_id, USERS.c.role_id == role_id
        )
        invited = sa.select(INVITATIONS.c.id).where(
            INVITATIONS.c.company_id == self.company_id,
            INVITATIONS.c.role_id == role_id,
            INVITATIONS.c.status == INVITATION_PENDING,
        )
        return any(
            self.connection.execute(statement.limit(1)).first() is not None
            for statement in (member, invited)
        )

    def account_with_email(self, email_key: str) -> bool:
        """Whether any account has this address (its comparison form)."""
        statement = sa.select(USERS.c.id).where(USERS.c.email_key == email_key)
        return self.connection.execute(statement).first() is not None

    def member_with_email(self, email_key: str) -> bool:
        """Whether a member of this company has this address (its comparison form)."""
        statement = sa.select(USERS.c.id).where(
            USERS.c.company_id == self.company_id, USERS.c.email_key == email_key
        )
        return self.connection.execute(statement).first() is not None

    def pending_invitation_for(
        self, email_key: str, *, now: datetime, besides: str | None = None
    ) -> bool:
        """Whether a pending, unexpired invitation of this company has this address."""
        statement = sa.select(INVITATIONS.c.id).where(
            INVITATIONS.c.company_id == self.company_id,
            INVITATIONS.c.email_key == email_key,
            INVITATIONS.c.status == INVITATION_PENDING,
            INVITATIONS.c.expires_at > now,
        )
        if besides is not None:
            statement = statement.where(INVITATIONS.c.id != besides)
        return self.connection.execute(statement.limit(1)).first() is not None

    def invitation(self, invitation_id: str) -> InvitationRecord | None:
        """One invitation of this company as it is now."""
        row = (
            self.connection.execute(
                INVITATION_ROWS.where(
                    INVITATIONS.c.id == invitation_id,
                    INVITATIONS.c.company_id == self.company_id,
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else _invitation(row)

    def account_company(self, user_id: str) -> Membership:
        """Lock an account (after the company: AccountGone when it was deleted) and read
        its company and address as they are now."""
        lock_account(self.connection, user_id)
        row = self.connection.execute(
            sa.select(USERS.c.company_id, USERS.c.email_key).where(USERS.c.id == user_id)
        ).one()
        return Membership(row.company_id, row.email_key)

    # writes
    def event(
        self,
        event: str,
        *,
        target_id: str | None = None,
        detail: str = "",
        user_id: str | None = None,
        email: str = "",
    ) -> None:
        """An audit event of this change, naming who acted (the acting member, unless
        `user_id` names another: an account accepting an invitation) and its target."""
        actor = self.actor
        if user_id is None and actor is not None:
            user_id, email = actor.id, actor.email
        write_event(
            self.connection,
            event=event,
            context=self.context,
            user_id=user_id,
            email=email,
            target_id=target_id,
            detail=detail,
        )

    def set_member_role(self, user_id: str, role_id: str) -> None:
        """Give a member another role."""
        lock_account(self.connection, user_id, values={"role_id": role_id})

    def remove_member(self, user_id: str) -> None:
        """The member leaves the company: no company, the Customer role, ACTIVED, every
        session ended (its signing credentials deleted)."""
        lock_account(
            self.connection,
            user_id,
            values={
                "company_id": None,
                "role_id": CUSTOMER_ROLE_ID,
                "state": STATE_ACTIVED,
                "joined_at": None,
            },
        )
        self.connection.execute(sa.delete(CREDENTIALS).where(CREDENTIALS.c.user_id == user_id))

    def join(self, user_id: str, *, role_id: str, verify: bool) -> SigningCredential:
        """An account (locked by account_company) joins with a role; every session of it
        ends and a new one starts (returned); its address is verified when the
        invitation's link proved it."""
        values: dict[str, Any] = {
            "company_id": self.company_id,
            "role_id": role_id,
            "state": STATE_ACTIVED,
            "joined_at": utc_now(),
        }
        if verify:
            values["email_verified_at"] = sa.func.coalesce(USERS.c.email_verified_at, utc_now())
        self.connection.execute(sa.update(USERS).where(USERS.c.id == user_id).values(values))
        return replace_sessions(self.connection, user_id, self.context)

    def start_session(self, user_id: str) -> SigningCredential:
        """A new session of an account this change created."""
        return open_session(self.connection, user_id, self.context)

    def add(self, *rows: Model) -> None:
        """New rows (a role, an invitation, an account and its credential, a mail);
        DuplicateEmail when a new account's address has one (the unique index)."""
        try:
            insert(self.connection, *rows)
        except IntegrityError:
            if any(isinstance(row, User) for row in rows):
                raise DuplicateEmail() from None
            raise

    def update_role(self, role_id: str, values: dict[str, Any]) -> None:
        """Change a custom role of this company (its name key follows its name)."""
        if "name" in values:
            values = {**values, "name_key": role_name_key(values["name"])}
            # The name its invitations keep, for when the role is deleted after they close.
            self.connection.execute(
                sa.update(INVITATIONS)
                .where(
                    INVITATIONS.c.role_id == role_id, INVITATIONS.c.company_id == self.company_id
                )
                .values(role_name=values["name"])
            )
        self.connection.execute(
            sa.update(ROLES)
            .where(ROLES.c.id == role_id, ROLES.c.company_id == self.company_id)
            .values(values)
        )

    def delete_role(self, role_id: str) -> None:
        """Delete a custom role of this company (in use: the caller checked)."""
        self.connection.execute(
            sa.delete(ROLES).where(ROLES.c.id == role_id, ROLES.c.company_id == self.company_id)
        )

    def update_invitation(self, invitation_id: str, values: dict[str, Any]) -> None:
        """Change an invitation of this company (its status, link version, expiry)."""
        self.connection.execute(
            sa.update(INVITATIONS)
            .where(INVITATIONS.c.id == invitation_id, INVITATIONS.c.company_id == self.company_id)
            .values(values)
        )

    def update_company(self, values: dict[str, Any]) -> None:
        """Change the company's fields."""
        self.connection.execute(
            sa.update(COMPANIES).where(COMPANIES.c.id == self.company_id).values(values)
        )


@contextmanager
def team_change(
    *, company_id: str, actor_id: str | None, context: AuditContext
) -> Iterator[TeamChange]:
    """Lock the company (CompanyGone when it was deleted meanwhile), read the actor again
    (AccountGone when it is no longer a member), let the caller check and write, commit;
    roll back everything if anything raised."""
    connection = db.session.connection()
    lock_company(connection, company_id)
    db.session.info[LOCKED] = True
    try:
        yield TeamChange(connection, company_id, actor_id, context)
        db.session.info.pop(LOCKED, None)
        db.session.commit()
    except BaseException:
        db.session.info.pop(LOCKED, None)
        db.session.rollback()
        raise
