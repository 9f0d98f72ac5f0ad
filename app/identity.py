"""What the platform's other services learn from an access token, and who may ask.

Forward authentication (`/verify`) and introspection answer for every request of every
platform service, so they answer from a per-process cache: a token's identity is kept
for at most TOKEN_CACHE_SECONDS (and never past the token's `exp`). A revocation (a
rotated or deleted credential) or a change of the identity (an address verified, a role
given or taken, a role's permissions changed) is seen by them within that window, and at
once by every other endpoint, which always verifies against the database
(app.tokens.require_access_token).
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from app import repository
from app.errors import InvalidToken
from app.models import utc_now
from app.permissions import sorted_leaves
from app.tokens import claims_match, signed_claims

EXTENSION_KEY = "lumyri_identity_cache"
MAX_CACHED_TOKENS = 10_000
MAX_REMEMBERED_ROLES = 1_000
# The cache window's clock (the tests move it instead of waiting a window out).
window_clock = time.monotonic
# Compared against when a client id is unknown, so that the answer takes the same time.
UNKNOWN_CLIENT_SECRET = "x" * 64


@dataclass(frozen=True, slots=True)
class Identity:
    """The account a valid token stands for, as the platform's services see it."""

    user_id: str
    company_id: str
    role_id: str
    role: str  # the role's name
    permissions: tuple[str, ...]  # the role's `true` leaves, sorted (app.permissions)
    session_id: str  # the signing credential's id
    email_verified: bool
    issuer: str
    issued_at: int
    expires_at: int


class IdentityCache:
    """token -> (identity, monotonic time until which it may be used), per process; and
    each role's permission leaves, with the tree they came from (`permissions`).

    Bounded: past MAX_CACHED_TOKENS entries the oldest are dropped. Plain dict
    operations, each atomic under the GIL; the lock only guards the eviction."""

    def __init__(self, seconds: int, max_entries: int = MAX_CACHED_TOKENS) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self.entries: dict[str, tuple[Identity, float]] = {}
        self.lock = threading.Lock()
        # role id -> (the permission tree the leaves were computed from, its leaves).
        self.roles: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {}

    def get(self, token: str) -> Identity | None:
        """The cached identity of a token, if it is still fresh and the token unexpired."""
        entry = self.entries.get(token)
        if entry is None or window_clock() >= entry[1]:
            return None
        if time.time() >= entry[0].expires_at:
            self.entries.pop(token, None)
            return None
        return entry[0]

    def stale(self, token: str) -> Identity | None:
        """A token seen before, whose cache window is over: its signature and claims were
        checked then and cannot have changed, so only the account needs asking again."""
        entry = self.entries.get(token)
        if entry is None or time.time() >= entry[0].expires_at:
            return None
        return entry[0]

    def put(self, token: str, identity: Identity) -> None:
        """Keep a token's identity for the cache window."""
        if self.seconds <= 0:
            return
        if len(self.entries) >= self.max_entries:
            with self.lock:
                while len(self.entries) >= self.max_entries:
                    try:
                        oldest = next(iter(self.entries))
                    except (RuntimeError, StopIteration):  # changed meanwhile: look again
                        continue
                    self.entries.pop(oldest, None)
        self.entries[token] = (identity, window_clock() + self.seconds)

    def permissions(self, role_id: str, tree: dict[str, Any]) -> tuple[str, ...]:
        """A role's sorted `true` leaves, remembered with the tree they came from, never by
        the role's id alone: the tree read with the account is compared with it (a
        fraction of the leaves' cost), so a role whose permissions changed gets new leaves
        at its next read, within TOKEN_CACHE_SECONDS."""
        known = self.roles.get(role_id)
        if known is not None and known[0] == tree:
            return known[1]
        leaves = sorted_leaves(tree)
        if len(self.roles) >= MAX_REMEMBERED_ROLES:
            self.roles.clear()
        self.roles[role_id] = (tree, leaves)
        return leaves


def init_app(app: Flask) -> None:
    """One cache per app (and so per gunicorn worker process)."""
    app.extensions[EXTENSION_KEY] = IdentityCache(app.config["TOKEN_CACHE_SECONDS"])


def identify(token: str) -> Identity:
    """The identity of a valid token, from the cache or verified in full (signature and
    expiry, then the credential and its account in one small query); InvalidToken
    otherwise."""
    cache: IdentityCache = current_app.extensions[EXTENSION_KEY]
    identity = cache.get(token)
    if identity is not None:
        return identity
    known = cache.stale(token)
    if known is not None:  # signed and unexpired, as checked before: ask the account only
        claims: dict[str, Any] = {
            "iss": known.issuer,
            "user_id": known.user_id,
            "company_id": known.company_id,
            "iat": known.issued_at,
            "exp": known.expires_at,
        }
    else:
        claims = signed_claims(token)
    account = repository.credential_identity(claims["iss"])
    if account is None or not claims_match(claims, account.user_id, account.company_id):
        cache.entries.pop(token, None)
        raise InvalidToken()
    identity = Identity(
        user_id=account.user_id,
        company_id=account.company_id or "",
        role_id=account.role_id,
        role=account.role,
        permissions=cache.permissions(account.role_id, account.permission),
        session_id=account.session_id,
        email_verified=account.email_verified_at is not None,
        issuer=claims["iss"],
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
    )
    cache.put(token, identity)
    if repository.needs_touch(account.last_used_at, utc_now()):
        repository.touch_session(account.session_id)  # last_used_at, to within 5 minutes
    return identity


def client_is_allowed(client_id: str, secret: str) -> bool:
    """True when the id and secret are one of INTROSPECTION_CLIENTS; the secret is
    compared in constant time, and an unknown id takes the same comparison."""
    clients: dict[str, str] = current_app.config["INTROSPECTION_CLIENTS"]
    expected = clients.get(client_id)
    matches = hmac.compare_digest(
        (expected or UNKNOWN_CLIENT_SECRET).encode(), secret.encode("utf-8", "surrogatepass")
    )
    return expected is not None and matches
