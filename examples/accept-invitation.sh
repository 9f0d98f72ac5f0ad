#!/usr/bin/env bash
# Accept an invitation and print the reply (the login body with a fresh token). With
# TOKEN set, the invited account joins (200); without it, FIRST_NAME, LAST_NAME and
# PASSWORD make a new account with the invited address (201).
# Usage: TOKEN=... examples/accept-invitation.sh INVITATION_TOKEN
#        FIRST_NAME=Grace LAST_NAME=Hopper PASSWORD='Password@123' examples/accept-invitation.sh INVITATION_TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
INVITATION_TOKEN="${1:-${INVITATION_TOKEN:?pass the token of the invitation link}}"

if [[ -n "${TOKEN:-}" ]]; then
  python3 -c 'import json, sys; print(json.dumps({"token": sys.argv[1]}))' "$INVITATION_TOKEN" |
    curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/invitations/accept" \
      --header 'Content-Type: application/json' \
      --header "Authorization: Bearer $TOKEN" \
      --data-binary @-
else
  FIRST_NAME="${FIRST_NAME:?set TOKEN (an account), or FIRST_NAME, LAST_NAME and PASSWORD (a new one)}"
  LAST_NAME="${LAST_NAME:?set LAST_NAME for the new account}"
  PASSWORD="${PASSWORD:?set PASSWORD for the new account}"
  python3 -c 'import json, sys
print(json.dumps(dict(zip(("token", "first_name", "last_name", "password"), sys.argv[1:]))))' \
    "$INVITATION_TOKEN" "$FIRST_NAME" "$LAST_NAME" "$PASSWORD" |
    curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/invitations/accept" \
      --header 'Content-Type: application/json' \
      --data-binary @-
fi
echo
