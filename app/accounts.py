"""Account use cases: sign up, authenticate, revoke tokens, verify the address, recover
and change the password.

The order of steps lives here: validation is done by the caller's schema, hashing by
the passwords module, every read and write by the repository.
"""

import random
from datetime import timedelta
from typing import Any, Literal, NoReturn

from flask import has_request_context, request

from app import links, mail, passwords, ratelimit, repository, totp
from app.email_address import email_key
from app.errors import (
    EmailAlreadyVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidLink,
    InvalidToken,
    LastAdmin,
    MfaRequired,
    ValidationFailed,
    WrongPassword,
)
from app.models import OutboxMail, User
from app.observability import client_ip, current_request_id

# One log-in in a hundred also deletes every account's ended sessions (each account's own
# go whenever it starts one), so the rows of accounts never seen again do not pile up.
SWEEP_PROBABILITY = 0.01
# An mfa_token's challenge lives as long as the token (5 minutes).
MFA_CHALLENGE_LIFETIME = timedelta(seconds=totp.MFA_TOKEN_SECONDS)


def audit_context() -> repository.AuditContext:
    """Who is asking: the client and request id, or the operator's CLI."""
    if not has_request_context():
        return repository.AuditContext(client_ip="cli")
    return repository.AuditContext(
        client_ip=client_ip(),
        request_id=current_request_id() or "",
        user_agent=request.headers.get("User-Agent", ""),
    )


def refuse_duplicate(email: str) -> NoReturn:
    """Record the repeated sign-up and answer 409 EMAIL_TAKEN."""
    repository.record_audit_event(event="signup_duplicate", context=audit_context(), email=email)
    raise EmailTaken()


def sign_up(kind: Literal["admin", "customer"], fields: dict[str, Any]) -> repository.Account:
    """Create an admin or customer account from loaded sign-up fields.

    A known e-mail is refused before paying for a hash; the hash is made outside any
    transaction; the unique index settles the race between two sign-ups.
    """
    record = repository.NewAccount(
        first_name=fields["first_name"], last_name=fields["last_name"], email=fields["email"]
    )
    if repository.email_exists(record.email):
        refuse_duplicate(record.email)
    password_hash = passwords.hash_password(fields["password"])
    welcome = mail.unless_suppressed(
        verification_mail(record.email, record.first_name), verified=False
    )
    try:
        account = repository.create_account(
            kind=kind,
            record=record,
            password_hash=password_hash,
            context=audit_context(),
            mail=welcome,
        )
    except repository.DuplicateEmail:
        refuse_duplicate(record.email)
    if welcome is not None:
        mail.wake_sender()
    return account


def authenticate(email: str, password: str) -> repository.Account:
    """The account of a right e-mail and password; InvalidCredentials otherwise, in about
    the same time whether or not the e-mail has an account. With two-factor on, a right
    password is 403 MFA_REQUIRED with an mfa_token (for /login/mfa) and no session."""
    user = repository.account_by_email(email)
    if user is None:
        passwords.verify_against_dummy(password)
        repository.record_audit_event(event="login_failed", context=audit_context(), email=email)
        raise InvalidCredentials()
    if not passwords.verify_password(user.password_hash, password):
        repository.record_audit_event(
            event="login_failed", context=audit_context(), user_id=user.id, email=email
        )
        raise InvalidCredentials()
    try:
        if passwords.needs_rehash(user.password_hash):
            repository.set_password_hash(user=user, password_hash=passwords.hash_password(password))
        started = repository.start_login(
            user=user, context=audit_context(), challenge_lifetime=MFA_CHALLENGE_LIFETIME
        )
    except repository.AccountGone:  # deleted while the password was being checked
        raise InvalidCredentials() from None
    if isinstance(started, repository.Challenge):
        raise mfa_required(started, user.password_hash)
    if random.random() < SWEEP_PROBABILITY:  # now and then, every account's ended sessions
        repository.purge_ended_sessions()
    return repository.Account(user, started)


def mfa_required(challenge: repository.Challenge, password_hash: str) -> MfaRequired:
    """403 MFA_REQUIRED with the mfa_token of a challenge, bound to the password hash
    that was proved (a new password kills it)."""
    return MfaRequired(totp.mfa_token(challenge.id, challenge.user_id, password_hash))


def verification_mail(address: str, first_name: str, language: str = "") -> OutboxMail:
    """A verify_email mail to an address (the account's id is filled in by the caller)."""
    return mail.new_mail(
        links.VERIFY_EMAIL, address, first_name, mail.choose_language(language), email=address
    )


def verify_email(token: str) -> User:
    """Prove the address with a verification link: good while it is still the account's
    address (again and again); INVALID_LINK otherwise."""
    user = links.account_for(links.VERIFY_EMAIL, token).user
    try:
        repository.mark_email_verified(user=user, context=audit_context())
    except repository.AccountGone:
        raise InvalidLink() from None
    return user


def send_verification(user: User) -> None:
    """A new verification mail: 409 when the address is verified, 429 past the limit."""
    if user.email_verified_at is not None:
        raise EmailAlreadyVerified()
    ratelimit.limit_verification_mail(user.id)
    welcome = verification_mail(user.email, user.first_name, user.language)
    welcome.user_id = user.id
    if mail.unless_suppressed(welcome, verified=False) is None:
        return
    repository.queue_mail(welcome)
    mail.wake_sender()


def forgot_password(email: str) -> None:
    """A reset mail if an account has the address (and the address's limit allows it);
    the same database work and no hash either way, so the time tells nothing."""
    user = repository.account_by_email(email)
    allowed = ratelimit.mail_allowed_to(email)  # spent for unknown addresses too: same work
    reset = None
    if user is not None:
        if allowed:
            reset = mail.new_mail(
                links.RESET_PASSWORD,
                user.email,
                user.first_name,
                mail.choose_language(user.language),
                user_id=user.id,
                v=user.security_version,
            )
        else:
            mail.count_suppressed(links.RESET_PASSWORD)
    repository.record_reset_request(email=email, user=user, context=audit_context(), mail=reset)
    if reset is not None:
        mail.wake_sender()


def _password_changed_mail(user: User, verified: bool) -> OutboxMail | None:
    """The notice of a new password: never suppressed to a verified address (a reset
    verifies it), counted like every mail to an unverified one (mail.unless_suppressed)."""
    notice = mail.new_mail(
        "password_changed",
        user.email,
        user.first_name,
        mail.choose_language(user.language),
        user_id=user.id,
    )
    return mail.unless_suppressed(notice, verified=verified)


def reset_password(token: str, password: str) -> repository.Account:
    """A new password from a reset link (good once: the link is bound to the account's
    security version, which the reset moves on; of several uses at the same moment one
    succeeds); every earlier token is revoked, the address counts as proved. An account
    with two-factor on gets no session: 403 MFA_REQUIRED (the link proves the mailbox,
    not the second factor)."""
    user = links.account_for(links.RESET_PASSWORD, token).user
    password_hash = passwords.hash_password(password)
    try:
        result = repository.reset_password(
            user=user,
            password_hash=password_hash,
            context=audit_context(),
            mail=_password_changed_mail(user, verified=True),
            challenge_lifetime=MFA_CHALLENGE_LIFETIME,
        )
    except (repository.AccountGone, repository.ChangedMeanwhile):  # while the hash was made
        raise InvalidLink() from None
    mail.wake_sender()
    if isinstance(result, repository.Challenge):
        raise mfa_required(result, password_hash)
    return result


def change_password(user: User, current: str, new: str) -> repository.Account:
    """A new password, proved by the current one (403 WRONG_PASSWORD otherwise); every
    other token of the account is revoked."""
    prove_password(user, current)
    try:
        account = repository.set_new_password(
            user=user,
            password_hash=passwords.hash_password(new),
            event="password_changed",
            context=audit_context(),
            mail=_password_changed_mail(user, verified=user.email_verified_at is not None),
        )
    except repository.AccountGone:
        raise InvalidToken() from None
    mail.wake_sender()
    return account


def update_profile(user: User, changes: dict[str, Any]) -> User:
    """New values for the profile fields (validated, all of them, by the caller)."""
    try:
        repository.update_profile(user=user, changes=changes, context=audit_context())
    except repository.AccountGone:
        raise InvalidToken() from None
    return user


def prove_password(user: User, password: str) -> None:
    """The account's current password, as proof (403 WRONG_PASSWORD otherwise)."""
    if not passwords.verify_password(user.password_hash, password):
        raise WrongPassword()


def request_email_change(user: User, new_email: str, password: str) -> None:
    """A confirm_email_change mail to the new address; nothing changes yet. 429 past the
    verification-mail limit, 403 for a wrong password, 409 when another account has it."""
    if email_key(new_email) == email_key(user.email):
        raise ValidationFailed(fields={"new_email": ["This is the account's address already."]})
    ratelimit.limit_verification_mail(user.id)
    prove_password(user, password)
    if repository.email_exists(new_email):
        raise EmailTaken()
    confirm = mail.new_mail(
        links.CONFIRM_EMAIL_CHANGE,
        new_email,
        user.first_name,
        mail.choose_language(user.language),
        user_id=user.id,
        email=user.email,
        new_email=new_email,
        v=user.security_version,
    )
    confirm_queued = mail.unless_suppressed(confirm, verified=False)  # the new address
    try:
        repository.record_email_change_request(
            user=user, mail=confirm_queued, context=audit_context()
        )
    except repository.AccountGone:  # deleted while the password was being checked
        raise InvalidToken() from None
    if confirm_queued is not None:
        mail.wake_sender()


def confirm_email_change(token: str) -> User:
    """The new address, proved by the link sent to it: good once, and only while the
    account's address is the one it was asked from; 409 if another account took it."""
    user, claims = links.account_for(links.CONFIRM_EMAIL_CHANGE, token)
    new_email = str(claims.extra["e"])
    old_email = user.email
    notice = mail.new_mail(
        "email_changed",
        old_email,
        user.first_name,
        mail.choose_language(user.language),
        user_id=user.id,
        old_email=old_email,
        new_email=new_email,
    )
    # To the old address: counted like every mail to it if it was never verified.
    queued = mail.unless_suppressed(notice, verified=user.email_verified_at is not None)
    try:
        repository.change_email(
            user=user, new_email=new_email, context=audit_context(), notice=queued
        )
    except repository.DuplicateEmail:
        raise EmailTaken() from None
    except (repository.AccountGone, repository.ChangedMeanwhile):
        raise InvalidLink() from None
    mail.wake_sender()
    return user


def delete_account(user: User, password: str) -> None:
    """Delete the account, proved by its password: everything personal goes at once, an
    account_deleted mail goes to the address."""
    prove_password(user, password)
    farewell = mail.new_mail(
        "account_deleted", user.email, user.first_name, mail.choose_language(user.language)
    )
    farewell_queued = mail.unless_suppressed(farewell, verified=user.email_verified_at is not None)
    try:
        repository.delete_account(user=user, context=audit_context(), farewell=farewell_queued)
    except repository.AccountGone:  # another deletion came first: it answered 204
        raise InvalidToken() from None
    except repository.LastAdminStays:  # its company has other members and no other Admin
        raise LastAdmin() from None
    if farewell_queued is not None:
        mail.wake_sender()
