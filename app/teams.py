"""Companies and teams: members, invitations and custom roles (the contract's "Companies
and teams").

The order of steps and the rules live here; every read and write is the repository's.
Each change checks its rules twice: first on the account the bearer token stood for (so
a request that may not act is refused in the contract's order of checks, before its
body's rules), then inside `repository.team_change`, under the company's lock, on the
state the change commits on (so of two racing changes the second sees the first). The
last Admin is kept because every change that can remove one (a demotion, a removal, a
leave, an account deletion) counts the company's Admins under that same lock.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from app import cursors, mail, permissions, repository
from app.accounts import audit_context
from app.errors import (
    Forbidden,
    InvalidToken,
    LastAdmin,
    NotFound,
    PermissionNotHeld,
    ValidationFailed,
)
from app.models import (
    ADMIN_ROLE_ID,
    User,
    rfc3339,
    utc_now,
)
from app.repository import MemberRecord, TeamChange

UUID_PATTERN = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
ROLE_ID_UNKNOWN = "Not a role of this company: the Admin role's id or a custom role's."


# --- who may act ------------------------------------------------------------------------


def company_of(user: User) -> str:
    """The company of a member; a customer (no company): 403 FORBIDDEN."""
    if user.company_id is None:
        raise Forbidden("Only a member of a company may do this.")
    return user.company_id


def require(user: User, leaf: str) -> str:
    """The company of a member whose role holds `leaf`; 403 FORBIDDEN otherwise (checked
    on the account the token stands for, before the body's rules)."""
    company_id = company_of(user)
    if leaf not in permissions.leaves(user.role.permission):
        raise Forbidden(f"This needs the permission {leaf}.")
    return company_id


def _actor(team: TeamChange) -> MemberRecord:
    """The acting member as it is under the company's lock."""
    if team.actor is None:  # pragma: no cover - every caller passes an actor
        raise InvalidToken()
    return team.actor


def require_under_lock(team: TeamChange, leaf: str) -> None:
    if leaf not in permissions.leaves(_actor(team).role_permission):
        raise Forbidden(f"This needs the permission {leaf}.")


def not_beyond(team: TeamChange, *trees: Mapping[str, Any]) -> None:
    """Nobody grants what they do not hold, nor acts on those who hold more: 403
    PERMISSION_NOT_HELD when a tree has a `true` the actor's role lacks."""
    held = permissions.leaves(_actor(team).role_permission)
    if any(permissions.leaves(tree) - held for tree in trees):
        raise PermissionNotHeld()


def _keep_an_admin(team: TeamChange, member: MemberRecord) -> None:
    """409 LAST_ADMIN when the member is the company's only Admin."""
    if member.role_id == ADMIN_ROLE_ID and team.admins() <= 1:
        raise LastAdmin()


def path_id(value: str, what: str) -> str:
    """An id from a path in its canonical form; 404 for anything that is not a UUID."""
    if not UUID_PATTERN.fullmatch(value):
        raise NotFound(f"No such {what}.")
    return value.lower()


def role_id_errors(user: User, body: Mapping[str, Any]) -> dict[str, list[str]]:
    """The body's `role_id`, if it is a string, must be the Admin role or one of this
    company's custom roles (reported with the body's other rules)."""
    role_id = body.get("role_id")
    if not isinstance(role_id, str) or not role_id:
        return {}  # the schema reports it
    known = UUID_PATTERN.fullmatch(role_id) and repository.company_role(
        company_id=company_of(user), role_id=role_id.lower()
    )
    return {} if known else {"role_id": [ROLE_ID_UNKNOWN]}


@contextmanager
def team(user: User) -> Iterator[TeamChange]:
    """A change of the user's company's team, acted by the user (repository.team_change);
    401 INVALID_TOKEN when the actor was removed or deleted meanwhile (its token is no
    longer good)."""
    try:
        with repository.team_change(
            company_id=company_of(user), actor_id=user.id, context=audit_context()
        ) as change:
            yield change
    except (repository.AccountGone, repository.CompanyGone):
        raise InvalidToken() from None


# --- members ----------------------------------------------------------------------------


def member_dump(member: MemberRecord) -> dict[str, Any]:
    """A member as the contract shows it."""
    return {
        "id": member.id,
        "first_name": member.first_name,
        "last_name": member.last_name,
        "email": member.email,
        "avatar": member.avatar,
        "email_verified": member.email_verified_at is not None,
        "role": {"id": member.role_id, "name": member.role_name, "category": member.role_category},
        "joined_at": rfc3339(member.joined_at) if member.joined_at else "",
    }


def list_members(
    user: User, *, query: str, cursor: cursors.Position | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the company's members, oldest first (platform.admins.view)."""
    company_id = company_of(user)
    page = repository.member_page(company_id=company_id, query=query, after=cursor, limit=limit + 1)
    next_cursor = None
    if len(page) > limit:
        page = page[:limit]
        last = page[-1]
        next_cursor = cursors.encode("members", last.joined_at or utc_now(), last.id)
    return [member_dump(member) for member in page], next_cursor


def member_in_path(user: User, member_id: str) -> MemberRecord:
    """The member a path names, of the caller's company; 404 otherwise."""
    found = repository.member_of(company_id=company_of(user), user_id=path_id(member_id, "member"))
    if found is None:
        raise NotFound("No such member.")
    return found


def change_member_role(user: User, member_id: str, role_id: str) -> dict[str, Any]:
    """Give a member another role (platform.admins.all): not one that holds more than the
    actor's, not to a member who holds more, never the last Admin's demotion."""
    member_id, role_id = member_id.lower(), role_id.lower()
    with team(user) as change:
        member = change.member(member_id)
        if member is None:
            raise NotFound("No such member.")
        role = change.role(role_id)
        if role is None:
            raise ValidationFailed(fields={"role_id": [ROLE_ID_UNKNOWN]})
        not_beyond(change, member.role_permission, role.permission)
        require_under_lock(change, permissions.ADMINS_ALL)
        if member.role_id != role.id:
            if role.id != ADMIN_ROLE_ID:
                _keep_an_admin(change, member)
            change.set_member_role(member.id, role.id)
            change.event(
                "member_role_changed", target_id=member.id, detail=f"{member.role_id}>{role.id}"
            )
    changed = repository.member_of(company_id=company_of(user), user_id=member_id)
    if changed is None:  # removed right after: answer as it was made
        raise NotFound("No such member.")
    return member_dump(changed)


def remove_member(user: User, member_id: str) -> None:
    """Remove a member (platform.admins.all), or leave (anyone, themselves): the account
    keeps its sign-in, without company, with the Customer role; its sessions end; a
    member_removed mail unless it left by itself."""
    member_id = member_id.lower()
    leaving = member_id == user.id
    company = user.company
    with team(user) as change:
        member = change.member(member_id)
        if member is None:
            raise NotFound("No such member.")
        if not leaving:
            not_beyond(change, member.role_permission)
            require_under_lock(change, permissions.ADMINS_ALL)
        _keep_an_admin(change, member)
        change.remove_member(member.id)
        change.event("member_removed", target_id=member.id, detail="left" if leaving else "")
        if not leaving:
            notice = mail.new_mail(
                "member_removed",
                member.email,
                member.first_name,
                mail.choose_language(member.language),
                user_id=member.id,
                company_name=company.name if company else "",
            )
            queued = mail.unless_suppressed(notice, verified=member.email_verified_at is not None)
            if queued is not None:
                change.add(queued)
    if not leaving:
        mail.wake_sender()


# --- the company ------------------------------------------------------------------------


def require_company_admin(user: User) -> None:
    """PATCH /company: members whose role holds platform.admins.all (403 otherwise)."""
    require(user, permissions.ADMINS_ALL)


def update_company(user: User, changes: dict[str, Any]) -> User:
    """New values for the company's fields (platform.admins.all, checked again under the
    company's lock); the user, with the changed company."""
    with team(user) as change:
        require_under_lock(change, permissions.ADMINS_ALL)
        change.update_company(changes)
        change.event("company_changed", target_id=change.company_id)
    changed = repository.account_by_id(user.id)
    if changed is None:  # pragma: no cover - deleted right after
        raise InvalidToken()
    return changed
