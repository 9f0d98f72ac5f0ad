"""Account use cases: sign up, authenticate, revoke tokens.

The order of steps lives here: validation is done by the caller's schema, hashing by
the passwords module, every read and write by the repository.
"""

from typing import Any, NoReturn

from flask import has_request_context

from app import passwords, repository
from app.errors import EmailTaken, InvalidCredentials
from app.models import SigningCredential, User
from app.observability import client_ip, current_request_id

CREATORS = {
    "admin": repository.create_admin_account,
    "customer": repository.create_customer_account,
}


def audit_context() -> repository.AuditContext:
    """Who is asking: the client and request id, or the operator's CLI."""
    if not has_request_context():
        return repository.AuditContext(client_ip="cli")
    return repository.AuditContext(client_ip=client_ip(), request_id=current_request_id() or "")


def refuse_duplicate(email: str) -> NoReturn:
    """Record the repeated sign-up and answer 409 EMAIL_TAKEN."""
    repository.record_audit_event("signup_duplicate", audit_context(), email=email)
    raise EmailTaken()


def sign_up(kind: str, fields: dict[str, Any]) -> repository.Account:
    """Create an admin or customer account from loaded sign-up fields.

    A known e-mail is refused before paying for a hash; the hash is made outside any
    transaction; the unique index settles the race between two sign-ups.
    """
    if repository.email_exists(fields["email"]):
        refuse_duplicate(fields["email"])
    account_fields = {key: value for key, value in fields.items() if key != "password"}
    password_hash = passwords.hash_password(fields["password"])
    try:
        return CREATORS[kind](account_fields, password_hash, audit_context())
    except repository.DuplicateEmail:
        refuse_duplicate(fields["email"])


def authenticate(email: str, password: str) -> repository.Account:
    """The account of a right e-mail and password; InvalidCredentials otherwise, in about
    the same time whether or not the e-mail has an account."""
    user = repository.find_user_by_email(email)
    if user is None:
        passwords.verify_against_dummy(password)
        repository.record_audit_event("login_failed", audit_context(), email=email)
        raise InvalidCredentials()
    if not passwords.verify_password(user.password_hash, password):
        repository.record_audit_event("login_failed", audit_context(), user.id, email)
        raise InvalidCredentials()
    if passwords.needs_rehash(user.password_hash):
        repository.set_password_hash(user, passwords.hash_password(password))
    return repository.Account(user, repository.current_credential(user, audit_context()))


def revoke_tokens(user: User) -> SigningCredential:
    """Rotate the user's signing credential: every token issued before is refused."""
    return repository.rotate_credential(user, audit_context())
