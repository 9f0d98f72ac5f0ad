#!/usr/bin/env bash
# Verify the e-mail address with the token of a verification link (the part after
# "token=" in the verify_email mail) and print the reply (the user, email_verified).
# Usage: examples/verify-email.sh LINK_TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
LINK_TOKEN="${1:?pass the token of the verification link}"

python3 -c 'import json, sys; print(json.dumps({"token": sys.argv[1]}))' "$LINK_TOKEN" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/email/verify" \
    --header 'Content-Type: application/json' \
    --data-binary @-
echo
