"""A company's team as its lists show it: the records of members, roles and invitations,
and the reads that hold no lock (lists, one member, one role, an invitation for its
link). Changes are app.repository.teams'."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from app.models import ADMIN_ROLE_ID, INVITATION_PENDING, as_utc
from app.repository.core import (
    COMPANIES,
    INVITATIONS,
    ROLES,
    USERS,
    end_read_transaction,
    read_connection,
)


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


# A page of the list shows no permission tree: none is read (nor decoded) for it.
MEMBER_LIST = MEMBERS.with_only_columns(
    *(column for column in MEMBERS.selected_columns if column.key != "role_permission")
)


def member_record(row: sa.RowMapping) -> MemberRecord:
    values = {"role_permission": {}, **dict(row)}
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
    statement = MEMBER_LIST
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
    return [member_record(row) for row in rows]


def member_of(*, company_id: str, user_id: str) -> MemberRecord | None:
    """One member of the company, or None (not a member, or no such user)."""
    row = (
        read_connection()
        .execute(MEMBERS.where(USERS.c.id == user_id), {"company_id": company_id})
        .mappings()
        .first()
    )
    end_read_transaction()
    return None if row is None else member_record(row)


def role_record(row: sa.RowMapping) -> RoleRecord:
    return RoleRecord(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        category=row["category"],
        permission=row["permission"],
        company_id=row["company_id"],
        members=int(row.get("members") or 0),
    )


def company_roles_statement(company_id: str) -> sa.Select[Any]:
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
    statement = company_roles_statement(company_id).order_by(
        ROLES.c.company_id.is_not(None), ROLES.c.name_key, ROLES.c.id
    )
    rows = read_connection().execute(statement).mappings().all()
    end_read_transaction()
    return [role_record(row) for row in rows]


def company_role(*, company_id: str, role_id: str) -> RoleRecord | None:
    """The Admin role or one of the company's custom roles by id (None otherwise: the
    Customer role, another company's role, no such role)."""
    statement = company_roles_statement(company_id).where(ROLES.c.id == role_id)
    row = read_connection().execute(statement).mappings().first()
    end_read_transaction()
    return None if row is None else role_record(row)


def any_role(*, role_id: str) -> RoleRecord | None:
    """A role by id, of any company or the system (to tell 403 from 404 on a role path)."""
    row = (
        read_connection().execute(sa.select(ROLES).where(ROLES.c.id == role_id)).mappings().first()
    )
    end_read_transaction()
    return None if row is None else role_record(row)


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


def invitation_record(row: sa.RowMapping) -> InvitationRecord:
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
    return [invitation_record(row) for row in rows]


def invitation_by_id(
    *, invitation_id: str, company_id: str | None = None
) -> InvitationRecord | None:
    """An invitation (of the company, when given), or None."""
    statement = INVITATION_ROWS.where(INVITATIONS.c.id == invitation_id)
    if company_id is not None:
        statement = statement.where(INVITATIONS.c.company_id == company_id)
    row = read_connection().execute(statement).mappings().first()
    end_read_transaction()
    return None if row is None else invitation_record(row)
