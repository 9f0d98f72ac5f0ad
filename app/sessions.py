"""Sessions: one per answer that hands out a token, each of which can end alone (the
contract's "Sessions and two-factor"). Listing them, ending one, and log-out's scopes;
the repository writes (app.repository.sessions)."""

from __future__ import annotations

from typing import Any, Literal

from app import repository
from app.accounts import audit_context
from app.errors import InvalidToken, NotFound
from app.models import SigningCredential, User, rfc3339
from app.teams import path_id

Scope = Literal["all", "current", "others"]


def log_out(user: User, session: SigningCredential, scope: Scope = "all") -> None:
    """End the account's sessions: all of them, the caller's, or every other one
    (INVALID_TOKEN when the account was deleted meanwhile)."""
    try:
        repository.end_sessions(
            user_id=user.id,
            scope=scope,
            current_id=session.id,
            context=audit_context(),
            email=user.email,
        )
    except repository.AccountGone:
        raise InvalidToken() from None


def end_all(user: User) -> None:
    """End every session of an account (the operator's `accounts revoke-tokens`)."""
    try:
        repository.end_sessions(
            user_id=user.id, scope="all", current_id="", context=audit_context(), email=user.email
        )
    except repository.AccountGone:
        raise InvalidToken() from None


def list_sessions(user: User, current: SigningCredential) -> list[dict[str, Any]]:
    """The account's live sessions, newest first; `current` marks the caller's."""
    return [
        {
            "id": row["id"],
            "created_at": rfc3339(row["created_at"]),
            "last_used_at": rfc3339(row["last_used_at"]),
            "user_agent": row["user_agent"],
            "ip": row["ip"],
            "current": row["id"] == current.id,
        }
        for row in repository.live_sessions(user_id=user.id)
    ]


def end_session(user: User, session_id: str) -> None:
    """End one live session of the account; 404 for another's, an ended one, or none."""
    try:
        repository.end_session(
            user_id=user.id,
            session_id=path_id(session_id, "session"),
            context=audit_context(),
            email=user.email,
        )
    except repository.SessionGone:
        raise NotFound("No such session.") from None
    except repository.AccountGone:
        raise InvalidToken() from None
