#!/usr/bin/env bash
# List the company's members, oldest first, a page at a time; print the reply (members
# and next_cursor). LIMIT (1-100), CURSOR (the next_cursor of the page before) and Q (a
# case-insensitive part of a name or an address) are optional.
# Usage: LIMIT=20 Q=ada examples/list-members.sh TOKEN      (or TOKEN=... examples/list-members.sh)
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"

QUERY=()
if [[ -n "${LIMIT:-}" ]]; then QUERY+=(--data-urlencode "limit=$LIMIT"); fi
if [[ -n "${CURSOR:-}" ]]; then QUERY+=(--data-urlencode "cursor=$CURSOR"); fi
if [[ -n "${Q:-}" ]]; then QUERY+=(--data-urlencode "q=$Q"); fi

curl --silent --show-error --get "$BASE_URL/api/v1/auth/company/members" \
  --header "Authorization: Bearer $TOKEN" \
  ${QUERY[@]+"${QUERY[@]}"}
echo
