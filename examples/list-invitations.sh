#!/usr/bin/env bash
# List the company's invitations, newest first, a page at a time; print the reply
# (invitations and next_cursor). STATUS (pending, accepted, revoked or expired), LIMIT
# and CURSOR are optional.
# Usage: STATUS=pending examples/list-invitations.sh TOKEN      (or TOKEN=... examples/list-invitations.sh)
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"

QUERY=()
if [[ -n "${STATUS:-}" ]]; then QUERY+=(--data-urlencode "status=$STATUS"); fi
if [[ -n "${LIMIT:-}" ]]; then QUERY+=(--data-urlencode "limit=$LIMIT"); fi
if [[ -n "${CURSOR:-}" ]]; then QUERY+=(--data-urlencode "cursor=$CURSOR"); fi

curl --silent --show-error --get "$BASE_URL/api/v1/auth/company/invitations" \
  --header "Authorization: Bearer $TOKEN" \
  ${QUERY[@]+"${QUERY[@]}"}
echo
