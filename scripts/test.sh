#!/usr/bin/env bash
# The project's test command (the README's second command, and what CI runs).
# Embedded mode needs no external service: the tests start the real service on 127.0.0.1:0
# with SQLite files in temporary directories. The console's browser test needs headless
# Chromium and chromedriver (Debian's chromium and chromium-driver), installed here when
# missing; plain `cargo test` skips that one test (it is #[ignore]d) and needs no browser.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "== installing chromium and chromium-driver for the browser test"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

cargo test --workspace --locked "$@"

echo "== browser test (headless Chromium): screenshots in target/tmp/console-screenshots/"
cargo test --workspace --locked --test console_browser -- --ignored
