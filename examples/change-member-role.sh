#!/usr/bin/env bash
# Give a member of the company another role (the Admin role's id or a custom role's, as
# list-roles.sh prints them); print the reply (the member).
# Usage: MEMBER_ID=... ROLE_ID=... examples/change-member-role.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
MEMBER_ID="${MEMBER_ID:?set MEMBER_ID to the user id of the member}"
ROLE_ID="${ROLE_ID:?set ROLE_ID to the id of the new role}"

python3 -c 'import json, sys; print(json.dumps({"role_id": sys.argv[1]}))' "$ROLE_ID" |
  curl --silent --show-error --request PATCH "$BASE_URL/api/v1/auth/company/members/$MEMBER_ID" \
    --header 'Content-Type: application/json' \
    --header "Authorization: Bearer $TOKEN" \
    --data-binary @-
echo
