"""Room for the profile and company rules: an avatar URL of 2048 characters, a language
tag of 64, a default app of 100 and a company address of 500.

Revision ID: 0006_profile_field_sizes
Revises: 0005_mail_outbox
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_profile_field_sizes"
down_revision = "0005_mail_outbox"
branch_labels = None
depends_on = None

USERS = (("avatar", 512, 2048), ("language", 32, 64), ("default_app", 64, 128))


def upgrade():
    """Widen the columns (no value changes)."""
    with op.batch_alter_table("users") as batch:
        for name, before, after in USERS:
            batch.alter_column(
                name,
                existing_type=sa.String(before),
                type_=sa.String(after),
                existing_nullable=False,
            )
    with op.batch_alter_table("companies") as batch:
        batch.alter_column(
            "address", existing_type=sa.String(255), type_=sa.String(500), existing_nullable=False
        )


def downgrade():
    """Back to the earlier sizes (values longer than those would be refused)."""
    with op.batch_alter_table("companies") as batch:
        batch.alter_column(
            "address", existing_type=sa.String(500), type_=sa.String(255), existing_nullable=False
        )
    with op.batch_alter_table("users") as batch:
        for name, before, after in USERS:
            batch.alter_column(
                name,
                existing_type=sa.String(after),
                type_=sa.String(before),
                existing_nullable=False,
            )
