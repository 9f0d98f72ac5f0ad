#!/usr/bin/env bash
# Send the API document's admin sign-up sample (with a fresh e-mail) and print the reply.
# Usage: examples/admin-signup.sh            (BASE_URL defaults to http://127.0.0.1:8000)
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
EMAIL="${EMAIL:-admin+$(date +%s%N)@example.org}"

curl --silent --show-error --location --request POST "$BASE_URL/api/v1/auth/admin/signup" \
  --header 'Content-Type: application/json' \
  --data-raw '{
    "first_name": "Admin",
    "last_name": "Test",
    "email": "'"$EMAIL"'",
    "password": "Password@123"
}'
echo
