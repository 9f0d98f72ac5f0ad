#!/usr/bin/env bash
# Ask for a password reset mail (always 202, whether or not an account has the address).
# Usage: EMAIL=ada@example.org examples/forgot-password.sh
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
EMAIL="${EMAIL:?set EMAIL to the account e-mail}"

python3 -c 'import json, sys; print(json.dumps({"email": sys.argv[1]}))' "$EMAIL" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/password/forgot" \
    --header 'Content-Type: application/json' \
    --data-binary @-
echo
