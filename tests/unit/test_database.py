"""Per-connection database settings: what keeps writers from failing or waiting forever."""

import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db


@pytest.fixture
def engine_of():
    """Build an app on a URL and hand out its engine (disposed afterwards)."""
    apps = []

    def build(url):
        app = create_app({"SQLALCHEMY_DATABASE_URI": url})
        apps.append(app)
        with app.app_context():
            return app, db.engine

    yield build
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def test_sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys(engine_of, sqlite_database):
    app, engine = engine_of(sqlite_database)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert busy == app.config["SQLITE_BUSY_TIMEOUT_MS"]
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


@pytest.mark.postgres
def test_postgres_connections_bound_every_wait(engine_of, postgres_database):
    app, engine = engine_of(postgres_database)
    with engine.connect() as connection:
        statement = connection.execute(sa.text("SHOW statement_timeout")).scalar()
        lock = connection.execute(sa.text("SHOW lock_timeout")).scalar()
    assert statement == f"{app.config['DB_STATEMENT_TIMEOUT_MS'] // 1000}s"
    assert lock == f"{app.config['DB_LOCK_TIMEOUT_MS'] // 1000}s"
