#!/usr/bin/env bash
# Ask who the access token belongs to and print the reply.
# Usage: examples/me.sh TOKEN      (or TOKEN=... examples/me.sh)
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"

curl --silent --show-error "$BASE_URL/api/v1/auth/me" \
  --header "Authorization: Bearer $TOKEN"
echo
