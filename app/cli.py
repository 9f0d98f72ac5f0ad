"""Operator commands: `flask accounts create-admin | revoke-tokens EMAIL | disable-mfa EMAIL |
show EMAIL | ...`."""

import json

import click
from flask.cli import AppGroup
from marshmallow import ValidationError

from app import accounts, idempotency, mfa, repository, sessions
from app.email_address import canonical_email
from app.errors import EmailTaken
from app.models import User, utc_now
from app.schemas import SIGNUP_SCHEMA, USER_SCHEMA

accounts_cli = AppGroup("accounts", help="Manage Lumyri accounts.")


def find_user_or_exit(email: str) -> User:
    """The account with this e-mail (any case), or exit 1 with a message."""
    user = repository.account_by_email(canonical_email(email))
    if user is None:
        raise click.ClickException(f"no account with the e-mail {email.strip()!r}")
    return user


@accounts_cli.command("create-admin")
@click.option("--first-name", prompt="First name")
@click.option("--last-name", prompt="Last name")
@click.option("--email", prompt="E-mail")
@click.password_option("--password", prompt="Password", confirmation_prompt=True)
def create_admin(first_name: str, last_name: str, email: str, password: str) -> None:
    """Create an admin account (and its company), with the sign-up endpoint's rules."""
    body = {"first_name": first_name, "last_name": last_name, "email": email, "password": password}
    try:
        fields = SIGNUP_SCHEMA.load(body)
    except ValidationError as error:
        for field, messages in error.messages_dict.items():
            for message in messages:
                click.echo(f"{field}: {message}", err=True)
        raise click.ClickException("the account was not created") from None
    try:
        user = accounts.sign_up("admin", fields).user
    except EmailTaken:
        raise click.ClickException("an account with this e-mail address already exists") from None
    click.echo(f"Created admin {user.email} (user {user.id}, company {user.company_id}).")


@accounts_cli.command("revoke-tokens")
@click.argument("email")
def revoke_tokens(email: str) -> None:
    """Revoke every access token of an account (every session of it ends)."""
    user = find_user_or_exit(email)
    sessions.end_all(user)
    click.echo(f"Revoked every access token of {user.email}.")


@accounts_cli.command("disable-mfa")
@click.argument("email")
def disable_mfa(email: str) -> None:
    """Turn two-factor off for an account, without a code (its owner lost every factor,
    or SECRET_KEY changed); its recovery codes go, an mfa_disabled mail goes out."""
    user = find_user_or_exit(email)
    if mfa.turn_off(user):
        click.echo(f"Two-factor is off for {user.email}.")
    else:
        click.echo(f"Two-factor was not on for {user.email}.")


@accounts_cli.command("show")
@click.argument("email")
def show(email: str) -> None:
    """Print an account's user object (never its password hash)."""
    click.echo(json.dumps(USER_SCHEMA.dump(find_user_or_exit(email)), indent=2))


@accounts_cli.command("audit")
@click.option("--email", help="Only the events of this e-mail address.")
@click.option("--limit", default=100, show_default=True, help="How many events, newest first.")
def audit(email: str | None, limit: int) -> None:
    """Print the audit trail, newest first: time, event, e-mail, user, client IP, request."""
    events = repository.audit_events(email=canonical_email(email) if email else None, limit=limit)
    for event in events:
        click.echo(
            "\t".join(
                [
                    event.created_at.isoformat(timespec="seconds"),
                    event.event,
                    event.email or "-",
                    event.user_id or "-",
                    event.client_ip or "-",
                    event.request_id or "-",
                ]
            )
        )


@accounts_cli.command("purge-idempotency-keys")
def purge_idempotency_keys() -> None:
    """Delete expired Idempotency-Keys (older than IDEMPOTENCY_TTL_SECONDS); run from cron."""
    deleted = repository.purge_idempotency_keys(created_before=idempotency.expiry_cut_off())
    click.echo(f"Deleted {deleted} expired idempotency keys.")


@accounts_cli.command("mail")
@click.option("--retry", "retry_id", type=int, help="Send this failed mail again.")
def mail_outbox(retry_id: int | None) -> None:
    """List the mails not sent yet (pending and failed; never their links), or retry one."""
    if retry_id is not None:
        if not repository.retry_mail(mail_id=retry_id, now=utc_now()):
            raise click.ClickException(f"no failed mail with the id {retry_id}")
        click.echo(f"Mail {retry_id} will be sent again.")
        return
    for item in repository.outbox():
        click.echo(
            "\t".join(
                [
                    str(item.id),
                    item.status,
                    item.kind,
                    item.to_address,
                    f"attempts={item.attempts}",
                    f"next={item.next_attempt_at.isoformat(timespec='seconds')}",
                    item.last_error or "-",
                ]
            )
        )
