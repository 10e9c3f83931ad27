#!/usr/bin/env bash
# Runs every test of sfetl: installs the test tools it needs (a Python venv outside the clone),
# then the Rust tests (unit + end-to-end against the simulator) and the Python checks that read
# sfetl's output with third-party libraries.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sfetl-target}"
VENV="${SFETL_VENV:-$HOME/.cache/sfetl-venv}"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
export PATH="$VENV/bin:$PATH"

cargo build --bins
cargo test --all-targets

SFETL_BIN="$CARGO_TARGET_DIR/debug/sfetl" python -m pytest -q tests/python
