#!/usr/bin/env bash
# Turn two-factor off, proved by the password and a code (TOTP or a recovery code); print
# the HTTP status (204).
# Usage: PASSWORD='Password@123' CODE=123456 examples/mfa-disable.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
PASSWORD="${PASSWORD:?set PASSWORD to the current password}"
CODE="${CODE:?set CODE to an authenticator app code or a recovery code}"

python3 -c 'import json, sys; print(json.dumps({"password": sys.argv[1], "code": sys.argv[2]}))' \
  "$PASSWORD" "$CODE" |
  curl --silent --show-error --output /dev/null --write-out '%{http_code}\n' \
    --request POST "$BASE_URL/api/v1/auth/mfa/disable" \
    --header 'Content-Type: application/json' \
    --header "Authorization: Bearer $TOKEN" \
    --data-binary @-
