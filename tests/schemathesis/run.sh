#!/usr/bin/env bash
# Checks the running API against its own OpenAPI document with Schemathesis (every check):
# starts a server on a fresh data directory, runs `schemathesis run --checks all` from this
# folder (which holds its configuration, and `hooks.py` for the media type it does not know)
# as the admin, and stops the server.
# Usage: tests/schemathesis/run.sh [path to the mailroom binary] [examples per operation]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
binary="${1:-$root/target/debug/mailroom}"
examples="${2:-30}"
venv="${SCHEMATHESIS_VENV:-$root/target/schemathesis-venv}"
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet schemathesis==4.32.5
fi

data="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
token="mr_schemathesis_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
MAILROOM_ADMIN_TOKEN="$token" "$binary" serve --listen "127.0.0.1:$port" --data "$data" \
    >"$data/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

cd "$here"
SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$here" "$venv/bin/schemathesis" run "http://127.0.0.1:$port/v1/openapi.json" \
    --checks all --max-examples "$examples" --seed 1 \
    -H "Authorization: Bearer $token"
