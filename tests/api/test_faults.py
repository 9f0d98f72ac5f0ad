"""Database faults: with Postgres cut off behind a proxy, the service answers 503 in
bounded time, writes nothing half-way, and serves again once the database is back."""

import time

import pytest
import sqlalchemy as sa

from app import create_app, repository
from app.extensions import db
from app.models import Company, SigningCredential, User
from tests.conftest import migrate_database, postgres_schema
from tests.helpers import Api, error_of, signup_body
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres
BOUND_SECONDS = 5  # the contract: a 503 within 5 s


@pytest.fixture
def proxied(postgres_server):
    """(app, api, proxy, direct URL): the app reaches a fresh schema through the proxy."""
    with postgres_schema(postgres_server) as direct_url:
        migrate_database(direct_url)
        url = sa.make_url(direct_url)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        proxied_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        app = create_app({"SQLALCHEMY_DATABASE_URI": proxied_url})
        try:
            yield app, Api(app.test_client()), proxy, direct_url
        finally:
            proxy.close()
            with app.app_context():
                db.engine.dispose()


def rows(direct_url):
    """(users, companies, credentials) counted straight on the server, not via the proxy."""
    engine = sa.create_engine(direct_url)
    try:
        with engine.connect() as connection:
            return tuple(
                connection.scalar(sa.select(sa.func.count()).select_from(model.__table__))
                for model in (User, Company, SigningCredential)
            )
    finally:
        engine.dispose()


def timed(call):
    """(result, seconds)."""
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def assert_unavailable(response, seconds):
    """503 SERVICE_UNAVAILABLE within the bound."""
    assert response.status_code == 503
    assert error_of(response)["code"] == "SERVICE_UNAVAILABLE"
    assert seconds < BOUND_SECONDS


@pytest.mark.parametrize("blackhole", [False, True], ids=["refused", "blackholed"])
def test_cut_database_gives_503_then_recovers(proxied, blackhole):
    app, api, proxy, direct_url = proxied
    assert api.signup("admin").status_code == 201
    assert rows(direct_url) == (1, 1, 1)

    proxy.cut(blackhole=blackhole)
    assert_unavailable(*timed(lambda: api.signup("admin")))
    assert_unavailable(*timed(lambda: api.client.get("/readyz")))
    assert_unavailable(*timed(lambda: api.login("someone@example.org")))
    assert api.client.get("/healthz").status_code == 200
    assert rows(direct_url) == (1, 1, 1)

    proxy.restore()
    assert api.client.get("/readyz").status_code == 200
    assert api.signup("admin").status_code == 201
    assert rows(direct_url) == (2, 2, 2)


def test_cut_in_the_middle_of_the_transaction_leaves_nothing(proxied, monkeypatch):
    app, api, proxy, direct_url = proxied
    real_key = repository.new_credential_key

    def cut_then_key():
        proxy.cut()  # the transaction has begun (the role was read); nothing is committed
        return real_key()

    monkeypatch.setattr(repository, "new_credential_key", cut_then_key)
    assert_unavailable(*timed(lambda: api.signup("admin", signup_body())))
    assert rows(direct_url) == (0, 0, 0)
    monkeypatch.setattr(repository, "new_credential_key", real_key)
    proxy.restore()
    assert api.signup("admin").status_code == 201
    assert rows(direct_url) == (1, 1, 1)


def test_a_held_lock_gives_503_in_bounded_time(proxied):
    """A write blocked by another transaction's lock gives up within the bound."""
    app, api, proxy, direct_url = proxied
    engine = sa.create_engine(direct_url)
    try:
        with engine.connect() as locker:
            locker.execute(sa.text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
            assert_unavailable(*timed(lambda: api.signup("customer")))
            locker.rollback()
    finally:
        engine.dispose()
    assert api.signup("customer").status_code == 201
