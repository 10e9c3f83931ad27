#!/usr/bin/env bash
# Runs every test of sfetl: installs the test tools it needs (a Python venv outside the clone),
# then the Rust tests (unit + end-to-end against the simulator), the Python checks that read
# sfetl's output with third-party libraries, and third-party Salesforce clients run against the
# simulator.
set -euo pipefail
cd "$(dirname "$0")/.."

# Cargo's own target dir (where `cargo run -- demo` builds too) unless CARGO_TARGET_DIR is set.
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
VENV="${SFETL_VENV:-$HOME/.cache/sfetl-venv}"

# Headless Chromium drives the OAuth consent page in tests/e2e/auth_login.rs (Debian's package).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq chromium
  else
    echo "scripts/test.sh: install Chromium first (Debian/Ubuntu: sudo apt-get install chromium)" >&2
    exit 1
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
export PATH="$VENV/bin:$PATH"

echo "== cargo test"
cargo build --bins
cargo test --all-targets

echo "== pytest (tests/python)"
SFETL_BIN="$TARGET/debug/sfetl" python -m pytest -q tests/python

# Unmodified third-party Salesforce clients (simple-salesforce, jsforce) against `sfetl simulate`.
SIM_CMD="$TARGET/debug/sfetl simulate" tests/compat/run.sh
