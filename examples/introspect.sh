#!/usr/bin/env bash
# RFC 7662 introspection, as a platform service calls it, authenticated as one of the
# service's INTROSPECTION_CLIENTS (HTTP Basic); print the answer.
# Usage: CLIENT_ID=tickets CLIENT_SECRET=... examples/introspect.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
CLIENT_ID="${CLIENT_ID:?set CLIENT_ID to an id of INTROSPECTION_CLIENTS}"
CLIENT_SECRET="${CLIENT_SECRET:?set CLIENT_SECRET to its secret}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"

curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/introspect" \
  --user "$CLIENT_ID:$CLIENT_SECRET" \
  --data-urlencode "token=$TOKEN" \
  --data-urlencode "token_type_hint=access_token"
echo
