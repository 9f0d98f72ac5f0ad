#!/usr/bin/env bash
# Change the company of an admin account (PATCH /company) and print the reply.
# Usage: examples/update-company.sh TOKEN '{"name": "Acme", "email": "billing@acme.example"}'
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:?pass the access token of an admin}"
BODY="${2:?pass the JSON object of fields to change}"

curl --silent --show-error --request PATCH "$BASE_URL/api/v1/auth/company" \
  --header 'Content-Type: application/json' \
  --header "Authorization: Bearer $TOKEN" \
  --data-binary "$BODY"
echo
