"""The per-process identity cache behind /verify and introspection."""

import time

import pytest

from app import identity as identity_module
from app.identity import Identity, IdentityCache
from app.permissions import tree_of


def identity(expires_in=3600):
    """An identity whose token expires in `expires_in` seconds."""
    now = int(time.time())
    return Identity(
        user_id="u",
        company_id="",
        role_id="r",
        role="Customer",
        permissions=(),
        session_id="s",
        email_verified=False,
        issuer="k" * 32,
        issued_at=now,
        expires_at=now + expires_in,
    )


def test_kept_for_the_window_only(cache_window):
    cache = IdentityCache(seconds=5)
    who = identity()
    cache.put("t", who)
    assert cache.get("t") is who
    cache_window.advance(5.01)
    assert cache.get("t") is None
    assert cache.stale("t") is who  # its claims need no second signature check


@pytest.mark.parametrize("expires_in", [0, -1, -11])
def test_never_from_the_tokens_expiry_on(expires_in):
    cache = IdentityCache(seconds=60)
    cache.put("t", identity(expires_in=expires_in))  # no leeway: refused from `exp` on
    assert cache.get("t") is None and cache.stale("t") is None


def test_a_zero_window_caches_nothing():
    cache = IdentityCache(seconds=0)
    cache.put("t", identity())
    assert cache.get("t") is None and cache.entries == {}


def test_bounded_the_oldest_go_first():
    cache = IdentityCache(seconds=60, max_entries=3)
    for token in "abcde":
        cache.put(token, identity())
    assert list(cache.entries) == ["c", "d", "e"]


def tree(*granted):
    """A well-formed permission tree with these leaves true."""
    return tree_of(granted)


def test_a_roles_leaves_are_remembered_with_their_tree_not_by_id_alone():
    cache = IdentityCache(seconds=60)
    first = cache.permissions("r", tree("platform.roles.view", "platform.admins.view"))
    assert first == ("platform.admins.view", "platform.roles.view")
    again = cache.permissions("r", tree("platform.roles.view", "platform.admins.view"))
    assert again is first  # the same tree (an equal copy): not computed again
    changed = cache.permissions("r", tree("platform.roles.view"))
    assert changed == ("platform.roles.view",)  # same role id, new tree: new leaves
    assert cache.permissions("other", tree()) == ()


def test_remembered_roles_are_bounded(monkeypatch):
    monkeypatch.setattr(identity_module, "MAX_REMEMBERED_ROLES", 3)
    cache = IdentityCache(seconds=60)
    for role_id in "abcde":
        cache.permissions(role_id, tree("platform.billing.view"))
    assert len(cache.roles) <= 3
