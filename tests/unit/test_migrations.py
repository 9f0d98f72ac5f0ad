"""The migrations: they build the models' schema and seed the two system roles."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from app.extensions import db
from app.models import Role
from tests.helpers import ADMIN_ROLE, CUSTOMER_ROLE


def test_system_roles_are_seeded_exactly(app):
    with app.app_context():
        roles = db.session.scalars(sa.select(Role).order_by(Role.name)).all()
        seeded = [
            {
                "name": r.name,
                "description": r.description,
                "category": r.category,
                "permission": r.permission,
            }
            for r in roles
        ]
    assert seeded == [ADMIN_ROLE, CUSTOMER_ROLE]


def test_schema_matches_the_models(app):
    with app.app_context(), db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert differences == []


def test_downgrade_and_upgrade_again(app):
    with app.app_context():
        downgrade(revision="base")
        assert "users" not in sa.inspect(db.engine).get_table_names()
        upgrade()
        assert {"users", "companies", "roles", "signing_credentials"} <= set(
            sa.inspect(db.engine).get_table_names()
        )
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Role)) == 2
