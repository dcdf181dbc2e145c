#!/usr/bin/env bash
# How a CRM's back end drives Mailroom: it holds the service token (MAILROOM_SERVICE_TOKEN at
# the server's start) and acts for each of its users with X-Mailroom-User.
#
#   MAILROOM=http://127.0.0.1:8025 ADMIN_TOKEN=… SERVICE_TOKEN=… \
#   IMAP_HOST=imap.example.com SMTP_HOST=smtp.example.com EMAIL=ann@example.com PASSWORD=… \
#   examples/crm.sh
set -euo pipefail
: "${MAILROOM:=http://127.0.0.1:8025}"
api() {
    local token=$1 user=$2 method=$3 path=$4
    shift 4
    curl -sS -X "$method" "$MAILROOM$path" -H "Authorization: Bearer $token" \
        ${user:+-H "X-Mailroom-User: $user"} -H 'Content-Type: application/json' "$@"
    echo
}

# 1. The admin creates the CRM's user once (the CRM keeps the id beside its own user).
user_id=$(api "$ADMIN_TOKEN" "" POST /v1/users \
    -d "{\"name\": \"Ann\", \"email\": \"$EMAIL\", \"role\": \"member\", \"external_id\": \"crm-user-1\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')

connection="{\"connector\": \"imap\", \"email\": \"$EMAIL\", \"password\": \"$PASSWORD\",
  \"imap\": {\"host\": \"$IMAP_HOST\", \"port\": ${IMAP_PORT:-993}, \"encryption\": \"ssl\"},
  \"smtp\": {\"host\": \"$SMTP_HOST\", \"port\": ${SMTP_PORT:-465}, \"encryption\": \"ssl\"}"

# 2. The connect form: test the connection and show the folders to pick from.
api "$SERVICE_TOKEN" "$user_id" POST /v1/accounts/test -d "$connection}"

# 3. Connect the personal account with the default folders, syncing from a month ago.
account=$(api "$SERVICE_TOKEN" "$user_id" POST /v1/accounts -H "Idempotency-Key: connect-$user_id" \
    -d "$connection, \"kind\": \"personal\", \"sync_from\": \"1_month\", \"create_contact\": true}")
echo "$account"
account_id=$(echo "$account" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')

# 4. Make it the user's primary account and set their signature.
api "$SERVICE_TOKEN" "$user_id" PUT "/v1/accounts/$account_id/primary"
api "$SERVICE_TOKEN" "$user_id" PATCH /v1/me -d '{"signature": "<p>Ann<br>Sales</p>"}'
api "$SERVICE_TOKEN" "$user_id" GET /v1/accounts
