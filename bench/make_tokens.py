"""Accounts and access tokens for the /verify load: `python bench/make_tokens.py N FILE`.

Run with the service's environment (DATABASE_URL, SECRET_KEY, ...): creates N customer
accounts straight through the repository (one precomputed hash: the load verifies
tokens, not passwords) and writes one access token a line to FILE.
"""

import os
import secrets
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from app import create_app, passwords, repository  # noqa: E402
from app.tokens import issue_access_token  # noqa: E402


def main(count, path):
    """Create the accounts and write their tokens."""
    app = create_app()
    tag = secrets.token_hex(4)
    with app.app_context():
        password_hash = passwords.hash_password("Password@123")
        with open(path, "w") as handle:
            for number in range(count):
                record = repository.NewAccount(
                    first_name="Verify",
                    last_name="Bench",
                    email=f"verify-{tag}-{number}@bench.example",
                )
                account = repository.create_account(
                    kind="customer",
                    record=record,
                    password_hash=password_hash,
                    context=repository.AuditContext(client_ip="bench"),
                )
                handle.write(issue_access_token(account.user, account.credential) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
