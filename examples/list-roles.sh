#!/usr/bin/env bash
# List the company's roles (the Admin system role first, then the custom roles by name,
# each with how many members have it) and print the reply.
# Usage: examples/list-roles.sh TOKEN      (or TOKEN=... examples/list-roles.sh)
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"

curl --silent --show-error "$BASE_URL/api/v1/auth/company/roles" \
  --header "Authorization: Bearer $TOKEN"
echo
