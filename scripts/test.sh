#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what it needs, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export BAKERD_TEST_PYTHON="$PWD/target/pyenv/bin/python"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo nextest run --no-fail-fast --features failpoints "$@"
