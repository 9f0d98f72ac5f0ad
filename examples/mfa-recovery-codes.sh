#!/usr/bin/env bash
# New recovery codes (the old ones die), proved by the password and a code (TOTP or a
# recovery code); print the reply.
# Usage: PASSWORD='Password@123' CODE=123456 examples/mfa-recovery-codes.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
PASSWORD="${PASSWORD:?set PASSWORD to the current password}"
CODE="${CODE:?set CODE to an authenticator app code or a recovery code}"

python3 -c 'import json, sys; print(json.dumps({"password": sys.argv[1], "code": sys.argv[2]}))' \
  "$PASSWORD" "$CODE" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/mfa/recovery-codes" \
    --header 'Content-Type: application/json' \
    --header "Authorization: Bearer $TOKEN" \
    --data-binary @-
echo
