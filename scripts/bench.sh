#!/usr/bin/env bash
# Runs the benchmarks in release mode; results are written to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/fixtures/install.sh
cargo build --release -p mailroom
cargo bench -p mailroom-tests
