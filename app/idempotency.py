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
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from flask import current_app, g, request

from app import repository
from app.errors import EmailTaken, IdempotencyKeyInProgress, IdempotencyKeyReused

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
POLL_SECONDS = 0.05
PURGE_PROBABILITY = 0.01  # every hundredth new key also sweeps out the expired ones


def key_errors():
    """({header: [message]}, None) for a malformed header, else ({}, key or None)."""
    key = request.headers.get(HEADER)
    if key is None:
        return {}, None
    if 1 <= len(key) <= MAX_LENGTH and all(" " <= char <= "~" for char in key):
        return {}, key
    return {HEADER: [f"Must be 1-{MAX_LENGTH} printable ASCII characters."]}, None


def canonical_json(body):
    """The body as JSON text with sorted keys and no spacing, numbers as they were sent.

    The body reader keeps integers of over 4,000 digits as Decimal (Python will not make
    an int of them); each is written through a marker no body can contain, whose quotes
    are then taken off, so `1e4001`-long numbers stay numbers, distinct from strings."""
    marker = secrets.token_hex(16)

    def as_marked_text(value):
        if isinstance(value, Decimal):
            return f"{marker}{value}"
        raise TypeError(f"{type(value).__name__} is not JSON")

    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=as_marked_text
    )
    if marker not in text:
        return text
    return re.sub(f'"{marker}([-+0-9.Ee]+)"', r"\1", text)


def fingerprint(body):
    """A keyed hash of the JSON body (key order and spacing ignored). Keyed, because
    the body holds the password: a plain hash in the database could be brute-forced."""
    canonical = canonical_json(body)
    secret = hmac.new(current_app.config["SECRET_KEY"].encode(), b"idempotency", "sha256")
    return hmac.new(
        secret.digest(), canonical.encode("utf-8", "surrogatepass"), hashlib.sha256
    ).hexdigest()


def expiry_cut_off():
    """Keys created before this have expired."""
    return datetime.now(UTC) - timedelta(seconds=current_app.config["IDEMPOTENCY_TTL_SECONDS"])


def _as_utc(moment):
    """SQLite hands back naive datetimes: they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _claim(endpoint, key, body_fingerprint):
    """Claim the key, clearing an expired claim first. Returns (row, mine)."""
    cut_off = expiry_cut_off()
    if random.random() < PURGE_PROBABILITY:
        repository.purge_idempotency_keys(cut_off)
    row, mine = repository.claim_idempotency_key(endpoint, key, body_fingerprint)
    if not mine and row is not None and _as_utc(row.created_at) < cut_off:
        repository.purge_idempotency_keys(cut_off, endpoint, key)
        row, mine = repository.claim_idempotency_key(endpoint, key, body_fingerprint)
    return row, mine


def _wait_for_first(endpoint, key):
    """Wait (up to IDEMPOTENCY_WAIT_SECONDS) for the first request to finish."""
    deadline = time.monotonic() + current_app.config["IDEMPOTENCY_WAIT_SECONDS"]
    while True:
        row = repository.get_idempotency_key(endpoint, key)
        if row is None or row.status is not None or time.monotonic() >= deadline:
            return row
        time.sleep(POLL_SECONDS)


def run_once(body, key, create, replay):
    """Run `create()` once per key and body; replay its answer to retries.

    `create()` returns (user, response) for a new account; `replay(user)` builds the
    response for a retry. A retry that finds its first request failed runs again.
    """
    endpoint = request.endpoint
    body_fingerprint = fingerprint(body)
    for _ in range(3):
        row, mine = _claim(endpoint, key, body_fingerprint)
        if mine:
            return _first_request(row, create)
        if row is None:
            continue  # the first request failed and let the key go: claim it again
        if not hmac.compare_digest(row.fingerprint, body_fingerprint):
            raise IdempotencyKeyReused()
        row = _wait_for_first(endpoint, key)
        if row is None:
            continue
        if row.status is None:
            raise IdempotencyKeyInProgress(headers={"Retry-After": "1"})
        g.replayed = True  # counted as a replay in the metrics, not as a new outcome
        if row.status == EmailTaken.status:
            raise EmailTaken()
        user = repository.get_user(row.user_id)
        if user is not None:
            return replay(user)
        g.replayed = False
        repository.release_idempotency_key(row)  # the account is gone: start afresh
    raise IdempotencyKeyInProgress(headers={"Retry-After": "1"})


def _first_request(row, create):
    """Run the request that owns the key; store its answer, or let the key go."""
    try:
        user, response = create()
    except EmailTaken:
        repository.complete_idempotency_key(row, EmailTaken.status)
        raise
    except BaseException:
        repository.release_idempotency_key(row)
        raise
    repository.complete_idempotency_key(row, response.status_code, user.id)
    return response
