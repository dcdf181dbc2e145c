#!/usr/bin/env bash
# Runs every check and test of Mailroom, on a fresh machine too: installs what the
# end-to-end tests start (Dovecot, an aiosmtpd SMTP server, openssl, PostgreSQL) and the
# wasm target, then checks formatting and lints, runs the whole test suite, runs the
# end-to-end suite again with the state in PostgreSQL, and checks the API against its
# OpenAPI document with Schemathesis.
set -euo pipefail
cd "$(dirname "$0")/.."
# A one-off build gains nothing from incremental state; it only costs disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

if [ "$(id -u)" -eq 0 ]; then
    tests/fixtures/install.sh
else
    sudo tests/fixtures/install.sh
fi
rustup target add wasm32-wasip2
rustup component add rustfmt clippy

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --target wasm32-wasip2 -p mailroom-connector-imap -p mailroom-connector-google \
    -p mailroom-connector-microsoft -p mailroom-wasi-http \
    -p mailroom-test-hostile -p mailroom-test-hostile-sync -p mailroom-test-http-probe -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Written to a file and followed until cargo ends, rather than piped through tee: a process
# a failed test leaves behind cannot then hold the run open by keeping the pipe.
cargo test --workspace >"$log" 2>&1 &
tests=$!
tail --pid="$tests" -n +1 -f "$log"
wait "$tests" || status=$?
# The end-to-end suite once more on the shared backend (the cluster tests, which always
# use PostgreSQL, ran above).
MAILROOM_TEST_STORE=postgres cargo test -p mailroom-tests --test e2e -- --skip cluster:: \
    >>"$log" 2>&1 &
tests=$!
tail --pid="$tests" -n 0 -f "$log"
wait "$tests" || status=$?
# The API against its own OpenAPI document, every Schemathesis check.
tests/schemathesis/run.sh target/debug/mailroom || status=$?
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
