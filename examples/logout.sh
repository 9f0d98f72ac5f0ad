#!/usr/bin/env bash
# Log out: end the account's sessions; prints the HTTP status (204). SCOPE (optional):
# all (every session, the default), current (this token's only) or others (every other).
# Usage: examples/logout.sh TOKEN      (or TOKEN=... [SCOPE=current] examples/logout.sh)
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"

if [ -n "${SCOPE:-}" ]; then
  curl --silent --show-error --output /dev/null --write-out '%{http_code}\n' \
    --request POST "$BASE_URL/api/v1/auth/logout" \
    --header "Authorization: Bearer $TOKEN" \
    --header 'Content-Type: application/json' \
    --data-raw '{"scope": "'"$SCOPE"'"}'
else
  curl --silent --show-error --output /dev/null --write-out '%{http_code}\n' \
    --request POST "$BASE_URL/api/v1/auth/logout" \
    --header "Authorization: Bearer $TOKEN"
fi
