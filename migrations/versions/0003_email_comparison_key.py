"""One mailbox, one account: the canonical e-mail and its unique comparison form.

Revision ID: 0003_email_comparison_key
Revises: 0002_audit_and_idempotency
Create Date: 2026-11-27

Every stored address is rewritten in its canonical form (email-validator's normalised
address, lower-cased) and gets `email_key`, its NFKC case-folded comparison form, which
is unique instead of the address itself (app.email_address).

Two rows whose addresses name one mailbox cannot both own that key. Nothing is dropped
and the upgrade does not fail: the oldest account keeps the mailbox (and logs in with
any spelling of it); each later one keeps its address as it was stored and gets the key
`duplicate:<user id>:<key>`, which no address can equal (`:` is in no canonical
address), and a warning names both user ids so that an operator can merge or delete.
"""

import logging

import sqlalchemy as sa
from alembic import op

from app.email_address import canonical_email, email_key

revision = "0003_email_comparison_key"
down_revision = "0002_audit_and_idempotency"
branch_labels = None
depends_on = None

EMAIL_KEY_MAX = 1536
log = logging.getLogger("alembic.runtime.migration")
users = sa.table(
    "users",
    sa.column("id", sa.String),
    sa.column("email", sa.String),
    sa.column("email_key", sa.String),
    sa.column("created_at", sa.DateTime),
)


def upgrade():
    """Add the key, rewrite every address, then make the key (not the address) unique."""
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email_key", sa.String(EMAIL_KEY_MAX), nullable=True))
        batch.drop_constraint("uq_users_email", type_="unique")
    connection = op.get_bind()
    owners = {}
    rows = connection.execute(
        sa.select(users.c.id, users.c.email).order_by(users.c.created_at, users.c.id)
    )
    for user_id, stored in rows.all():
        canonical = canonical_email(stored)
        key = email_key(canonical)
        values = {"email": canonical, "email_key": key}
        if key in owners:
            log.warning(
                "users %s and %s name one mailbox; %s keeps it, %s gets a placeholder key",
                owners[key],
                user_id,
                owners[key],
                user_id,
            )
            values = {"email_key": f"duplicate:{user_id}:{key}"}
        else:
            owners[key] = user_id
        connection.execute(sa.update(users).where(users.c.id == user_id).values(**values))
    with op.batch_alter_table("users") as batch:
        batch.alter_column("email_key", existing_type=sa.String(EMAIL_KEY_MAX), nullable=False)
        batch.create_unique_constraint("uq_users_email_key", ["email_key"])


def downgrade():
    """Back to a unique address (the addresses stay in their canonical form)."""
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_email_key", type_="unique")
        batch.drop_column("email_key")
        batch.create_unique_constraint("uq_users_email", ["email"])
