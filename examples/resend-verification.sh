#!/usr/bin/env bash
# Ask for a new verification mail for the account of an access token (202).
# Usage: examples/resend-verification.sh TOKEN      (or TOKEN=... examples/resend-verification.sh)
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"

curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/email/verification" \
  --header "Authorization: Bearer $TOKEN"
echo
