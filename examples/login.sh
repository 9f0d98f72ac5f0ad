#!/usr/bin/env bash
# Log in and print the reply (an access token and the user object).
# Usage: EMAIL=admin@example.org PASSWORD='Password@123' examples/login.sh
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
EMAIL="${EMAIL:?set EMAIL to the account e-mail}"
PASSWORD="${PASSWORD:-Password@123}"

python3 -c 'import json, sys; print(json.dumps({"email": sys.argv[1], "password": sys.argv[2]}))' \
  "$EMAIL" "$PASSWORD" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/login" \
    --header 'Content-Type: application/json' \
    --data-binary @-
echo
