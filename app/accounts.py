"""Account use cases: sign up, authenticate, revoke tokens.

The order of steps lives here: validation is done by the caller's schema, hashing by
the passwords module, every read and write by the repository.
"""

from app import passwords, repository
from app.errors import EmailTaken, InvalidCredentials

CREATORS = {
    "admin": repository.create_admin_account,
    "customer": repository.create_customer_account,
}


def sign_up(kind, fields):
    """Create an admin or customer account from loaded sign-up fields.

    A known e-mail is refused before paying for a hash; the hash is made outside any
    transaction; the unique index settles the race between two sign-ups.
    """
    if repository.email_exists(fields["email"]):
        raise EmailTaken()
    account_fields = {key: value for key, value in fields.items() if key != "password"}
    password_hash = passwords.hash_password(fields["password"])
    try:
        return CREATORS[kind](account_fields, password_hash)
    except repository.DuplicateEmail:
        raise EmailTaken() from None


def authenticate(email, password):
    """Return (user, credential) for a right e-mail and password; InvalidCredentials
    otherwise, in about the same time whether or not the e-mail has an account."""
    user = repository.find_user_by_email(email)
    if user is None:
        passwords.verify_against_dummy(password)
        raise InvalidCredentials()
    if not passwords.verify_password(user.password_hash, password):
        raise InvalidCredentials()
    if passwords.needs_rehash(user.password_hash):
        repository.set_password_hash(user, passwords.hash_password(password))
    return user, repository.current_credential(user)


def revoke_tokens(user):
    """Rotate the user's signing credential: every token issued before is refused."""
    return repository.rotate_credential(user)
