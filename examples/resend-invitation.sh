#!/usr/bin/env bash
# Resend a pending or expired invitation: a new link and mail, a new expires_at; every
# earlier link of it dies. Print the reply (the invitation).
# Usage: INVITATION_ID=... examples/resend-invitation.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
INVITATION_ID="${INVITATION_ID:?set INVITATION_ID to the id of the invitation}"

curl --silent --show-error --request POST \
  "$BASE_URL/api/v1/auth/company/invitations/$INVITATION_ID/resend" \
  --header "Authorization: Bearer $TOKEN"
echo
