#!/usr/bin/env bash
# Forward authentication, as a gateway calls it: print the status line, the identity
# headers and the body for an access token.
# Usage: examples/verify.sh TOKEN      (or TOKEN=... examples/verify.sh)
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"

curl --silent --show-error --include "$BASE_URL/api/v1/auth/verify" \
  --header "Authorization: Bearer $TOKEN" |
  grep --ignore-case --extended-regexp '^(HTTP/|x-user-|x-company-id|x-session-id|x-email-verified|\{)'
