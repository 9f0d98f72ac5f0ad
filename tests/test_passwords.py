"""The passwords module: argon2id with the configured parameters, NFKC, rehash checks."""

from app import create_app, passwords
from tests.helpers import PASSWORD


def make_app(**argon2):
    """An app (no database needed) with the given ARGON2_* settings."""
    return create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", **argon2})


def test_hash_is_argon2id_with_configured_parameters():
    app = make_app(ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=64, ARGON2_PARALLELISM=1)
    with app.app_context():
        hashed = passwords.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$v=19$m=64,t=2,p=1$")
    assert PASSWORD not in hashed


def test_verify():
    with make_app().app_context():
        hashed = passwords.hash_password(PASSWORD)
        assert passwords.verify_password(hashed, PASSWORD)
        assert not passwords.verify_password(hashed, PASSWORD.lower())
        assert not passwords.verify_password(hashed, " " + PASSWORD)
        assert not passwords.verify_password("not a hash", PASSWORD)


def test_nfkc_is_applied_on_both_sides():
    with make_app().app_context():
        hashed = passwords.hash_password("Ｐassword@１２３")  # full-width P, 1, 2, 3
        assert passwords.verify_password(hashed, "Password@123")


def test_same_password_hashes_differently():
    with make_app().app_context():
        assert passwords.hash_password(PASSWORD) != passwords.hash_password(PASSWORD)


def test_needs_rehash_when_parameters_change():
    with make_app(ARGON2_TIME_COST=1).app_context():
        old = passwords.hash_password(PASSWORD)
        assert not passwords.needs_rehash(old)
    with make_app(ARGON2_TIME_COST=2).app_context():
        assert passwords.needs_rehash(old)
        assert passwords.verify_password(old, PASSWORD)
