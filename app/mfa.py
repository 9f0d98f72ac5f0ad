"""Two-factor use cases (the contract's "Two-factor (TOTP)"): the state, set-up and
confirmation, new recovery codes, disabling, and a log-in's second step.

Each follows the contract's order of checks: the limits (429), then two-factor's state
(409 MFA_*), then the mfa_token and the code (401 INVALID_CODE), then the password (403
WRONG_PASSWORD). A code is checked first and used up only in the transaction of what it
proves (app.repository.mfa), so a request that fails after the check leaves it unused;
every wrong code is an `mfa_failed` audit event. The crypto is app.totp's; codes, secrets
and tokens never reach a log line.
"""

from __future__ import annotations

import hmac
from typing import Any

from app import mail, ratelimit, repository, totp
from app.accounts import audit_context, prove_password
from app.errors import InvalidCode, InvalidToken, MfaAlreadyEnabled, MfaNotEnabled
from app.models import OutboxMail, SigningCredential, User, as_utc, utc_now


def _state(user: User) -> repository.TwoFactor:
    """The account's two-factor state now (INVALID_TOKEN when it was deleted)."""
    state = repository.two_factor(user.id)
    if state is None:
        raise InvalidToken()
    return state


def status(user: User) -> dict[str, Any]:
    """GET /mfa: whether two-factor is on, and how many recovery codes are left."""
    state = _state(user)
    left = len(state.recovery_hashes) if state.on else 0
    return {"totp": state.on, "recovery_codes_left": left}


def _notice(kind: str, user: User) -> OutboxMail | None:
    """An mfa_enabled or mfa_disabled notice: never suppressed to a verified address,
    counted like every mail to an unverified one."""
    notice = mail.new_mail(
        kind, user.email, user.first_name, mail.choose_language(user.language), user_id=user.id
    )
    return mail.unless_suppressed(notice, verified=user.email_verified_at is not None)


def set_up(user: User, password: str) -> dict[str, str]:
    """A new secret waiting for its confirmation (replacing an unconfirmed one): 429, 409
    MFA_ALREADY_ENABLED, 403 WRONG_PASSWORD in that order."""
    ratelimit.limit_password_proof(user.id)
    if _state(user).on:
        raise MfaAlreadyEnabled()
    prove_password(user, password)
    secret = totp.new_secret()
    try:
        repository.set_pending_secret(user=user, stored_secret=totp.encrypt_secret(secret, user.id))
    except repository.TwoFactorOn:
        raise MfaAlreadyEnabled() from None
    except repository.AccountGone:
        raise InvalidToken() from None
    uri = totp.otpauth_uri(secret, user.email)
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": totp.qr_svg(uri)}


def _refuse_code(user: User, challenge_id: str | None = None) -> InvalidCode:
    """Record a wrong code (mfa_failed; one more failure of the mfa_token's challenge) and
    hand back the 401 to raise."""
    try:
        repository.record_mfa_failure(user=user, context=audit_context(), challenge_id=challenge_id)
    except repository.AccountGone:
        pass  # deleted meanwhile: nothing to record against
    return InvalidCode()


def _secret(stored: str | None, user: User) -> str | None:
    """A stored secret decrypted (None when there is none, or it cannot be read: a
    SECRET_KEY changed since, which no code can match)."""
    if stored is None:
        return None
    try:
        return totp.decrypt_secret(stored, user.id)
    except totp.SecretUnreadable:
        return None


def confirm(user: User, code: str) -> tuple[SigningCredential, list[str]]:
    """Two-factor on, proved by a code of the pending secret (a recovery code will not
    do): its new session (every earlier one ended) and the recovery codes, shown once."""
    ratelimit.limit_mfa(user.id)
    state = _state(user)
    if state.on:
        raise MfaAlreadyEnabled()
    if state.pending is None:
        raise MfaNotEnabled()
    secret = _secret(state.pending, user)
    step = None if secret is None else totp.matching_step(secret, code, state.last_step)
    if step is None:
        raise _refuse_code(user)
    codes = totp.new_recovery_codes(user.id)
    try:
        credential = repository.enable_mfa(
            user=user,
            pending=state.pending,
            step=step,
            recovery_hashes=codes.hashes,
            context=audit_context(),
            mail=_notice("mfa_enabled", user),
        )
    except repository.TwoFactorOn:
        raise MfaAlreadyEnabled() from None
    except repository.TwoFactorOff:
        raise MfaNotEnabled() from None
    except repository.CodeRefused:  # another set-up replaced the secret meanwhile
        raise InvalidCode() from None
    except repository.AccountGone:
        raise InvalidToken() from None
    mail.wake_sender()
    return credential, codes.shown


def check_code(
    user: User, state: repository.TwoFactor, code: str, challenge_id: str | None = None
) -> repository.Proof:
    """A code of the account's secret (its step later than the last one used) or one of
    its unused recovery codes, as the proof to use up; 401 INVALID_CODE otherwise (an
    mfa_failed event, and a failure of the challenge when one is given)."""
    if totp.is_totp_code(code):
        secret = _secret(state.secret, user)
        step = None if secret is None else totp.matching_step(secret, code, state.last_step)
        if step is not None:
            return repository.Proof(step=step, secret=state.secret)
    else:
        found = totp.matching_recovery_hash(code, user.id, state.recovery_hashes)
        if found is not None:
            return repository.Proof(recovery_hash=found)
    raise _refuse_code(user, challenge_id)


def _proved(user: User, password: str, code: str) -> repository.Proof:
    """The checks of a request proved by the password and a code, in the contract's
    order: 429 (both limits), 409 MFA_NOT_ENABLED, 401 INVALID_CODE, 403 WRONG_PASSWORD;
    the code checked, not used up yet."""
    ratelimit.limit_password_proof(user.id)
    ratelimit.limit_mfa(user.id)
    state = _state(user)
    if not state.on:
        raise MfaNotEnabled()
    proof = check_code(user, state, code)
    prove_password(user, password)
    return proof


def new_recovery_codes(user: User, password: str, code: str) -> list[str]:
    """Ten new recovery codes (the old ones die), shown once."""
    proof = _proved(user, password, code)
    codes = totp.new_recovery_codes(user.id)
    try:
        repository.replace_recovery_codes(
            user=user, proof=proof, recovery_hashes=codes.hashes, context=audit_context()
        )
    except repository.TwoFactorOff:
        raise MfaNotEnabled() from None
    except repository.CodeRefused:  # used by another request meanwhile
        raise InvalidCode() from None
    except repository.AccountGone:
        raise InvalidToken() from None
    return codes.shown


def disable(user: User, password: str, code: str) -> None:
    """Two-factor off (the recovery codes gone), an mfa_disabled notice."""
    proof = _proved(user, password, code)
    try:
        repository.disable_mfa(
            user=user, proof=proof, context=audit_context(), mail=_notice("mfa_disabled", user)
        )
    except repository.TwoFactorOff:
        raise MfaNotEnabled() from None
    except repository.CodeRefused:
        raise InvalidCode() from None
    except repository.AccountGone:
        raise InvalidToken() from None
    mail.wake_sender()


def turn_off(user: User) -> bool:
    """Two-factor off without a code (the operator's `accounts disable-mfa`, for an owner
    who lost every factor, or after SECRET_KEY changed: no stored secret or recovery code
    works then); an mfa_disabled notice. False when it was off."""
    try:
        repository.disable_mfa(
            user=user, proof=None, context=audit_context(), mail=_notice("mfa_disabled", user)
        )
    except repository.TwoFactorOff:
        return False
    except repository.AccountGone:
        raise InvalidToken() from None
    mail.wake_sender()
    return True


def log_in(mfa_token: str, code: str) -> repository.Account:
    """The second step of a log-in: an mfa_token good now (signed, under 5 minutes old,
    its challenge unused and with fewer than 5 wrong codes, the account's password
    unchanged) and a code; a new session. Every other case is 401 INVALID_CODE; 429 past
    the account's RATELIMIT_MFA (known from the token's signature)."""
    claims = totp.read_mfa_token(mfa_token)
    if claims is None:
        raise InvalidCode()
    ratelimit.limit_mfa(claims.user_id)
    user = repository.account_by_id(claims.user_id)
    challenge = repository.mfa_challenge(claims.challenge_id)
    if (
        user is None
        or challenge is None
        or challenge.user_id != user.id
        or challenge.used_at is not None
        or challenge.failures >= repository.MAX_MFA_FAILURES
        or as_utc(challenge.expires_at) <= utc_now()
        or not hmac.compare_digest(
            claims.binding, totp.mfa_binding(user.id, challenge.id, user.password_hash)
        )
    ):
        raise InvalidCode()
    state = repository.two_factor(user.id)
    if state is None or not state.on:
        raise InvalidCode()
    proof = check_code(user, state, code, challenge.id)
    try:
        credential = repository.finish_mfa_login(
            user=user, challenge_id=challenge.id, proof=proof, context=audit_context()
        )
    except (repository.CodeRefused, repository.TwoFactorOff, repository.AccountGone):
        raise InvalidCode() from None
    return repository.Account(user, credential)
