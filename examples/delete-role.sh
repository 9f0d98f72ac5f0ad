#!/usr/bin/env bash
# Delete a custom role (refused with 409 ROLE_IN_USE while a member or a pending or
# expired invitation has it); prints the HTTP status (204).
# Usage: ROLE_ID=... examples/delete-role.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
ROLE_ID="${ROLE_ID:?set ROLE_ID to the id of the custom role}"

curl --silent --show-error --output /dev/null --write-out '%{http_code}\n' \
  --request DELETE "$BASE_URL/api/v1/auth/company/roles/$ROLE_ID" \
  --header "Authorization: Bearer $TOKEN"
