#!/usr/bin/env bash
# Builds connector.py into pop3_python.wasm with componentize-py (installed into a virtual
# environment here the first time).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wit="$here/../../wit"
venv="${COMPONENTIZE_PY_VENV:-$here/.venv}"
if [ ! -x "$venv/bin/componentize-py" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet componentize-py==0.25.1
fi
cd "$here"
"$venv/bin/componentize-py" -d "$wit/0.1.0" -d "$wit/0.2.0" -d "$wit/0.3.0" -d "$wit/0.4.0" \
    -w mailroom:connector/mail-connector@0.4.0 componentize connector -p . -o pop3_python.wasm
