"""An account's security version, and the credential an idempotent sign-up answered with.

`users.security_version` counts the changes of the password and of the address: the
links of reset and e-mail-change mails are bound to it, so every such change (also one
that later returns to the same address) kills every earlier link, and of two uses of one
link at the same moment only the one whose conditional UPDATE finds the version unchanged
succeeds. `idempotency_keys.credential_id` is the signing credential of a sign-up's first
answer: a replay answers with it only while it lives (never once its owner logged out,
reset or changed the password, or changed the address).

Revision ID: 0007_security_version
Revises: 0006_profile_field_sizes
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_security_version"
down_revision = "0006_profile_field_sizes"
branch_labels = None
depends_on = None


def upgrade():
    """Every existing account starts at version 0; existing keys have no credential (a
    replay of one answers as a new sign-up would)."""
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("security_version", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.add_column(sa.Column("credential_id", sa.String(36), nullable=True))


def downgrade():
    """Drop both columns."""
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("credential_id")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("security_version")
