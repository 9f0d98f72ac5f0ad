#!/usr/bin/env bash
# Invite an address into the company with a role: an invitation mail goes to it (201);
# print the reply (the invitation). IDEMPOTENCY_KEY, optional, makes a retry safe.
# Usage: EMAIL=grace@example.org ROLE_ID=... [IDEMPOTENCY_KEY=...] examples/invite.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
EMAIL="${EMAIL:?set EMAIL to the address to invite}"
ROLE_ID="${ROLE_ID:?set ROLE_ID to the id of the role it will have}"

HEADERS=()
if [[ -n "${IDEMPOTENCY_KEY:-}" ]]; then HEADERS+=(--header "Idempotency-Key: $IDEMPOTENCY_KEY"); fi

python3 -c 'import json, sys; print(json.dumps({"email": sys.argv[1], "role_id": sys.argv[2]}))' \
  "$EMAIL" "$ROLE_ID" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/company/invitations" \
    --header 'Content-Type: application/json' \
    --header "Authorization: Bearer $TOKEN" \
    ${HEADERS[@]+"${HEADERS[@]}"} \
    --data-binary @-
echo
