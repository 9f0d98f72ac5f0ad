#!/usr/bin/env bash
# Change profile fields of the account (PATCH /me) and print the reply (the /me body).
# Usage: examples/update-profile.sh TOKEN '{"phone": "+14155550123", "language": "fr"}'
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:?pass the access token}"
BODY="${2:?pass the JSON object of fields to change}"

curl --silent --show-error --request PATCH "$BASE_URL/api/v1/auth/me" \
  --header 'Content-Type: application/json' \
  --header "Authorization: Bearer $TOKEN" \
  --data-binary "$BODY"
echo
