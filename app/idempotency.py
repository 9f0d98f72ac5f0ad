"""Idempotent sign-up: a retried request with the same Idempotency-Key gets the first
answer again instead of a false 409.

Keys live in the database (unique per endpoint), so they hold across workers and
instances; they are kept IDEMPOTENCY_TTL_SECONDS (24 h) and then purged.
"""

import hashlib
import hmac
import json
import random
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from flask import current_app, g, request

from app import postgres_budget, repository
from app.errors import EmailTaken, IdempotencyKeyInProgress, IdempotencyKeyReused
from app.models import IdempotencyKey, as_utc, utc_now
from app.repository.idempotency import (
    COMPLETED_WITH_ACCOUNT,
    KeyTakenOver,
    take_over_idempotency_key,
)
from app.secret_key import derived_key

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
POLL_SECONDS = 0.05
PURGE_PROBABILITY = 0.01  # every hundredth new key also sweeps out the expired ones
CREATED = 201  # what a first request that made its account answered
# A sign-up key still in progress this long after its first request began is taken to be
# lost with its instance (a request is answered, or given up by gunicorn and the gateway,
# well within it): the next retry takes it over and signs up (the contract: free again
# at most 30 s after that request began). The first request's account, had it been
# written, completed the key in the same transaction, so nothing is made twice.
ABANDONED_SECONDS = 30


@dataclass(frozen=True)
class KeyHeader:
    """The request's Idempotency-Key (None when absent or malformed) and the header's
    errors, reported with the body's."""

    key: str | None
    errors: dict[str, list[str]]


def read_key_header() -> KeyHeader:
    """The Idempotency-Key header, checked: 1-255 printable ASCII characters."""
    key = request.headers.get(HEADER)
    if key is None:
        return KeyHeader(None, {})
    if 1 <= len(key) <= MAX_LENGTH and all(" " <= char <= "~" for char in key):
        return KeyHeader(key, {})
    return KeyHeader(None, {HEADER: [f"Must be 1-{MAX_LENGTH} printable ASCII characters."]})


def canonical_json(body: dict[str, Any]) -> str:
    """The body as JSON text with sorted keys and no spacing, numbers as they were sent.

    The body reader keeps integers of over 4,000 digits as Decimal (Python will not make
    an int of them); each is written through a marker no body can contain, whose quotes
    are then taken off, so `1e4001`-long numbers stay numbers, distinct from strings."""
    marker = secrets.token_hex(16)

    def as_marked_text(value: object) -> str:
        if isinstance(value, Decimal):
            return f"{marker}{value}"
        raise TypeError(f"{type(value).__name__} is not JSON")

    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=as_marked_text
    )
    if marker not in text:
        return text
    return re.sub(f'"{marker}([-+0-9.Ee]+)"', r"\1", text)


def fingerprint(body: dict[str, Any]) -> str:
    """A keyed hash of the JSON body (key order and spacing ignored). Keyed, because
    the body holds the password: a plain hash in the database could be brute-forced."""
    canonical = canonical_json(body)
    secret = derived_key(b"idempotency")
    return hmac.new(secret, canonical.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def expiry_cut_off() -> datetime:
    """Keys created before this have expired."""
    return utc_now() - timedelta(seconds=current_app.config["IDEMPOTENCY_TTL_SECONDS"])


def _claim(endpoint: str, key: str, body_fingerprint: str) -> repository.Claim:
    """Claim the key, clearing an expired claim first."""
    cut_off = expiry_cut_off()
    if random.random() < PURGE_PROBABILITY:
        repository.purge_idempotency_keys(created_before=cut_off)
    claim = repository.claim_idempotency_key(
        endpoint=endpoint, key=key, fingerprint=body_fingerprint
    )
    if not claim.mine and claim.row is not None and as_utc(claim.row.created_at) < cut_off:
        repository.purge_idempotency_keys(created_before=cut_off, endpoint=endpoint, key=key)
        claim = repository.claim_idempotency_key(
            endpoint=endpoint, key=key, fingerprint=body_fingerprint
        )
    return claim


def _abandoned_before() -> datetime:
    """A key in progress that began before this was left by a lost request."""
    return utc_now() - timedelta(seconds=ABANDONED_SECONDS)


def _wait_for_first(endpoint: str, key: str) -> IdempotencyKey | None:
    """Wait (up to IDEMPOTENCY_WAIT_SECONDS) for the first request to finish, or for
    its key to be abandoned."""
    deadline = time.monotonic() + current_app.config["IDEMPOTENCY_WAIT_SECONDS"]
    each_read = current_app.config["DB_REQUEST_TIMEOUT_MS"] / 1000
    while True:
        # Each look has the database time of a request: the request's own would run out
        # over 10 s of looks (through PgBouncer: 200 transactions, each 3 round trips).
        with postgres_budget.budget(each_read):
            row = repository.get_idempotency_key(endpoint=endpoint, key=key)
        if row is None or row.status is not None or time.monotonic() >= deadline:
            return row
        if as_utc(row.created_at) < _abandoned_before():
            return row
        time.sleep(POLL_SECONDS)


def run_once(
    key: str | None, body: dict[str, Any], create: Callable[[], repository.Account]
) -> repository.Account:
    """The account `create()` makes, made once per key and body.

    Without a key, `create()` simply runs. With one, the first request runs it and records
    its outcome; a retry with an equal body gets the same account with the same token
    (while that token is good) or the same 409, and one with another body a 422. A retry
    that finds its first request failed, or its answer's token no longer good, runs again.
    """
    if key is None:
        return create()
    endpoint = request.endpoint or ""
    body_fingerprint = fingerprint(body)
    for _ in range(3):
        claim = _claim(endpoint, key, body_fingerprint)
        if claim.mine and claim.row is not None:
            return _first_request(claim.row, create)
        if claim.row is None:
            continue  # the first request failed and let the key go: claim it again
        if not hmac.compare_digest(claim.row.fingerprint, body_fingerprint):
            raise IdempotencyKeyReused()
        row = _wait_for_first(endpoint, key)
        if row is None:
            continue
        if row.status is None:
            if as_utc(row.created_at) >= _abandoned_before():
                raise IdempotencyKeyInProgress()
            taken = take_over_idempotency_key(row=row, started_before=_abandoned_before())
            if taken is not None:
                return _first_request(taken, create)
            continue  # it finished meanwhile, or another retry took it: look again
        g.replayed = True  # counted as a replay in the metrics, not as a new outcome
        if row.status == EmailTaken.status:
            raise EmailTaken()
        account = _first_answer(row)
        if account is not None:
            return account
        # The first answer's token is no longer good (its owner logged out, reset or
        # changed the password or the address; it expired; the account is gone): answer
        # as a new sign-up with this body would (409 EMAIL_TAKEN while the address has an
        # account), never with a token its owner revoked.
        g.replayed = False
        repository.release_idempotency_key(row)
    raise IdempotencyKeyInProgress()


def _first_answer(row: IdempotencyKey) -> repository.Account | None:
    """The account and credential of a completed sign-up's answer while that answer's
    token is still good: the credential lives (no log-out, no new password), the account's
    password and address are the ones it was created with, and the token is unexpired."""
    if row.user_id is None or row.credential_id is None:
        return None
    user = repository.account_by_id(row.user_id)
    if user is None or user.security_version != 0:
        return None
    credential = repository.live_credential(credential_id=row.credential_id, user=user)
    if credential is None:
        return None
    lifetime = timedelta(seconds=current_app.config["ACCESS_TOKEN_TTL_SECONDS"])
    if credential.created_at + lifetime <= utc_now():
        return None
    return repository.Account(user, credential)


def _first_request(
    row: IdempotencyKey, create: Callable[[], repository.Account]
) -> repository.Account:
    """Run the request that owns the key: the account's transaction stores its answer
    (repository.create_account); a 409 is stored after; a failure lets the key go."""
    owner = COMPLETED_WITH_ACCOUNT.set(row)
    try:
        account = create()
    except EmailTaken:
        repository.complete_idempotency_key(row=row, status=EmailTaken.status)
        raise
    except KeyTakenOver:
        raise IdempotencyKeyInProgress() from None  # a retry runs it now; nothing was written
    except BaseException:
        repository.release_idempotency_key(row)
        raise
    finally:
        COMPLETED_WITH_ACCOUNT.reset(owner)
    if row.status is None:  # made without create_account (a test's stand-in)
        repository.complete_idempotency_key(
            row=row, status=CREATED, user_id=account.user.id, credential_id=account.credential.id
        )
    return account


T = TypeVar("T")


def run_once_scoped(
    key: str | None,
    body: dict[str, Any],
    *,
    scope: str,
    owner_id: str,
    create: Callable[[], T],
    made: Callable[[T], str],
    replay: Callable[[str], T | None],
) -> T:
    """What `create()` makes (an invitation), made once per key, body and scope (the
    endpoint and the calling account, `owner_id`: its keys go with it).

    The first request runs `create()` and records the id of what it made (`made`); a
    retry with an equal body gets `replay(id)` (what that is now) and one with another
    body a 422. A first request that failed lets its key go: a retry runs again (and
    meets the same refusal, if the refusal still holds)."""
    if key is None:
        return create()
    body_fingerprint = fingerprint(body)
    for _ in range(3):
        claim = _claim(scope, key, body_fingerprint)
        if claim.mine and claim.row is not None:
            try:
                result = create()
            except BaseException:
                repository.release_idempotency_key(claim.row)
                raise
            repository.complete_idempotency_key(
                row=claim.row, status=CREATED, user_id=owner_id, result_id=made(result)
            )
            return result
        if claim.row is None:
            continue
        if not hmac.compare_digest(claim.row.fingerprint, body_fingerprint):
            raise IdempotencyKeyReused()
        row = _wait_for_first(scope, key)
        if row is None:
            continue
        if row.status is None:
            raise IdempotencyKeyInProgress()
        found = replay(row.result_id) if row.result_id else None
        if found is not None:
            g.replayed = True
            return found
        repository.release_idempotency_key(row)  # what it made is gone: make it again
    raise IdempotencyKeyInProgress()
