"""Abuse limits on sign-up and log-in, with Flask-Limiter's storage and strategies.

The limits are checked inside the views, after validation, rather than by decorators
before them: a request that gets a 400, 413 or 415 spends nothing and always gets that
answer (the contract's Operations section).
"""

import hashlib
import logging
import math
import time
from typing import cast

from flask import Flask, current_app, request
from flask_limiter import Limiter
from limits import parse

from app.email_address import email_key
from app.errors import RateLimited
from app.observability import client_ip

log = logging.getLogger(__name__)

EXTENSION_KEY = "lumyri_rate_limiter"


def init_app(app: Flask) -> None:
    """One limiter per app: its storage is memory:// or the Redis of RATELIMIT_STORAGE_URI."""
    app.extensions[EXTENSION_KEY] = Limiter(
        key_func=client_ip,
        app=app,
        storage_uri=app.config["RATELIMIT_STORAGE_URI"],
        key_prefix=app.config["RATELIMIT_KEY_PREFIX"],
        headers_enabled=False,
        default_limits=[],
    )


def _spend(setting: str, *identifiers: str) -> float | None:
    """Spend one request of the limit named by `setting`: None while some is left, else
    when the window resets (epoch seconds).

    If the limit storage is unreachable the request is let through (and logged): an
    outage of Redis should not lock every user out of their account.
    """
    limiter: Limiter = current_app.extensions[EXTENSION_KEY]
    if not limiter.enabled:
        return None
    item = parse(current_app.config[setting])
    # The prefix keeps services (or test runs) that share one Redis apart.
    key = (current_app.config["RATELIMIT_KEY_PREFIX"], setting, *identifiers)
    try:
        if limiter.limiter.hit(item, *key):
            return None
        return float(limiter.limiter.get_window_stats(item, *key).reset_time)
    except Exception as error:  # noqa: BLE001 - any storage failure: fail open, loudly
        log.warning(
            "rate-limit storage unavailable (%s): request let through", type(error).__name__
        )
        return None


def _enforce(setting: str, *identifiers: str) -> None:
    """Spend one request of the limit named by `setting`; 429 when none is left."""
    reset_at = _spend(setting, *identifiers)
    if reset_at is None:
        return
    retry_after = max(1, math.ceil(reset_at - time.time()))
    raise RateLimited(headers={"Retry-After": str(retry_after)})


def _hashed(email: str) -> str:
    """An address as limits key it: its comparison form, hashed (every spelling of one
    address shares the limit, and the limit storage holds no addresses)."""
    return hashlib.sha256(email_key(email).encode()).hexdigest()[:32]


def limit_signup() -> None:
    """Sign-up: RATELIMIT_SIGNUP per client IP, for each sign-up endpoint."""
    # Called from the sign-up views only: the request matched a route, so it has an endpoint.
    _enforce("RATELIMIT_SIGNUP", cast(str, request.endpoint), client_ip())


def limit_login(email: str) -> None:
    """Log-in: RATELIMIT_LOGIN_PER_IP per client IP, and RATELIMIT_LOGIN per IP and e-mail
    (the e-mail's comparison form, hashed: every spelling of one address shares the limit,
    and the limit storage holds no addresses)."""
    ip = client_ip()
    _enforce("RATELIMIT_LOGIN_PER_IP", ip)
    _enforce("RATELIMIT_LOGIN", ip, _hashed(email))


def limit_password_proof(user_id: str) -> None:
    """A password given to prove who one is (change, e-mail change, deletion): limited
    like log-in, per IP and per IP and account."""
    ip = client_ip()
    _enforce("RATELIMIT_LOGIN_PER_IP", ip)
    _enforce("RATELIMIT_LOGIN", ip, "account", user_id)


def limit_password_forgot() -> None:
    """Forgotten password: RATELIMIT_PASSWORD_FORGOT per client IP."""
    _enforce("RATELIMIT_PASSWORD_FORGOT", client_ip())


def limit_verification_mail(user_id: str) -> None:
    """New verification mails: RATELIMIT_VERIFICATION_MAIL per account."""
    _enforce("RATELIMIT_VERIFICATION_MAIL", user_id)


def limit_mfa(user_id: str) -> None:
    """Two-factor code checks: RATELIMIT_MFA per account (every check counts, whatever
    the endpoint, the confirmation's too)."""
    _enforce("RATELIMIT_MFA", "account", user_id)


def limit_invitations(company_id: str) -> None:
    """Invitations (not resends): RATELIMIT_INVITATIONS per company."""
    _enforce("RATELIMIT_INVITATIONS", "company", company_id)


def mail_allowed_to(email: str) -> bool:
    """Spend one of RATELIMIT_MAIL_PER_ADDRESS mails to an address (reset mails, and every
    mail to an address not verified: app.mail.unless_suppressed); False beyond it, when
    the mail is silently suppressed (the answer does not change, so nobody learns
    whether the address has an account, and its owner cannot be flooded)."""
    return _spend("RATELIMIT_MAIL_PER_ADDRESS", _hashed(email)) is None
