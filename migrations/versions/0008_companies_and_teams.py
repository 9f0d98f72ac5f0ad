"""Companies and teams: custom roles of a company, invitations, when a member joined, and
what an audit event acted on.

- `roles.company_id`: null for the two system roles (`Admin`, `Customer`: fixed ids,
  seeded by 0001), a company's id for its custom roles (deleted with the company).
  `roles.name_key` is the name's comparison form (NFKC, case folded): unique per company
  (the unique index on `(company_id, name_key)`; the system roles' names are refused for
  custom roles by the service, as the index does not compare across NULL).
- `users.joined_at`: when the member joined its company (an admin: at sign-up); the
  member list pages by `(joined_at, id)` on an index that starts with the company.
- `invitations`: one row per invitation, bound to the invited address's comparison form;
  `link_version` is what its link is bound to (a resend moves it on: the old link dies);
  `role_name` keeps the name of the role it named, for a closed invitation whose role was
  deleted since.
- `idempotency_keys.result_id`: what a keyed request other than a sign-up made (an
  invitation's id), for its replay.
- `audit_events.target_id` (the member, invitation, role or session acted on) and
  `detail` (e.g. the permission leaves a role change changed).

Revision ID: 0008_companies_and_teams
Revises: 0007_security_version
Create Date: 2026-12-03
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0008_companies_and_teams"
down_revision = "0007_security_version"
branch_labels = None
depends_on = None

EMAIL_KEY_MAX = 1536


def upgrade():
    """Add the columns and the table; fill the system roles' name keys and the existing
    admins' joined_at."""
    with op.batch_alter_table("roles") as batch:
        batch.drop_constraint("uq_roles_name", type_="unique")
        batch.add_column(
            sa.Column(
                "company_id",
                sa.String(36),
                sa.ForeignKey(
                    "companies.id", name="fk_roles_company_id_companies", ondelete="CASCADE"
                ),
                nullable=True,
            )
        )
        batch.add_column(sa.Column("name_key", sa.String(256), nullable=False, server_default=""))
        batch.add_column(sa.Column("created_at", sa.DateTime(timezone=True), nullable=True))
    roles = sa.table(
        "roles",
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("name_key", sa.String),
    )
    connection = op.get_bind()
    for role_id, name in connection.execute(sa.select(roles.c.id, roles.c.name)).all():
        key = unicodedata.normalize("NFKC", name).casefold()
        connection.execute(roles.update().where(roles.c.id == role_id).values(name_key=key))
    op.create_index("uq_roles_company_name_key", "roles", ["company_id", "name_key"], unique=True)

    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE users SET joined_at = created_at WHERE company_id IS NOT NULL")
    op.create_index("ix_users_company_joined", "users", ["company_id", "joined_at", "id"])

    op.create_table(
        "invitations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "company_id",
            sa.String(36),
            sa.ForeignKey(
                "companies.id", name="fk_invitations_company_id_companies", ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("email_key", sa.String(EMAIL_KEY_MAX), nullable=False),
        sa.Column("role_id", sa.String(36), nullable=False),
        sa.Column("role_name", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column(
            "invited_by",
            sa.String(36),
            sa.ForeignKey("users.id", name="fk_invitations_invited_by_users", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("link_version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_invitations_company_created", "invitations", ["company_id", "created_at"])
    op.create_index("ix_invitations_company_email_key", "invitations", ["company_id", "email_key"])
    op.create_index("ix_invitations_role_id", "invitations", ["role_id"])

    with op.batch_alter_table("idempotency_keys") as batch:
        batch.add_column(sa.Column("result_id", sa.String(36), nullable=True))
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("target_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("detail", sa.String(1000), nullable=False, server_default=""))


def downgrade():
    """Drop what upgrade added (custom roles and invitations are lost)."""
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("detail")
        batch.drop_column("target_id")
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("result_id")
    op.drop_index("ix_invitations_role_id", table_name="invitations")
    op.drop_index("ix_invitations_company_email_key", table_name="invitations")
    op.drop_index("ix_invitations_company_created", table_name="invitations")
    op.drop_table("invitations")
    op.drop_index("ix_users_company_joined", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("joined_at")
    op.execute(
        "UPDATE users SET role_id = '6a0f1c1e-2d7b-4c55-9a57-0e3c2b6f0a01' "
        "WHERE role_id IN (SELECT id FROM roles WHERE company_id IS NOT NULL)"
    )
    op.execute("DELETE FROM roles WHERE company_id IS NOT NULL")
    op.drop_index("uq_roles_company_name_key", table_name="roles")
    with op.batch_alter_table("roles") as batch:
        batch.drop_column("created_at")
        batch.drop_column("name_key")
        batch.drop_column("company_id")
        batch.create_unique_constraint("uq_roles_name", ["name"])
