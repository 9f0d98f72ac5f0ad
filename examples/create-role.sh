#!/usr/bin/env bash
# Create a custom role (201) and print the reply (the role). PERMISSION is a whole
# permission tree; the default below is an agent's: tickets in full, customers, the live
# map and labels to view. DESCRIPTION is optional.
# Usage: NAME='Support agent' [DESCRIPTION=...] [PERMISSION='{...}'] examples/create-role.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
NAME="${NAME:?set NAME to the name of the role}"
DESCRIPTION="${DESCRIPTION:-}"
DEFAULT_PERMISSION='{
  "platform": {
    "applications": {"all": false, "view": false},
    "admins": {"all": false, "view": false},
    "roles": {"all": false, "view": false},
    "billing": {"all": false, "view": false}
  },
  "application": {
    "applications": null,
    "tickets": {"all": true, "view": true},
    "agents": {"all": false, "view": false},
    "customers": {"all": false, "view": true},
    "live_map": {"all": false, "view": true},
    "labels": {"all": false, "view": true},
    "settings": {"all": false, "view": false}
  }
}'
PERMISSION="${PERMISSION:-$DEFAULT_PERMISSION}"

python3 -c 'import json, sys; n, d, p = sys.argv[1:]; print(json.dumps({"name": n, "description": d, "permission": json.loads(p)}))' \
  "$NAME" "$DESCRIPTION" "$PERMISSION" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/company/roles" \
    --header 'Content-Type: application/json' \
    --header "Authorization: Bearer $TOKEN" \
    --data-binary @-
echo
