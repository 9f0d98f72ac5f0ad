#!/usr/bin/env bash
# Set up TOTP (the password proves who you are); print the reply: the secret to add to an
# authenticator app, its otpauth:// URI and its QR code (SVG). Confirm it with
# examples/mfa-confirm.sh.
# Usage: PASSWORD='Password@123' examples/mfa-setup.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
PASSWORD="${PASSWORD:?set PASSWORD to the current password}"

python3 -c 'import json, sys; print(json.dumps({"password": sys.argv[1]}))' "$PASSWORD" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/mfa/totp/setup" \
    --header 'Content-Type: application/json' \
    --header "Authorization: Bearer $TOKEN" \
    --data-binary @-
echo
