#!/usr/bin/env bash
# End one session of the account (its token is refused at once); prints the HTTP status (204).
# Usage: SESSION_ID=... examples/end-session.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
SESSION_ID="${SESSION_ID:?set SESSION_ID to an id from examples/list-sessions.sh}"

curl --silent --show-error --output /dev/null --write-out '%{http_code}\n' \
  --request DELETE "$BASE_URL/api/v1/auth/sessions/$SESSION_ID" \
  --header "Authorization: Bearer $TOKEN"
