#!/usr/bin/env bash
# Log out: revoke every token of the account; prints the HTTP status (204).
# Usage: examples/logout.sh TOKEN      (or TOKEN=... examples/logout.sh)
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"

curl --silent --show-error --output /dev/null --write-out '%{http_code}\n' \
  --request POST "$BASE_URL/api/v1/auth/logout" \
  --header "Authorization: Bearer $TOKEN"
