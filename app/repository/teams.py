"""A company's team: changes of its members, custom roles and invitations.

Every change goes through `team_change`: it locks the company's row first
(core.lock_company, so changes of one team happen one after the other), reads the acting
member again under that lock, and hands the caller a TeamChange whose reads see the state
the change will commit on (the caller checks permissions and the last Admin there) and
whose writes are Core statements, accounts locked with core.lock_account after the
company; the audit events go through audit.write_event; all of it commits at the end of
the `with`, or nothing does. The reads that hold no lock are app.repository.team_reads'.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

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
    insert,
    lock_account,
    lock_company,
)
from app.repository.sessions import open_session, replace_sessions
from app.repository.team_reads import (
    INVITATION_ROWS,
    MEMBERS,
    InvitationRecord,
    MemberRecord,
    Membership,
    RoleRecord,
    company_roles_statement,
    invitation_record,
    member_record,
    role_name_key,
    role_record,
)

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
        return None if row is None else member_record(row)

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
        statement = company_roles_statement(self.company_id).where(ROLES.c.id == role_id)
        row = self.connection.execute(statement).mappings().first()
        return None if row is None else role_record(row)

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
        return None if row is None else invitation_record(row)

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
