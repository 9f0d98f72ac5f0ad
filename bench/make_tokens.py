"""Accounts and access tokens for the bench's loads, written straight to the database.

Run with the service's environment (DATABASE_URL, SECRET_KEY, SMTP_URL, ...), after the
migrations; one precomputed hash for every account (the loads check tokens, not
passwords). Two uses:

- `python bench/make_tokens.py N FILE`: the /verify (and PATCH /me) load's accounts.
  N company members whose roles hold permissions, and one access token a line in FILE,
  the two kinds in turn: half are Admins, each of a company of its own, created as an
  admin sign-up creates them (repository.create_account: the Admin role's 20 leaves);
  the other half are members of a custom role (CUSTOM_LEAVES, 8 leaves) of one of the
  first CUSTOM_COMPANIES of those companies, the role and the members written with Core
  as the team endpoints write them (a roles row of the company, users rows with
  company_id, role_id and joined_at, a session each: repository.new_session).
- `python bench/make_tokens.py --company MEMBERS FILE`: one company of MEMBERS members
  (its Admin, created as above, then MEMBERS - 1 members written with Core in batches:
  one in ADMIN_EVERY an Admin, the rest of a custom role), for the member list's load;
  FILE gets the token of the company's first Admin (it holds platform.admins.view).
"""

import argparse
import os
import secrets
import sys
from datetime import timedelta
from types import SimpleNamespace

import sqlalchemy as sa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from app import create_app, passwords, repository  # noqa: E402
from app.email_address import email_key  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import (  # noqa: E402
    ADMIN_ROLE_ID,
    CUSTOM_ROLE,
    STATE_ACTIVED,
    Role,
    SigningCredential,
    User,
    new_uuid,
    utc_now,
)
from app.permissions import tree_of  # noqa: E402
from app.tokens import issue_access_token  # noqa: E402

USERS, ROLES, CREDENTIALS = User.__table__, Role.__table__, SigningCredential.__table__
# The custom role's grants: an agent's (8 of the tree's 20 leaves).
CUSTOM_LEAVES = (
    "application.tickets.all",
    "application.tickets.view",
    "application.customers.view",
    "application.agents.view",
    "application.labels.view",
    "application.live_map.view",
    "platform.applications.view",
    "platform.admins.view",
)
CUSTOM_COMPANIES = 10  # companies whose custom role the /verify load's other half has
ADMIN_EVERY = 5  # in a seeded company, one member in 5 is an Admin
BATCH = 1000
CONTEXT = repository.AuditContext(client_ip="bench")


def new_admin(tag, number, password_hash):
    """An Admin with a company of its own, as an admin sign-up creates it: (user, token)."""
    record = repository.NewAccount(
        first_name="Verify", last_name="Bench", email=f"verify-{tag}-{number}@bench.example"
    )
    account = repository.create_account(
        kind="admin",
        record=record,
        password_hash=password_hash,
        context=CONTEXT,
    )
    return account.user, issue_access_token(account.user, account.credential)


def new_custom_role(connection, company_id, name="Bench agent"):
    """A custom role of the company (the row POST /company/roles writes); its id."""
    role_id = new_uuid()
    connection.execute(
        ROLES.insert(),
        {
            "id": role_id,
            "company_id": company_id,
            "name": name,
            "name_key": repository.role_name_key(name),
            "description": "bench",
            "category": CUSTOM_ROLE,
            "permission": tree_of(CUSTOM_LEAVES),
            "created_at": utc_now(),
        },
    )
    return role_id


def add_members(connection, company_id, roles, tag, first, count, password_hash, since):
    """`count` members of the company written with Core (role `roles(n)` for member n,
    joined one microsecond apart after `since`), each with a signing credential; their
    access tokens, in order."""
    tokens = []
    for start in range(first, first + count, BATCH):
        users, credentials = [], []
        for number in range(start, min(first + count, start + BATCH)):
            user_id, address = new_uuid(), f"member-{tag}-{number}@bench.example"
            users.append(
                {
                    "id": user_id,
                    "first_name": f"Member{number}",
                    "last_name": "Bench",
                    "email": address,
                    "email_key": email_key(address),
                    "password_hash": password_hash,
                    "state": STATE_ACTIVED,
                    "company_id": company_id,
                    "role_id": roles(number),
                    "joined_at": since + timedelta(microseconds=number),
                    "created_at": since,
                }
            )
            credentials.append(repository.new_session(user_id, CONTEXT))  # as a log-in's
        connection.execute(USERS.insert(), users)
        connection.execute(
            CREDENTIALS.insert(),
            [
                {column.key: vars(credential)[column.key] for column in CREDENTIALS.columns}
                for credential in credentials
            ],
        )
        for user, credential in zip(users, credentials, strict=True):
            tokens.append(
                issue_access_token(
                    SimpleNamespace(id=user["id"], company_id=company_id), credential
                )
            )
    return tokens


def verify_accounts(count, path):
    """The /verify load's accounts: Admins and custom-role members, tokens in turn."""
    tag = secrets.token_hex(4)
    password_hash = passwords.hash_password("Password@123")
    admins = [new_admin(tag, number, password_hash) for number in range((count + 1) // 2)]
    companies = [user.company_id for user, _ in admins[:CUSTOM_COMPANIES]]
    customs = []
    with db.engine.begin() as connection:
        roles = {company: new_custom_role(connection, company) for company in companies}
        for index, company in enumerate(companies):
            share = len(range(index, count - len(admins), len(companies)))
            customs += add_members(
                connection,
                company,
                lambda _, company=company: roles[company],
                f"{tag}-{index}",
                0,
                share,
                password_hash,
                utc_now(),
            )
    tokens = [token for _, token in admins]
    mixed = [token for pair in zip(tokens, customs, strict=False) for token in pair]
    mixed += tokens[len(customs) :]
    with open(path, "w") as handle:
        handle.writelines(token + "\n" for token in mixed)


def company_of(members, path):
    """One company of `members` members; its first Admin's token in `path`."""
    tag = secrets.token_hex(4)
    password_hash = passwords.hash_password("Password@123")
    admin, token = new_admin(tag, 0, password_hash)
    with db.engine.begin() as connection:
        custom = new_custom_role(connection, admin.company_id)
        add_members(
            connection,
            admin.company_id,
            lambda number: ADMIN_ROLE_ID if number % ADMIN_EVERY == 0 else custom,
            tag,
            1,
            members - 1,
            password_hash,
            admin.joined_at,
        )
        if connection.dialect.name == "postgresql":  # as autovacuum would after the inserts
            connection.execute(sa.text("ANALYZE users"))
    with open(path, "w") as handle:
        handle.write(token + "\n")


def main(argv=None):
    """Create the accounts and write their tokens."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="accounts (or with --company: members)")
    parser.add_argument("path", help="the file of tokens, one a line")
    parser.add_argument(
        "--company", action="store_true", help="one company of COUNT members, its Admin's token"
    )
    args = parser.parse_args(argv)
    app = create_app()
    with app.app_context():
        if args.company:
            company_of(args.count, args.path)
        else:
            verify_accounts(args.count, args.path)


if __name__ == "__main__":
    main()
