"""The links in mails: URL-safe, timed tokens signed with itsdangerous, one secret
(derived from SECRET_KEY) and salt per purpose, bound to what they prove instead of
stored: a verification link to the account and its address; a reset link to the account
and its security version (app.models.User.security_version: any change of the password
or the address kills every earlier one); an e-mail-change link to the account, its
security version, its address and the new one; an invitation's link to the invitation,
its link version (a resend moves it on) and the invited address."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, NamedTuple

from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer

from app import repository
from app.email_address import email_key
from app.errors import InvalidLink
from app.models import INVITATION_PENDING, User, utc_now
from app.secret_key import derived_key

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"
CONFIRM_EMAIL_CHANGE = "confirm_email_change"
INVITATION = "invitation"
DERIVATION_CONTEXT = b"lumyri-accounts/mail-link/v1:"
# Ours are a few hundred characters; a longer one is refused before it is decoded.
MAX_TOKEN_LENGTH = 4096
# Each purpose: the setting holding its link and the one holding its lifetime.
SETTINGS = {
    VERIFY_EMAIL: ("VERIFY_EMAIL_URL", "EMAIL_VERIFY_TTL_SECONDS"),
    RESET_PASSWORD: ("RESET_PASSWORD_URL", "PASSWORD_RESET_TTL_SECONDS"),
    CONFIRM_EMAIL_CHANGE: ("CONFIRM_EMAIL_CHANGE_URL", "EMAIL_CHANGE_TTL_SECONDS"),
    INVITATION: ("ACCEPT_INVITATION_URL", "INVITATION_TTL_SECONDS"),
}


class LinkClaims(NamedTuple):
    """What a good token says: whose it is, what it is bound to, and extra data."""

    user_id: str
    binding: str
    extra: dict[str, Any]


def _purpose_secret(purpose: str) -> bytes:
    """A secret of this purpose's own, derived from SECRET_KEY."""
    return derived_key(DERIVATION_CONTEXT + purpose.encode())


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    """itsdangerous' timed serializer with this purpose's secret and salt."""
    return URLSafeTimedSerializer(_purpose_secret(purpose), salt=f"lumyri-{purpose}")


def binding(purpose: str, *parts: str) -> str:
    """A keyed fingerprint of what a token proves (nothing readable: the token's payload
    is only signed, not encrypted, and a password hash must not travel in it)."""
    message = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hmac.new(_purpose_secret(purpose), message, hashlib.sha256).hexdigest()[:32]


def make_token(purpose: str, user_id: str, bound_to: str, **extra: Any) -> str:
    """A token for a link of this purpose."""
    return str(_serializer(purpose).dumps({"u": user_id, "b": bound_to, **extra}))


def link(purpose: str, token: str) -> str:
    """The link of the purpose's setting, with the token in it."""
    return str(current_app.config[SETTINGS[purpose][0]]).replace("{token}", token)


def lifetime_seconds(purpose: str) -> int:
    """How long a link of this purpose is good."""
    return int(current_app.config[SETTINGS[purpose][1]])


def read_token(purpose: str, token: str) -> LinkClaims:
    """The claims of a good token (signature, purpose and age checked); INVALID_LINK for
    anything else. Whether it is still bound to the account is the caller's check."""
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():  # never one of ours
        raise InvalidLink()
    try:
        payload = _serializer(purpose).loads(token, max_age=lifetime_seconds(purpose))
    except BadData:
        raise InvalidLink() from None
    if not isinstance(payload, dict):
        raise InvalidLink()
    user_id, bound_to = payload.pop("u", None), payload.pop("b", None)
    if not isinstance(user_id, str) or not isinstance(bound_to, str):
        raise InvalidLink()
    return LinkClaims(user_id, bound_to, payload)


def _proof(purpose: str, user: User, new_email: str) -> str:
    """What a link of this purpose proves about the account as it is now: made when the
    mail is sent and compared when the link is used, so the two can never disagree. A
    verification link is bound to the address; a reset or an e-mail-change link to the
    account's security version, which every change of the password or the address moves
    on (this link's own use included, and an address changed and changed back)."""
    if purpose == VERIFY_EMAIL:
        return binding(purpose, user.id, email_key(user.email))
    version = str(user.security_version)
    if purpose == RESET_PASSWORD:
        return binding(purpose, user.id, version)
    return binding(purpose, user.id, version, email_key(user.email), new_email)


def token_for(purpose: str, user: User, new_email: str = "") -> str:
    """A token for the account's link of this purpose (an e-mail change's carries the new
    address: the confirmation needs it)."""
    extra = {"e": new_email} if purpose == CONFIRM_EMAIL_CHANGE else {}
    return make_token(purpose, user.id, _proof(purpose, user, new_email), **extra)


class LinkedAccount(NamedTuple):
    """The account a good link belongs to, and its claims."""

    user: User
    claims: LinkClaims


def account_for(purpose: str, token: str) -> LinkedAccount:
    """The account of a link that is good now: signed, unexpired, and still bound to what
    it proved (the account exists; its address, or its password hash, is unchanged);
    INVALID_LINK otherwise."""
    claims = read_token(purpose, token)
    user = repository.account_by_id(claims.user_id)
    new_email = claims.extra.get("e", "")
    if (
        user is None
        or not isinstance(new_email, str)
        or not hmac.compare_digest(claims.binding, _proof(purpose, user, new_email))
    ):
        raise InvalidLink()
    return LinkedAccount(user, claims)


def _invitation_proof(invitation: repository.InvitationRecord) -> str:
    """What an invitation's link proves: the invitation, its link version (a resend
    moves it on: every earlier link dies) and the invited address."""
    return binding(INVITATION, invitation.id, str(invitation.link_version), invitation.email_key)


def invitation_token(invitation: repository.InvitationRecord) -> str:
    """A token for the invitation's link as it is now."""
    return make_token(INVITATION, invitation.id, _invitation_proof(invitation))


def invitation_for(token: str) -> repository.InvitationRecord:
    """The invitation of a link that is good now: signed, unexpired, still pending
    (not accepted, revoked or resent since), its company still there; INVALID_LINK
    otherwise."""
    claims = read_token(INVITATION, token)
    invitation = repository.invitation_by_id(invitation_id=claims.user_id)
    if (
        invitation is None
        or invitation.status != INVITATION_PENDING
        or invitation.expires_at <= utc_now()
        or not hmac.compare_digest(claims.binding, _invitation_proof(invitation))
    ):
        raise InvalidLink()
    return invitation
