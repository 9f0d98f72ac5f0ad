#!/usr/bin/env bash
# The account's live sessions (one per log-in), newest first; `current` marks this token's.
# Usage: examples/list-sessions.sh TOKEN      (or TOKEN=... examples/list-sessions.sh)
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"

curl --silent --show-error --request GET "$BASE_URL/api/v1/auth/sessions" \
  --header "Authorization: Bearer $TOKEN"
echo
