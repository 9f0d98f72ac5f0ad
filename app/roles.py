"""A company's custom roles over the platform document's permission tree.

A member whose role holds `platform.roles.all` creates, changes and deletes them, never
granting what it does not hold itself nor touching a role that holds more; the system
roles (`Admin`, `Customer`) cannot be changed; a role in use cannot be deleted. A change
of a role's permissions is seen at once by every endpoint (each reads the member's role
with its account) and by /verify and introspection within TOKEN_CACHE_SECONDS.
"""

from __future__ import annotations

from typing import Any

from app import permissions, repository
from app.errors import Forbidden, NotFound, RoleInUse, RoleNameTaken
from app.models import ADMIN_ROLE, CUSTOM_ROLE, CUSTOMER_ROLE, Role, User, new_uuid, utc_now
from app.repository import RoleRecord, TeamChange
from app.teams import company_of, not_beyond, path_id, require_under_lock, team

RESERVED_NAMES = frozenset(repository.role_name_key(name) for name in (ADMIN_ROLE, CUSTOMER_ROLE))


def role_dump(role: RoleRecord) -> dict[str, Any]:
    """A role as the team endpoints show it."""
    return {
        "id": role.id,
        "name": role.name,
        "description": role.description,
        "category": role.category,
        "permission": role.permission,
        "members": role.members,
    }


def list_roles(user: User) -> list[dict[str, Any]]:
    """The Admin role first, then the company's custom roles by name."""
    return [role_dump(role) for role in repository.company_roles(company_id=company_of(user))]


def role_in_path(user: User, role_id: str) -> RoleRecord:
    """The custom role a path names, of the caller's company: 403 FORBIDDEN for a system
    role (it cannot be changed), 404 for anything else that is not one."""
    role_id = path_id(role_id, "role")
    role = repository.any_role(role_id=role_id)
    if role is not None and role.company_id is None:
        raise Forbidden("A system role cannot be changed.")
    if role is None or role.company_id != company_of(user):
        raise NotFound("No such role.")
    return role


def _name_free(change: TeamChange, name: str, besides: str | None = None) -> None:
    """409 ROLE_NAME_TAKEN for a system role's name or one of the company's (by case
    folding)."""
    if repository.role_name_key(name) in RESERVED_NAMES or change.role_name_taken(
        name, besides=besides
    ):
        raise RoleNameTaken()


def create_role(user: User, fields: dict[str, Any]) -> dict[str, Any]:
    """A custom role of the company (platform.roles.all), granting nothing the actor
    does not hold."""
    role_id = new_uuid()
    with team(user) as change:
        not_beyond(change, fields["permission"])
        require_under_lock(change, permissions.ROLES_ALL)
        _name_free(change, fields["name"])
        change.add(
            Role(
                id=role_id,
                company_id=change.company_id,
                name=fields["name"],
                name_key=repository.role_name_key(fields["name"]),
                description=fields.get("description", ""),
                category=CUSTOM_ROLE,
                permission=fields["permission"],
                created_at=utc_now(),
            )
        )
        change.event("role_created", target_id=role_id)
    return role_dump(_current(user, role_id))


def update_role(user: User, role_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Change a custom role (platform.roles.all): not one that holds more than the
    actor's role (a rename too), not to a tree that does."""
    with team(user) as change:
        role = change.role(role_id.lower())
        if role is None or role.company_id is None:
            raise NotFound("No such role.")
        not_beyond(change, role.permission, fields.get("permission", {}))
        require_under_lock(change, permissions.ROLES_ALL)
        if "name" in fields:
            _name_free(change, fields["name"], besides=role.id)
        change.update_role(role.id, fields)
        changed = ""
        if "permission" in fields:
            before = permissions.leaves(role.permission)
            after = permissions.leaves(fields["permission"])
            changed = ",".join(sorted(before ^ after))
        change.event("role_changed", target_id=role.id, detail=changed)
    return role_dump(_current(user, role.id))


def delete_role(user: User, role_id: str) -> None:
    """Delete a custom role (platform.roles.all) that no member and no pending or
    expired invitation has; closed invitations keep naming it."""
    with team(user) as change:
        role = change.role(role_id.lower())
        if role is None or role.company_id is None:
            raise NotFound("No such role.")
        not_beyond(change, role.permission)
        require_under_lock(change, permissions.ROLES_ALL)
        if change.role_in_use(role.id):
            raise RoleInUse()
        change.delete_role(role.id)
        change.event("role_deleted", target_id=role.id)


def _current(user: User, role_id: str) -> RoleRecord:
    role = repository.company_role(company_id=company_of(user), role_id=role_id)
    if role is None:  # pragma: no cover - deleted right after
        raise NotFound("No such role.")
    return role
