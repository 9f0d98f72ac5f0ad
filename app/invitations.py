"""Invitations: an admin invites an address into the company with a role; the link in
the mail lets the address's owner join (with an account, or as a new one).

An invitation is bound to the invited address (the accepting account must have it) and
its link to the invitation's link version (a resend moves it on: the old link dies);
the answer to an invitation is the same whether or not an account has the address.
Every change runs under the company's lock (app.teams.team), so two invitations of one
address, or two acceptances of one invitation, cannot both succeed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app

from app import cursors, idempotency, links, mail, passwords, permissions, ratelimit, repository
from app.accounts import audit_context
from app.email_address import email_key
from app.errors import (
    AlreadyInCompany,
    AlreadyMember,
    EmailTaken,
    InvalidLink,
    InvalidToken,
    InvitationClosed,
    InvitationEmailMismatch,
    InvitationPending,
    NotFound,
    ValidationFailed,
)
from app.models import (
    ADMIN_ROLE_ID,
    CUSTOM_ROLE,
    INVITATION_ACCEPTED,
    INVITATION_EXPIRED,
    INVITATION_PENDING,
    INVITATION_REVOKED,
    STATE_ACTIVED,
    SYSTEM_ROLE,
    Invitation,
    OutboxMail,
    User,
    new_uuid,
    rfc3339,
    utc_now,
)
from app.repository import InvitationRecord
from app.teams import (
    ROLE_ID_UNKNOWN,
    company_of,
    not_beyond,
    path_id,
    require_under_lock,
    team,
)

IDEMPOTENCY_SCOPE = "invitations"


def shown_status(invitation: InvitationRecord, now: datetime) -> str:
    """The status an answer shows: a pending invitation past expires_at is `expired`."""
    if invitation.status == INVITATION_PENDING and invitation.expires_at <= now:
        return INVITATION_EXPIRED
    return invitation.status


def role_ref(invitation: InvitationRecord) -> dict[str, str]:
    """The role an invitation names (by the name it had, once that role is deleted)."""
    category = SYSTEM_ROLE if invitation.role_id == ADMIN_ROLE_ID else CUSTOM_ROLE
    return {"id": invitation.role_id, "name": invitation.role_name, "category": category}


def invitation_dump(invitation: InvitationRecord, now: datetime | None = None) -> dict[str, Any]:
    """An invitation as the contract shows it."""
    return {
        "id": invitation.id,
        "email": invitation.email,
        "role": role_ref(invitation),
        "status": shown_status(invitation, now or utc_now()),
        "invited_by": invitation.invited_by,
        "created_at": rfc3339(invitation.created_at),
        "expires_at": rfc3339(invitation.expires_at),
    }


def _lifetime() -> timedelta:
    return timedelta(seconds=current_app.config["INVITATION_TTL_SECONDS"])


def _mail(
    invitation_id: str,
    version: int,
    *,
    to: str,
    account: User | None,
    company_name: str,
    inviter: User,
    role_name: str,
) -> OutboxMail | None:
    """The invitation mail (None: the address had too many mails): in the language of
    the address's account if it has a shipped one, else the request's, else English;
    greeting the account by name, or no one when the address has no account (read
    before the company's lock: nothing inside it may end the transaction)."""
    invitation_mail = mail.new_mail(
        links.INVITATION,
        to,
        account.first_name if account else "",
        mail.choose_language(account.language if account else ""),
        user_id=account.id if account else None,  # gone with that account, if deleted
        invitation_id=invitation_id,
        v=version,
        company_name=company_name,
        inviter_name=f"{inviter.first_name} {inviter.last_name}".strip(),
        role_name=role_name,
    )
    # Counted like every mail to an unverified address (sends and resends alike).
    return mail.unless_suppressed(invitation_mail, verified=False)


def invite(
    user: User, *, email: str, role_id: str, key: str | None, body: dict[str, Any]
) -> dict[str, Any]:
    """Invite an address with a role (platform.admins.all; RATELIMIT_INVITATIONS per
    company; once per Idempotency-Key of this caller)."""
    company_id = company_of(user)

    def create() -> InvitationRecord:
        ratelimit.limit_invitations(company_id)  # a replay spends nothing
        return _create(user, email=email, role_id=role_id.lower())

    def replay(invitation_id: str) -> InvitationRecord | None:
        return repository.invitation_by_id(invitation_id=invitation_id, company_id=company_id)

    invitation = idempotency.run_once_scoped(
        key,
        body,
        scope=f"{IDEMPOTENCY_SCOPE}:{user.id}",
        owner_id=user.id,
        create=create,
        made=lambda made: made.id,
        replay=replay,
    )
    return invitation_dump(invitation)


def _create(user: User, *, email: str, role_id: str) -> InvitationRecord:
    now = utc_now()
    address_key = email_key(email)
    invitation_id = new_uuid()
    company_name = user.company.name if user.company else ""
    account = repository.account_by_email(email)
    with team(user) as change:
        role = change.role(role_id)
        if role is None:
            raise ValidationFailed(fields={"role_id": [ROLE_ID_UNKNOWN]})
        not_beyond(change, role.permission)
        require_under_lock(change, permissions.ADMINS_ALL)
        if change.member_with_email(address_key):
            raise AlreadyMember()
        if change.pending_invitation_for(address_key, now=now):
            raise InvitationPending()
        change.add(
            Invitation(
                id=invitation_id,
                company_id=change.company_id,
                email=email,
                email_key=address_key,
                role_id=role.id,
                role_name=role.name,
                invited_by=user.id,
                created_at=now,
                expires_at=now + _lifetime(),
            )
        )
        change.event("member_invited", target_id=invitation_id)
        queued = _mail(
            invitation_id,
            0,
            to=email,
            account=account,
            company_name=company_name,
            inviter=user,
            role_name=role.name,
        )
        if queued is not None:
            change.add(queued)
    if queued is not None:
        mail.wake_sender()
    created = repository.invitation_by_id(invitation_id=invitation_id)
    if created is None:  # pragma: no cover - the company went with its last member since
        raise NotFound("No such invitation.")
    return created


def list_invitations(
    user: User, *, status: str | None, cursor: cursors.Position | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the company's invitations, newest first (platform.admins.view)."""
    now = utc_now()
    page = repository.invitation_page(
        company_id=company_of(user), status=status, now=now, before=cursor, limit=limit + 1
    )
    next_cursor = None
    if len(page) > limit:
        page = page[:limit]
        next_cursor = cursors.encode("invitations", page[-1].created_at, page[-1].id)
    return [invitation_dump(invitation, now) for invitation in page], next_cursor


def invitation_in_path(user: User, invitation_id: str) -> InvitationRecord:
    """The invitation a path names, of the caller's company; 404 otherwise."""
    found = repository.invitation_by_id(
        invitation_id=path_id(invitation_id, "invitation"), company_id=company_of(user)
    )
    if found is None:
        raise NotFound("No such invitation.")
    return found


def resend(user: User, invitation_id: str) -> dict[str, Any]:
    """A new link (the old one dies), a new expires_at, status pending, a new mail; for a
    pending or expired invitation (platform.admins.all)."""
    now = utc_now()
    company_name = user.company.name if user.company else ""
    known = invitation_in_path(user, invitation_id)
    account = repository.account_by_email(known.email)
    with team(user) as change:
        invitation = change.invitation(invitation_id.lower())
        if invitation is None:
            raise NotFound("No such invitation.")
        role = change.role(invitation.role_id)
        if role is not None:
            not_beyond(change, role.permission)
        require_under_lock(change, permissions.ADMINS_ALL)
        if invitation.status != INVITATION_PENDING:
            raise InvitationClosed()
        if invitation.expires_at <= now and change.pending_invitation_for(
            invitation.email_key, now=now, besides=invitation.id
        ):
            raise InvitationPending()
        version = invitation.link_version + 1
        change.update_invitation(
            invitation.id, {"link_version": version, "expires_at": now + _lifetime()}
        )
        change.event("invitation_resent", target_id=invitation.id)
        queued = _mail(
            invitation.id,
            version,
            to=invitation.email,
            account=account,
            company_name=company_name,
            inviter=user,
            role_name=invitation.role_name,
        )
        if queued is not None:
            change.add(queued)
    if queued is not None:
        mail.wake_sender()
    return invitation_dump(invitation_in_path(user, invitation.id), now)


def revoke(user: User, invitation_id: str) -> None:
    """Revoke a pending or expired invitation (platform.admins.all): its link dies."""
    with team(user) as change:
        invitation = change.invitation(invitation_id.lower())
        if invitation is None:
            raise NotFound("No such invitation.")
        require_under_lock(change, permissions.ADMINS_ALL)
        if invitation.status != INVITATION_PENDING:
            raise InvitationClosed()
        change.update_invitation(
            invitation.id, {"status": INVITATION_REVOKED, "closed_at": utc_now()}
        )
        change.event("invitation_revoked", target_id=invitation.id)


def lookup(token: str) -> dict[str, Any]:
    """What a good link invites to, for the page behind it."""
    invitation = links.invitation_for(token)
    inviter = invitation.invited_by
    return {
        "email": invitation.email,
        "company": {"id": invitation.company_id, "name": invitation.company_name},
        "role": role_ref(invitation),
        "invited_by": (
            {"first_name": inviter["first_name"], "last_name": inviter["last_name"]}
            if inviter
            else None
        ),
        "expires_at": rfc3339(invitation.expires_at),
        "account_exists": repository.email_exists(invitation.email),
    }


def _still_good(change: Any, invitation: InvitationRecord) -> None:
    """Under the lock: the invitation the link named is still pending, unresent,
    unexpired (else INVALID_LINK: e.g. accepted by a request that came first)."""
    now_row = change.invitation(invitation.id)
    if (
        now_row is None
        or now_row.status != INVITATION_PENDING
        or now_row.link_version != invitation.link_version
        or now_row.expires_at <= utc_now()
    ):
        raise InvalidLink()


def accept_with_account(token: str, user: User) -> repository.Account:
    """The invited account joins: its address must be the invited one, it must belong to
    no company; every earlier session ends, the address counts as proved, and a fresh
    token starts a new session."""
    invitation = links.invitation_for(token)
    if email_key(user.email) != invitation.email_key:
        raise InvitationEmailMismatch()
    if user.company_id is not None:
        raise AlreadyInCompany()
    try:
        with repository.team_change(
            company_id=invitation.company_id, actor_id=None, context=audit_context()
        ) as change:
            _still_good(change, invitation)
            membership = change.account_company(user.id)
            if membership.email_key != invitation.email_key:
                raise InvitationEmailMismatch()
            if membership.company_id is not None:
                raise AlreadyInCompany()
            credential = change.join(user.id, role_id=invitation.role_id, verify=True)
            change.update_invitation(
                invitation.id, {"status": INVITATION_ACCEPTED, "closed_at": utc_now()}
            )
            change.event(
                "invitation_accepted", target_id=invitation.id, user_id=user.id, email=user.email
            )
    except repository.CompanyGone:
        raise InvalidLink() from None
    except repository.AccountGone:
        raise InvalidToken() from None
    joined = repository.account_by_id(user.id)
    if joined is None:  # pragma: no cover - deleted right after
        raise InvalidLink()
    return repository.Account(joined, credential)


def accept_as_new_account(token: str, fields: dict[str, Any]) -> repository.Account:
    """A new account with the invited address, verified at once (the link proved it),
    joins with the invitation's role; 409 EMAIL_TAKEN when the address has an account."""
    invitation = links.invitation_for(token)
    if repository.email_exists(invitation.email):
        links.invitation_for(token)  # a link that died meanwhile is INVALID_LINK first
        raise EmailTaken()
    password_hash = passwords.hash_password(fields["password"])
    now = utc_now()
    user = User(
        id=new_uuid(),
        first_name=fields["first_name"],
        last_name=fields["last_name"],
        email=invitation.email,
        email_key=invitation.email_key,
        password_hash=password_hash,
        state=STATE_ACTIVED,
        role_id=invitation.role_id,
        company_id=invitation.company_id,
        joined_at=now,
        email_verified_at=now,
    )
    try:
        with repository.team_change(
            company_id=invitation.company_id, actor_id=None, context=audit_context()
        ) as change:
            _still_good(change, invitation)
            if change.account_with_email(invitation.email_key):
                raise EmailTaken()
            change.add(user)
            credential = change.start_session(user.id)
            change.update_invitation(
                invitation.id, {"status": INVITATION_ACCEPTED, "closed_at": now}
            )
            for event in ("account_created", "invitation_accepted"):
                change.event(
                    event, target_id=invitation.id, user_id=user.id, email=invitation.email
                )
    except repository.CompanyGone:
        raise InvalidLink() from None
    except repository.DuplicateEmail:
        raise EmailTaken() from None
    created = repository.account_by_id(user.id)
    if created is None:  # pragma: no cover - deleted right after
        raise InvalidLink()
    return repository.Account(created, credential)
