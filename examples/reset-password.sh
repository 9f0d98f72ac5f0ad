#!/usr/bin/env bash
# Set a new password with the token of a reset link; print the reply (a fresh access
# token and the user).
# Usage: PASSWORD='New@Password1' examples/reset-password.sh LINK_TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
LINK_TOKEN="${1:?pass the token of the reset link}"
PASSWORD="${PASSWORD:?set PASSWORD to the new password}"

python3 -c 'import json, sys; print(json.dumps({"token": sys.argv[1], "password": sys.argv[2]}))' \
  "$LINK_TOKEN" "$PASSWORD" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/password/reset" \
    --header 'Content-Type: application/json' \
    --data-binary @-
echo
