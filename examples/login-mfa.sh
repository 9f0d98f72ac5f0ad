#!/usr/bin/env bash
# The second step of a log-in with two-factor on: the mfa_token of the 403 MFA_REQUIRED
# that examples/login.sh printed, and a code (TOTP or a recovery code); print the reply
# (an access token and the user object).
# Usage: MFA_TOKEN=... CODE=123456 examples/login-mfa.sh
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
MFA_TOKEN="${MFA_TOKEN:?set MFA_TOKEN to error.mfa_token of the log-in answer}"
CODE="${CODE:?set CODE to an authenticator app code or a recovery code}"

python3 -c 'import json, sys; print(json.dumps({"mfa_token": sys.argv[1], "code": sys.argv[2]}))' \
  "$MFA_TOKEN" "$CODE" |
  curl --silent --show-error --request POST "$BASE_URL/api/v1/auth/login/mfa" \
    --header 'Content-Type: application/json' \
    --data-binary @-
echo
