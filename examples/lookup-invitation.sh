#!/usr/bin/env bash
# What an invitation's link invites to (no bearer token): the address, the company, the
# role, who invited, until when, and whether the address has an account. The token is
# the part after "token=" in the invitation mail's link.
# Usage: examples/lookup-invitation.sh INVITATION_TOKEN      (or INVITATION_TOKEN=... examples/lookup-invitation.sh)
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
INVITATION_TOKEN="${1:-${INVITATION_TOKEN:?pass the token of the invitation link}}"

python3 -c 'import json, sys; print(json.dumps({"token": sys.argv[1]}))' "$INVITATION_TOKEN" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/invitations/lookup" \
    --header 'Content-Type: application/json' \
    --data-binary @-
echo
