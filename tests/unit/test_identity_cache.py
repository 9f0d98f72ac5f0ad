"""The per-process identity cache behind /verify and introspection."""

import time

import pytest

from app.identity import Identity, IdentityCache


def identity(expires_in=3600):
    """An identity whose token expires in `expires_in` seconds."""
    now = int(time.time())
    return Identity("u", "", "Customer", False, "k" * 32, now, now + expires_in)


def test_kept_for_the_window_only(monkeypatch):
    cache = IdentityCache(seconds=5)
    who = identity()
    cache.put("t", who)
    assert cache.get("t") is who
    later = time.monotonic() + 5.01
    monkeypatch.setattr(time, "monotonic", lambda: later)
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
