#!/usr/bin/env bash
# Runs unmodified third-party Salesforce clients (simple-salesforce from PyPI, jsforce from npm)
# against `sfetl simulate`. Installs them if missing, builds sfetl, runs both checks.
# Usage: tests/compat/run.sh        (SIM_CMD="/path/to/sfetl simulate" to use another binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! python3 -c 'import simple_salesforce' 2>/dev/null; then
  python3 -m pip install --quiet simple-salesforce==1.12.10 \
    || python3 -m pip install --quiet --break-system-packages simple-salesforce==1.12.10
fi
if [ ! -d tests/compat/node_modules/jsforce ]; then
  (cd tests/compat && npm install --no-audit --no-fund --silent)
fi
[ -n "${SIM_CMD:-}" ] || cargo build --quiet --bin sfetl
python3 tests/compat/simple_salesforce_check.py
node tests/compat/jsforce_check.mjs
