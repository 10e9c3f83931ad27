#!/usr/bin/env bash
# Runs unmodified third-party Salesforce clients (simple-salesforce from PyPI, jsforce from npm)
# against `sfetl simulate`. Installs them if missing, builds sfetl, runs both checks.
# Usage: tests/compat/run.sh        (SIM_CMD="/path/to/sfetl simulate" to use another binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! python3 -c 'import simple_salesforce' 2>/dev/null; then
  echo "== compat: installing simple-salesforce (PyPI)"
  python3 -m pip install --quiet simple-salesforce==1.12.10 \
    || python3 -m pip install --quiet --break-system-packages simple-salesforce==1.12.10
fi
if [ ! -d tests/compat/node_modules/jsforce ]; then
  echo "== compat: installing jsforce (npm)"
  # `npm ci` installs exactly the versions package-lock.json names (checked against its
  # hashes), so a run does not resolve jsforce's tree afresh; npm's own retries ride out a
  # dropped connection to the registry (its default is 2).
  (cd tests/compat && npm ci --no-audit --no-fund --loglevel=error --fetch-retries=5)
fi
[ -n "${SIM_CMD:-}" ] || cargo build --quiet --bin sfetl
echo "== compat: simple-salesforce against the simulator"
python3 -u tests/compat/simple_salesforce_check.py
echo "== compat: jsforce against the simulator"
node tests/compat/jsforce_check.mjs
