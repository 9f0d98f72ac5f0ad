#!/usr/bin/env bash
# Revoke an invitation (its link dies; it stays listed as revoked); prints the HTTP
# status (204).
# Usage: INVITATION_ID=... examples/revoke-invitation.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
INVITATION_ID="${INVITATION_ID:?set INVITATION_ID to the id of the invitation}"

curl --silent --show-error --output /dev/null --write-out '%{http_code}\n' \
  --request DELETE "$BASE_URL/api/v1/auth/company/invitations/$INVITATION_ID" \
  --header "Authorization: Bearer $TOKEN"
