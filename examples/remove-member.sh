#!/usr/bin/env bash
# Remove a member from the company (your own id: leave it); prints the HTTP status (204).
# The account keeps its sign-in, without company, with the Customer role.
# Usage: MEMBER_ID=... examples/remove-member.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
MEMBER_ID="${MEMBER_ID:?set MEMBER_ID to the user id of the member}"

curl --silent --show-error --output /dev/null --write-out '%{http_code}\n' \
  --request DELETE "$BASE_URL/api/v1/auth/company/members/$MEMBER_ID" \
  --header "Authorization: Bearer $TOKEN"
