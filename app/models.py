"""Database models: users, companies, roles and signing credentials.

Models hold data only; reading and writing them is the repository's job.
"""

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

if TYPE_CHECKING:
    # db.Model is built at run time from app.extensions.Base (model_class=Base), so the
    # type checker sees the declarative base itself.
    from app.extensions import Base as Model
else:
    Model = db.Model

ADMIN_ROLE = "Admin"
CUSTOMER_ROLE = "Customer"
# The system roles' fixed ids, the same in every company and deployment (seeded by the
# first migration).
ADMIN_ROLE_ID = "6a0f1c1e-2d7b-4c55-9a57-0e3c2b6f0a01"
CUSTOMER_ROLE_ID = "6a0f1c1e-2d7b-4c55-9a57-0e3c2b6f0a02"
SYSTEM_ROLE = "SYSTEM ROLE"
CUSTOM_ROLE = "CUSTOM ROLE"
STATE_CARD_NOT_FOUND = "CARD_NOT_FOUND"
STATE_ACTIVED = "ACTIVED"  # spelled as in the platform's API document
# NFKC can make one character of a local part (at most 64) up to 18 (U+FDFA).
EMAIL_KEY_MAX = 1536


def new_uuid() -> str:
    """Return a fresh uuid4 as its canonical string."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    """Return the current time, timezone-aware, in UTC (the service's one clock)."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A time read back from the database, timezone-aware: SQLite hands back naive
    datetimes, which were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def rfc3339(moment: datetime) -> str:
    """A time as the contract writes it in answers: RFC 3339 in UTC, whole seconds, `Z`
    (`2026-12-02T10:00:00Z`)."""
    return as_utc(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Role(Model):
    """A role with its permission tree (app.permissions): a system role (no company:
    `Admin` and `Customer`, fixed ids, seeded by a migration) or a company's custom role,
    whose name is unique in its company by its comparison form `name_key`."""

    __tablename__ = "roles"
    __table_args__ = (sa.Index("uq_roles_company_name_key", "company_id", "name_key", unique=True),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(sa.String(64))
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    category: Mapped[str] = mapped_column(sa.String(64))
    permission: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    company_id: Mapped[str | None] = mapped_column(
        sa.String(36),
        sa.ForeignKey("companies.id", name="fk_roles_company_id_companies", ondelete="CASCADE"),
        default=None,
    )
    name_key: Mapped[str] = mapped_column(sa.String(256), default="", server_default="")
    created_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), default=utc_now)


class Company(Model):
    """The company an admin signs up with; every field but the id starts empty."""

    __tablename__ = "companies"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(sa.String(255), default="")
    phone: Mapped[str] = mapped_column(sa.String(64), default="")
    address: Mapped[str] = mapped_column(sa.String(500), default="")
    describe: Mapped[str] = mapped_column(sa.Text, default="")
    email: Mapped[str] = mapped_column(sa.String(254), default="")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utc_now)


class User(Model):
    """An account. `email` is stored in its canonical form; `email_key`, its comparison
    form, is unique (app.email_address): every spelling of one mailbox is one account."""

    __tablename__ = "users"
    __table_args__ = (sa.Index("ix_users_company_joined", "company_id", "joined_at", "id"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    first_name: Mapped[str] = mapped_column(sa.String(100))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str] = mapped_column(sa.String(254))
    email_key: Mapped[str] = mapped_column(sa.String(EMAIL_KEY_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    phone: Mapped[str] = mapped_column(sa.String(64), default="")
    country: Mapped[str] = mapped_column(sa.String(64), default="")
    city: Mapped[str] = mapped_column(sa.String(128), default="")
    avatar: Mapped[str] = mapped_column(sa.String(2048), default="")
    address: Mapped[str | None] = mapped_column(sa.String(255), default=None)
    state: Mapped[str] = mapped_column(sa.String(32))
    language: Mapped[str] = mapped_column(sa.String(64), default="")
    timezone: Mapped[str] = mapped_column(sa.String(64), default="")
    default_app: Mapped[str] = mapped_column(sa.String(128), default="")
    company_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("companies.id"), default=None
    )
    role_id: Mapped[str] = mapped_column(sa.String(36), sa.ForeignKey("roles.id"))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utc_now)
    # When the address was proved to be the account's (None: not yet).
    email_verified_at: Mapped[datetime | None] = mapped_column(
        sa.DateTime(timezone=True), default=None
    )
    # Counts the changes of the password and of the address (app.links binds reset and
    # e-mail-change links to it; such a change is written only where it is unchanged).
    security_version: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    # When the member joined its company (None without one).
    joined_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), default=None)
    # Two-factor (app.mfa): the TOTP secret, encrypted (None: off), a set-up's pending
    # one, when it was turned on, and the last 30-second step whose code was used.
    totp_secret: Mapped[str | None] = mapped_column(sa.String(255), default=None)
    totp_pending_secret: Mapped[str | None] = mapped_column(sa.String(255), default=None)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(
        sa.DateTime(timezone=True), default=None
    )
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger, default=None)

    # Read-only: every write is a Core statement (app.repository); a user read with Core
    # carries detached copies of its company and role.
    company: Mapped[Company | None] = relationship(lazy="joined", viewonly=True)
    role: Mapped[Role] = relationship(lazy="joined", viewonly=True)


class SigningCredential(Model):
    """A session: the JWT credential of one log-in (or of any other answer that hands out
    a token). Its `key` is the token's `iss`; its secret is derived, never stored; it
    ends (is deleted) on a log-out, a new password, ..., or at `expires_at` (its token's
    `exp`)."""

    __tablename__ = "signing_credentials"
    __table_args__ = (sa.Index("ix_signing_credentials_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    key: Mapped[str] = mapped_column(sa.String(32), unique=True)
    user_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utc_now)
    # As the session started: the User-Agent (its first 255 characters) and the client.
    user_agent: Mapped[str] = mapped_column(sa.String(255), default="", server_default="")
    ip: Mapped[str] = mapped_column(sa.String(64), default="", server_default="")
    # Kept to within 5 minutes (app.sessions), not written on every request.
    last_used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), default=None)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)

    user: Mapped[User] = relationship(lazy="joined", viewonly=True)


class AuditEvent(Model):
    """Something that happened to an account, written in the transaction that did it."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utc_now, index=True
    )
    event: Mapped[str] = mapped_column(sa.String(32))
    user_id: Mapped[str | None] = mapped_column(sa.String(36), default=None, index=True)
    email: Mapped[str] = mapped_column(sa.String(254), default="", index=True)
    client_ip: Mapped[str] = mapped_column(sa.String(64), default="")
    request_id: Mapped[str] = mapped_column(sa.String(128), default="")
    # What the event acted on (a member, invitation, role or session), and details (a
    # role change's changed permission leaves).
    target_id: Mapped[str | None] = mapped_column(sa.String(36), default=None)
    detail: Mapped[str] = mapped_column(sa.String(1000), default="", server_default="")


class IdempotencyKey(Model):
    """A sign-up's Idempotency-Key: what it was used with and what it answered."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        sa.UniqueConstraint("endpoint", "key", name="uq_idempotency_keys_endpoint_key"),
    )

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True
    )
    endpoint: Mapped[str] = mapped_column(sa.String(64))
    key: Mapped[str] = mapped_column(sa.String(255))
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utc_now, index=True
    )
    # None while the first request is being processed.
    status: Mapped[int | None] = mapped_column(sa.Integer, default=None)
    user_id: Mapped[str | None] = mapped_column(sa.String(36), default=None)
    # The signing credential of the first answer: a replay answers only while it lives.
    credential_id: Mapped[str | None] = mapped_column(sa.String(36), default=None)
    # What another keyed request made (an invitation's id), for its replay.
    result_id: Mapped[str | None] = mapped_column(sa.String(36), default=None)


class OutboxMail(Model):
    """A mail to send: written in the transaction of the change it announces, sent after
    the commit by a sender (app.mail), deleted once the SMTP server took it.

    No link is stored: its token is made when the mail is sent, bound to what it proves;
    `params` records that (the address, a fingerprint of the password hash), and the mail
    is dropped as superseded if it changed meanwhile."""

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(sa.String(32))
    user_id: Mapped[str | None] = mapped_column(sa.String(36), default=None, index=True)
    to_address: Mapped[str] = mapped_column(sa.String(254))
    first_name: Mapped[str] = mapped_column(sa.String(100))
    language: Mapped[str] = mapped_column(sa.String(16))
    # What the mail's text needs besides the name (e.g. the new address of a change).
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")  # or "failed"
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str] = mapped_column(sa.String(255), default="")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utc_now)
    next_attempt_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utc_now, index=True
    )
    # A sender's claim: until then no other sender takes the mail.
    claimed_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), default=None)
    claim: Mapped[str] = mapped_column(sa.String(32), default="")


INVITATION_PENDING = "pending"
INVITATION_ACCEPTED = "accepted"
INVITATION_REVOKED = "revoked"
INVITATION_EXPIRED = "expired"  # shown, never stored: a pending one past expires_at


class Invitation(Model):
    """An invitation to a company, bound to the invited address (its comparison form).
    Its link is bound to `link_version`, which a resend moves on; `role_name` keeps the
    name of the role it named for when that role is deleted after it closed."""

    __tablename__ = "invitations"
    __table_args__ = (
        sa.Index("ix_invitations_company_created", "company_id", "created_at"),
        sa.Index("ix_invitations_company_email_key", "company_id", "email_key"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    company_id: Mapped[str] = mapped_column(
        sa.String(36),
        sa.ForeignKey(
            "companies.id", name="fk_invitations_company_id_companies", ondelete="CASCADE"
        ),
    )
    email: Mapped[str] = mapped_column(sa.String(254))
    email_key: Mapped[str] = mapped_column(sa.String(EMAIL_KEY_MAX))
    role_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    role_name: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(
        sa.String(16), default=INVITATION_PENDING, server_default=INVITATION_PENDING
    )
    invited_by: Mapped[str | None] = mapped_column(
        sa.String(36),
        sa.ForeignKey("users.id", name="fk_invitations_invited_by_users", ondelete="SET NULL"),
        default=None,
    )
    link_version: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), default=None)


class RecoveryCode(Model):
    """A two-factor recovery code of an account, as a keyed hash; good once."""

    __tablename__ = "recovery_codes"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "code_hash", name="uq_recovery_codes_user_code"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(
        sa.String(36),
        sa.ForeignKey("users.id", name="fk_recovery_codes_user_id_users", ondelete="CASCADE"),
    )
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utc_now)
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), default=None)


class MfaChallenge(Model):
    """What an `mfa_token` stands for: a right password of an account with two-factor on,
    waiting for its code; good until `expires_at`, once, and for 5 wrong codes."""

    __tablename__ = "mfa_challenges"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(
        sa.String(36),
        sa.ForeignKey("users.id", name="fk_mfa_challenges_user_id_users", ondelete="CASCADE"),
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    failures: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), default=None)
