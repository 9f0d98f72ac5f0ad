"""The only code that queries or writes the database: plain functions over `db.session`.

The rule, for every module here:
- **Writes go through SQLAlchemy Core statements** on the session's connection
  (`db.session.connection()`), never through the ORM's unit of work: no `session.add`,
  no attribute changes flushed. New rows are written with `core.insert`, which sends the
  columns given and lets the database (and the columns' defaults) fill the rest.
- **Every change of an account first locks the account's row** with `core.lock_account`
  (one UPDATE that finds the row, locks it on Postgres, takes SQLite's write lock, and
  raises AccountGone, with nothing written, when the account was deleted meanwhile),
  then writes; its audit events go through the one writer, `audit.write_event`, in the
  same transaction.
- **Reads may use the ORM** (`db.session.scalars(select(Model))`) where the rows are
  few or cold (the outbox, idempotency keys, the audit trail); the hot paths (a bearer
  token's account, /verify, sign-up, log-in) read with Core statements built once and
  hand back detached ORM objects (`core.detached`).
- Views never touch the session; models never commit; each function commits its own
  transaction (or rolls it back) before it returns.

- **Every change of a company's team** (a member's role or membership, a custom role, an
  invitation, the company's fields, and the deletion of an account that has a company)
  first locks the company's row (`core.lock_company`, through `teams.team_change`), then
  the accounts it changes: always company first, then accounts, so two such changes
  never wait for each other in a circle. The rules of a team change (permissions, the
  last Admin) are checked on what the change reads under that lock.

Modules: `core` (tables, the locks, inserts, reads without a transaction), `audit`,
`accounts` (creating and reading accounts, their roles and signing credentials),
`changes` (every change of an existing account), `mfa` (two-factor: the secrets, the
recovery codes, the log-in challenges), `teams` (a company's members, custom roles and
invitations), `outbox` (the mail outbox), and `idempotency` (Idempotency-Key rows).
Everything callers use is re-exported here.
"""

from app.repository.accounts import (
    Account,
    CredentialIdentity,
    NewAccount,
    account_by_email,
    account_by_id,
    create_account,
    credential_identity,
    email_exists,
    find_credential,
    live_credential,
    system_role,
    system_role_by_id,
)
from app.repository.audit import AuditContext, audit_events, record_audit_event
from app.repository.changes import (
    change_email,
    delete_account,
    mark_email_verified,
    record_email_change_request,
    record_reset_request,
    set_new_password,
    set_password_hash,
    update_profile,
)
from app.repository.core import (
    AccountGone,
    ChangedMeanwhile,
    CompanyGone,
    DuplicateEmail,
    LastAdminStays,
    ping,
    rollback,
)
from app.repository.idempotency import (
    Claim,
    claim_idempotency_key,
    complete_idempotency_key,
    get_idempotency_key,
    purge_idempotency_keys,
    release_idempotency_key,
)
from app.repository.mfa import (
    MAX_MFA_FAILURES,
    Challenge,
    CodeRefused,
    Proof,
    TwoFactor,
    TwoFactorOff,
    TwoFactorOn,
    disable_mfa,
    enable_mfa,
    finish_mfa_login,
    mfa_challenge,
    record_mfa_failure,
    replace_recovery_codes,
    reset_password,
    set_pending_secret,
    start_login,
    two_factor,
)
from app.repository.outbox import (
    claim_mails,
    mail_done,
    mail_failed,
    mail_retry_at,
    outbox,
    pending_mail_count,
    queue_mail,
    retry_mail,
)
from app.repository.sessions import (
    SessionGone,
    end_session,
    end_sessions,
    live_sessions,
    needs_touch,
    new_credential_key,
    new_session,
    open_session,
    purge_ended_sessions,
    replace_sessions,
    touch_session,
)
from app.repository.team_reads import (
    InvitationRecord,
    MemberRecord,
    RoleRecord,
    any_role,
    company_role,
    company_roles,
    invitation_by_id,
    invitation_page,
    member_of,
    member_page,
    role_name_key,
)
from app.repository.teams import TeamChange, team_change

__all__ = [
    "Account",
    "AccountGone",
    "AuditContext",
    "Challenge",
    "ChangedMeanwhile",
    "Claim",
    "CodeRefused",
    "CompanyGone",
    "CredentialIdentity",
    "DuplicateEmail",
    "InvitationRecord",
    "LastAdminStays",
    "MAX_MFA_FAILURES",
    "MemberRecord",
    "NewAccount",
    "Proof",
    "RoleRecord",
    "SessionGone",
    "TeamChange",
    "TwoFactor",
    "TwoFactorOff",
    "TwoFactorOn",
    "account_by_email",
    "account_by_id",
    "any_role",
    "audit_events",
    "change_email",
    "claim_idempotency_key",
    "claim_mails",
    "company_role",
    "company_roles",
    "complete_idempotency_key",
    "create_account",
    "credential_identity",
    "delete_account",
    "disable_mfa",
    "email_exists",
    "enable_mfa",
    "end_session",
    "end_sessions",
    "find_credential",
    "finish_mfa_login",
    "get_idempotency_key",
    "invitation_by_id",
    "invitation_page",
    "live_credential",
    "live_sessions",
    "mail_done",
    "mail_failed",
    "mail_retry_at",
    "mark_email_verified",
    "member_of",
    "member_page",
    "mfa_challenge",
    "needs_touch",
    "new_credential_key",
    "new_session",
    "open_session",
    "outbox",
    "pending_mail_count",
    "ping",
    "purge_ended_sessions",
    "purge_idempotency_keys",
    "queue_mail",
    "record_audit_event",
    "record_email_change_request",
    "record_mfa_failure",
    "record_reset_request",
    "release_idempotency_key",
    "replace_recovery_codes",
    "replace_sessions",
    "reset_password",
    "retry_mail",
    "role_name_key",
    "rollback",
    "set_new_password",
    "set_password_hash",
    "set_pending_secret",
    "start_login",
    "system_role",
    "system_role_by_id",
    "team_change",
    "touch_session",
    "two_factor",
    "update_profile",
]
