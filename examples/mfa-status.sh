#!/usr/bin/env bash
# Two-factor's state of the account: whether it is on, and the recovery codes left.
# Usage: examples/mfa-status.sh TOKEN      (or TOKEN=... examples/mfa-status.sh)
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"

curl --silent --show-error --request GET "$BASE_URL/api/v1/auth/mfa" \
  --header "Authorization: Bearer $TOKEN"
echo
