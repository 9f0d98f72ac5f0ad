"""Initial schema: companies, roles (seeded with the two system roles), users, credentials.

Revision ID: 0001_initial_schema
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial_schema"
down_revision = None
branch_labels = None
depends_on = None

ADMIN_ROLE_ID = "6a0f1c1e-2d7b-4c55-9a57-0e3c2b6f0a01"
CUSTOMER_ROLE_ID = "6a0f1c1e-2d7b-4c55-9a57-0e3c2b6f0a02"


def permission_tree(allowed):
    """The permission tree of the API document, every `all`/`view` set to `allowed`."""
    grant = {"all": allowed, "view": allowed}
    return {
        "platform": {
            "applications": dict(grant),
            "admins": dict(grant),
            "roles": dict(grant),
            "billing": dict(grant),
        },
        "application": {
            "applications": None,
            "tickets": dict(grant),
            "agents": dict(grant),
            "customers": dict(grant),
            "live_map": dict(grant),
            "labels": dict(grant),
            "settings": dict(grant),
        },
    }


SYSTEM_ROLES = [
    {
        "id": ADMIN_ROLE_ID,
        "name": "Admin",
        "description": "Have full access to platform",
        "category": "SYSTEM ROLE",
        "permission": permission_tree(True),
    },
    {
        "id": CUSTOMER_ROLE_ID,
        "name": "Customer",
        "description": "",
        "category": "SYSTEM ROLE",
        "permission": permission_tree(False),
    },
]


def upgrade():
    """Create the tables and seed the system roles."""
    op.create_table(
        "companies",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("phone", sa.String(64), nullable=False),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("describe", sa.Text(), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    roles = op.create_table(
        "roles",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("permission", sa.JSON(), nullable=False),
        sa.UniqueConstraint("name", name="uq_roles_name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("first_name", sa.String(100), nullable=False),
        sa.Column("last_name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("phone", sa.String(64), nullable=False),
        sa.Column("country", sa.String(64), nullable=False),
        sa.Column("city", sa.String(128), nullable=False),
        sa.Column("avatar", sa.String(512), nullable=False),
        sa.Column("address", sa.String(255), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("language", sa.String(32), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("default_app", sa.String(64), nullable=False),
        sa.Column("company_id", sa.String(36), sa.ForeignKey("companies.id"), nullable=True),
        sa.Column("role_id", sa.String(36), sa.ForeignKey("roles.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        # The e-mail is stored normalised (trimmed, lower-cased), so this unique
        # constraint is what makes two concurrent sign-ups give one 201 and one 409.
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "signing_credentials",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("key", name="uq_signing_credentials_key"),
    )
    op.create_index("ix_signing_credentials_user_id", "signing_credentials", ["user_id"])
    op.bulk_insert(roles, SYSTEM_ROLES)


def downgrade():
    """Drop everything this revision created."""
    op.drop_index("ix_signing_credentials_user_id", table_name="signing_credentials")
    op.drop_table("signing_credentials")
    op.drop_table("users")
    op.drop_table("roles")
    op.drop_table("companies")
