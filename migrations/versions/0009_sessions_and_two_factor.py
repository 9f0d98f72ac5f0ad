"""Sessions and two-factor.

- A signing credential is a **session** now (one per answer that hands out a token): it
  keeps the `User-Agent` and the client address it started with, when it was last used
  (to within 5 minutes) and when it ends (`expires_at`, its token's `exp`). Existing
  credentials end a token lifetime after they were made (the longest any of their tokens
  can live: tokens were signed with them for at most that long before this migration,
  but a log-in reused a credential, so its newest token may outlive this bound; such a
  token is refused once its session has ended, a day after the upgrade at most by
  default).
- `users.totp_secret` (encrypted with a key derived from SECRET_KEY), the pending secret
  of a set-up not yet confirmed, when two-factor was turned on, and the last 30-second
  step whose code was used (a code is good once).
- `recovery_codes`: keyed hashes of an account's recovery codes, each used once.
- `mfa_challenges`: the state of each `mfa_token` (used once; dead after 5 wrong codes).

Revision ID: 0009_sessions_and_two_factor
Revises: 0008_companies_and_teams
Create Date: 2026-12-03
"""

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "0009_sessions_and_two_factor"
down_revision = "0008_companies_and_teams"
branch_labels = None
depends_on = None

DEFAULT_TOKEN_SECONDS = 86400


def upgrade():
    """Add the session columns (existing ones end a day after they were made), the
    two-factor columns and tables."""
    with op.batch_alter_table("signing_credentials") as batch:
        batch.add_column(sa.Column("user_agent", sa.String(255), nullable=False, server_default=""))
        batch.add_column(sa.Column("ip", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    credentials = sa.table(
        "signing_credentials",
        sa.column("id", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("expires_at", sa.DateTime(timezone=True)),
        sa.column("last_used_at", sa.DateTime(timezone=True)),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(credentials.c.id, credentials.c.created_at)).all()
    for credential_id, created_at in rows:
        connection.execute(
            credentials.update()
            .where(credentials.c.id == credential_id)
            .values(expires_at=created_at + _day(), last_used_at=created_at)
        )
    with op.batch_alter_table("signing_credentials") as batch:
        batch.alter_column("expires_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index(
        "ix_signing_credentials_user_created", "signing_credentials", ["user_id", "created_at"]
    )
    op.create_index("ix_signing_credentials_expires_at", "signing_credentials", ["expires_at"])

    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("totp_secret", sa.String(255), nullable=True))
        batch.add_column(sa.Column("totp_pending_secret", sa.String(255), nullable=True))
        batch.add_column(sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))

    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("users.id", name="fk_recovery_codes_user_id_users", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("user_id", "code_hash", name="uq_recovery_codes_user_code"),
    )
    op.create_table(
        "mfa_challenges",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("users.id", name="fk_mfa_challenges_user_id_users", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_mfa_challenges_user_id", "mfa_challenges", ["user_id"])
    op.create_index("ix_mfa_challenges_expires_at", "mfa_challenges", ["expires_at"])


def _day():
    """A token's default lifetime (ACCESS_TOKEN_TTL_SECONDS' default)."""
    return timedelta(seconds=DEFAULT_TOKEN_SECONDS)


def downgrade():
    """Drop what upgrade added (two-factor is off for everyone afterwards)."""
    op.drop_index("ix_mfa_challenges_expires_at", table_name="mfa_challenges")
    op.drop_index("ix_mfa_challenges_user_id", table_name="mfa_challenges")
    op.drop_table("mfa_challenges")
    op.drop_table("recovery_codes")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("totp_last_step")
        batch.drop_column("totp_enabled_at")
        batch.drop_column("totp_pending_secret")
        batch.drop_column("totp_secret")
    op.drop_index("ix_signing_credentials_expires_at", table_name="signing_credentials")
    op.drop_index("ix_signing_credentials_user_created", table_name="signing_credentials")
    with op.batch_alter_table("signing_credentials") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("last_used_at")
        batch.drop_column("ip")
        batch.drop_column("user_agent")
