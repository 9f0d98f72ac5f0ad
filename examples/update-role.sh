#!/usr/bin/env bash
# Change a custom role: the fields set among NAME, DESCRIPTION and PERMISSION (a whole
# permission tree, as in create-role.sh); print the reply (the role).
# Usage: ROLE_ID=... NAME='Support lead' examples/update-role.sh TOKEN
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TOKEN="${1:-${TOKEN:?pass the access token as the first argument or in TOKEN}}"
ROLE_ID="${ROLE_ID:?set ROLE_ID to the id of the custom role}"
if [[ -z "${NAME+set}${DESCRIPTION+set}${PERMISSION+set}" ]]; then
  echo "set one or more of NAME, DESCRIPTION and PERMISSION" >&2
  exit 2
fi

python3 -c 'import json, os
body = {key.lower(): os.environ[key] for key in ("NAME", "DESCRIPTION", "PERMISSION") if key in os.environ}
if "permission" in body:
    body["permission"] = json.loads(body["permission"])
print(json.dumps(body))' |
  curl --silent --show-error --request PATCH "$BASE_URL/api/v1/auth/company/roles/$ROLE_ID" \
    --header 'Content-Type: application/json' \
    --header "Authorization: Bearer $TOKEN" \
    --data-binary @-
echo
