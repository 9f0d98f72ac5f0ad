#!/usr/bin/env bash
# Ask to change the account's e-mail address: a confirmation mail goes to the new one (202).
# Usage: NEW_EMAIL=ada@new.example PASSWORD='Password@123' examples/change-email.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:?pass the access token}"
NEW_EMAIL="${NEW_EMAIL:?set NEW_EMAIL}"
PASSWORD="${PASSWORD:?set PASSWORD to the current password}"

python3 -c 'import json, sys; print(json.dumps({"new_email": sys.argv[1], "password": sys.argv[2]}))' \
  "$NEW_EMAIL" "$PASSWORD" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/email/change" \
    --header 'Content-Type: application/json' \
    --header "Authorization: Bearer $TOKEN" \
    --data-binary @-
echo
