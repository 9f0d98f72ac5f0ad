"""The platform document's permission tree: its exact shape, its leaves, and who holds
what (the contract's "Companies and teams").

A tree is `{"platform": {resource: {"all": bool, "view": bool}, ...}, "application":
{"applications": null, resource: {...}, ...}}`. A *leaf* is one `true` of it, written
`section.resource.level` (`platform.admins.all`): what /verify and introspection report,
what a role may grant, and what an endpoint needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Every section and its resources, in the document's order; a resource mapped to None
# is always null (`application.applications`).
SHAPE: dict[str, dict[str, bool]] = {
    "platform": {"applications": True, "admins": True, "roles": True, "billing": True},
    "application": {
        "applications": False,
        "tickets": True,
        "agents": True,
        "customers": True,
        "live_map": True,
        "labels": True,
        "settings": True,
    },
}
LEVELS = ("all", "view")

# What the endpoints of "Companies and teams" need.
ADMINS_VIEW = "platform.admins.view"
ADMINS_ALL = "platform.admins.all"
ROLES_VIEW = "platform.roles.view"
ROLES_ALL = "platform.roles.all"

EVERY_LEAF = frozenset(
    f"{section}.{resource}.{level}"
    for section, resources in SHAPE.items()
    for resource, has_levels in resources.items()
    if has_levels
    for level in LEVELS
)


def leaves(tree: Mapping[str, Any]) -> frozenset[str]:
    """The `true` leaves of a stored (well-formed) tree."""
    held: set[str] = set()
    for section, resources in SHAPE.items():
        branch = tree.get(section) or {}
        for resource, has_levels in resources.items():
            grant = branch.get(resource) if has_levels else None
            if isinstance(grant, Mapping):
                held.update(
                    f"{section}.{resource}.{level}" for level in LEVELS if grant.get(level) is True
                )
    return frozenset(held)


def sorted_leaves(tree: Mapping[str, Any]) -> tuple[str, ...]:
    """The `true` leaves, sorted: the order /verify, introspection and the audit use."""
    return tuple(sorted(leaves(tree)))


def tree_of(granted: Iterable[str]) -> dict[str, Any]:
    """The whole tree with these leaves `true` and every other `false`."""
    granted = frozenset(granted)
    return {
        section: {
            resource: (
                {level: f"{section}.{resource}.{level}" in granted for level in LEVELS}
                if has_levels
                else None
            )
            for resource, has_levels in resources.items()
        }
        for section, resources in SHAPE.items()
    }


def tree_errors(value: Any) -> list[str]:
    """Every way a tree sent in a request breaks the shape (empty: it is good): exactly
    the sections and resources of the system roles' trees, no other key,
    `application.applications` null, every other leaf `{"all": bool, "view": bool}`, and
    `all` only with `view` (`all` includes `view`)."""
    if not isinstance(value, dict):
        return ["Must be an object of the permission tree's sections."]
    errors = [f"Unknown section {key!r}." for key in value if key not in SHAPE]
    for section, resources in SHAPE.items():
        if section not in value:
            errors.append(f"Missing section {section!r}.")
            continue
        branch = value[section]
        if not isinstance(branch, dict):
            errors.append(f"{section}: must be an object of resources.")
            continue
        errors.extend(
            f"{section}: unknown resource {key!r}." for key in branch if key not in resources
        )
        for resource, has_levels in resources.items():
            path = f"{section}.{resource}"
            if resource not in branch:
                errors.append(f"{path}: missing.")
            elif not has_levels:
                if branch[resource] is not None:
                    errors.append(f"{path}: must be null.")
            else:
                errors.extend(_grant_errors(path, branch[resource]))
    return errors


def _grant_errors(path: str, grant: Any) -> list[str]:
    """What is wrong with one leaf `{"all": bool, "view": bool}`."""
    if not isinstance(grant, dict):
        return [f'{path}: must be {{"all": <bool>, "view": <bool>}}.']
    errors = [f"{path}: unknown key {key!r}." for key in grant if key not in LEVELS]
    for level in LEVELS:
        if level not in grant:
            errors.append(f"{path}.{level}: missing.")
        elif not isinstance(grant[level], bool):
            errors.append(f"{path}.{level}: must be true or false.")
    if not errors and grant["all"] and not grant["view"]:
        errors.append(f"{path}: `all` includes `view`; `all` true needs `view` true.")
    return errors
