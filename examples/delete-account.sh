#!/usr/bin/env bash
# Delete the account (the password proves who you are); print the status (204).
# Usage: PASSWORD='Password@123' examples/delete-account.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:?pass the access token}"
PASSWORD="${PASSWORD:?set PASSWORD to the current password}"

python3 -c 'import json, sys; print(json.dumps({"password": sys.argv[1]}))' "$PASSWORD" |
  curl --silent --show-error --output /dev/null --write-out '%{http_code}\n' \
    --request POST "$BASE_URL/api/v1/auth/me/delete" \
    --header 'Content-Type: application/json' \
    --header "Authorization: Bearer $TOKEN" \
    --data-binary @-
