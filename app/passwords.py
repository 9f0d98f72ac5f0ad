"""Password hashing with argon2id (argon2-cffi); the only module that touches password bytes."""

import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

EXTENSION_KEY = "lumyri_password_hasher"


def init_app(app):
    """Build the app's argon2id hasher from its ARGON2_* settings."""
    app.extensions[EXTENSION_KEY] = PasswordHasher(
        time_cost=app.config["ARGON2_TIME_COST"],
        memory_cost=app.config["ARGON2_MEMORY_COST"],
        parallelism=app.config["ARGON2_PARALLELISM"],
    )


def _hasher():
    """Return the current app's hasher."""
    return current_app.extensions[EXTENSION_KEY]


def _normalise(password):
    """NFKC-normalise, the same way at sign-up and at login; never trim or case-fold."""
    return unicodedata.normalize("NFKC", password)


def hash_password(password):
    """Return an argon2id hash of the password."""
    return _hasher().hash(_normalise(password))


def verify_password(password_hash, password):
    """Return True when the password matches the hash; never raises for a mismatch."""
    try:
        return _hasher().verify(password_hash, _normalise(password))
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash):
    """Return True when the hash was made with other parameters than today's."""
    return _hasher().check_needs_rehash(password_hash)
