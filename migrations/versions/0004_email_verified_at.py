"""When an account's e-mail address was verified (None: not yet).

Revision ID: 0004_email_verified_at
Revises: 0003_email_comparison_key
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_email_verified_at"
down_revision = "0003_email_comparison_key"
branch_labels = None
depends_on = None


def upgrade():
    """Every existing account starts unverified."""
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    """Forget the verification times."""
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email_verified_at")
