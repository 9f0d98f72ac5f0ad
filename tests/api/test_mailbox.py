"""One mailbox, one account: every spelling of an address is the same account."""

import unicodedata

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from tests.fixtures import postgres_schema
from tests.helpers import error_of, signup_body

JOSE_NFC = unicodedata.normalize("NFC", "josé@example.org")
JOSE_NFD = unicodedata.normalize("NFD", "josé@example.org")
# Pairs that name one mailbox: sign-up with the first, then the second is taken, and
# log-in works with either.
SAME_MAILBOX = [
    ("x@bücher.de", "x@xn--bcher-kva.de"),
    ("x@xn--bcher-kva.de", "x@bücher.de"),
    ("x@ｅxample.org", "x@example.org"),
    ("x@example。org", "x@example.org"),
    (JOSE_NFC, JOSE_NFD),
    (JOSE_NFD, JOSE_NFC),
    ("straße@example.org", "STRASSE@example.org"),
    ("STRASSE@example.org", "straße@example.org"),
    ("ＵＳＥＲ@example.org", "user@example.org"),
    ("  Mixed.Case@Example.ORG ", "mixed.case@example.org"),
]


@pytest.mark.parametrize(("first", "second"), SAME_MAILBOX)
@pytest.mark.parametrize("kind", ["admin", "customer"])
def test_every_spelling_of_one_mailbox_is_one_account(api, kind, first, second):
    created = api.signup(kind, signup_body(email=first))
    assert created.status_code == 201
    other_kind = "customer" if kind == "admin" else "admin"
    for again in (first, second):
        refused = api.signup(other_kind, signup_body(email=again))
        assert refused.status_code == 409 and error_of(refused)["code"] == "EMAIL_TAKEN"
    user_id = created.get_json()["data"]["user"]["id"]
    for spelling in (first, second):
        login = api.login(spelling)
        assert login.status_code == 200, spelling
        assert login.get_json()["data"]["user"]["id"] == user_id


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("x@xn--bcher-kva.de", "x@bücher.de"),
        ("x@ｅxample.org", "x@example.org"),
        ("x@example。org", "x@example.org"),
        (JOSE_NFD, JOSE_NFC),
        ("STRASSE@Example.org", "strasse@example.org"),
        ("straße@example.org", "straße@example.org"),
    ],
)
def test_the_address_is_stored_and_returned_in_its_canonical_form(api, sent, stored):
    response = api.signup("customer", signup_body(email=sent))
    assert response.status_code == 201
    assert response.get_json()["data"]["user"]["email"] == stored


def insert_user(user_id, email, created_at):
    """A user row as the 0002 schema holds it (a customer, no company)."""
    role_id = db.session.scalar(sa.text("SELECT id FROM roles WHERE name = 'Customer'"))
    db.session.execute(
        sa.text(
            "INSERT INTO users (id, first_name, last_name, email, password_hash, phone, country,"
            " city, avatar, state, language, timezone, default_app, role_id, created_at)"
            " VALUES (:id, 'A', 'B', :email, 'x', '', '', '', '', 'ACTIVED', '', '', '', :role,"
            " :created_at)"
        ),
        {"id": user_id, "email": email, "role": role_id, "created_at": created_at},
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_database_url(request, tmp_path):
    """An empty database of its own: a SQLite file or a Postgres schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        with postgres_schema(request.getfixturevalue("postgres_server")) as url:
            yield url


def test_migration_normalises_rows_and_keeps_colliding_ones(fresh_database_url, caplog):
    app = create_app({"SQLALCHEMY_DATABASE_URI": fresh_database_url})
    with app.app_context():
        upgrade(revision="0002_audit_and_idempotency")
        insert_user("u1", "x@xn--bcher-kva.de", "2026-01-01 00:00:00")
        insert_user("u2", "x@bücher.de", "2026-01-02 00:00:00")
        insert_user("u3", "plain@example.org", "2026-01-03 00:00:00")
        db.session.commit()
        upgrade()
        rows = db.session.execute(
            sa.text("SELECT id, email, email_key FROM users ORDER BY id")
        ).all()
        db.session.remove()
        db.engine.dispose()
    assert [tuple(row) for row in rows] == [
        ("u1", "x@bücher.de", "x@bücher.de"),
        ("u2", "x@bücher.de", "duplicate:u2:x@bücher.de"),
        ("u3", "plain@example.org", "plain@example.org"),
    ]
    assert any("u1" in r.getMessage() and "u2" in r.getMessage() for r in caplog.records)
