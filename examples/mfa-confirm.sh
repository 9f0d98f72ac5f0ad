#!/usr/bin/env bash
# Confirm TOTP with a code of the set-up's secret: two-factor on; print the reply (a fresh
# access token, every earlier one revoked, and the 10 recovery codes, shown once).
# Usage: CODE=123456 examples/mfa-confirm.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
CODE="${CODE:?set CODE to the authenticator app code}"

python3 -c 'import json, sys; print(json.dumps({"code": sys.argv[1]}))' "$CODE" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/mfa/totp/confirm" \
    --header 'Content-Type: application/json' \
    --header "Authorization: Bearer $TOKEN" \
    --data-binary @-
echo
