#!/usr/bin/env bash
# The project's test command (the README's second command, and what CI runs).
# Embedded mode needs no external service: the tests start the real service on 127.0.0.1:0
# with SQLite files in temporary directories.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
