#!/usr/bin/env bash
# Change the password (the current one proves who you are); print the reply (a fresh
# access token: every other token of the account is revoked).
# Usage: CURRENT='Password@123' NEW='New@Password1' examples/change-password.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
CURRENT="${CURRENT:?set CURRENT to the current password}"
NEW="${NEW:?set NEW to the new password}"

python3 -c 'import json, sys; print(json.dumps({"current_password": sys.argv[1], "new_password": sys.argv[2]}))' \
  "$CURRENT" "$NEW" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/password/change" \
    --header 'Content-Type: application/json' \
    --header "Authorization: Bearer $TOKEN" \
    --data-binary @-
echo
