#!/usr/bin/env bash
# Confirm the new address with the token of the confirm_email_change mail's link.
# Usage: examples/confirm-email-change.sh LINK_TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
LINK_TOKEN="${1:?pass the token of the confirmation link}"

python3 -c 'import json, sys; print(json.dumps({"token": sys.argv[1]}))' "$LINK_TOKEN" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/email/change/confirm" \
    --header 'Content-Type: application/json' \
    --data-binary @-
echo
