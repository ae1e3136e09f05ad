#!/usr/bin/env bash
# Runs each cargo-fuzz target (crates/fuzz) for a bounded time: the webhook body parser, the
# Standard Webhooks signature verifier, the SaaS API body parsers and every JSON body against
# the strict-JSON rules (strict_body).
#
#   scripts/fuzz.sh [seconds per target, default 60] [target ...]
#
# cargo-fuzz needs nightly-only compiler flags; the machine has one stable toolchain, so the
# run sets RUSTC_BOOTSTRAP=1 for the fuzz build only. Inputs that make a target fail are copied
# to crates/fuzz/regressions/<target>/ (commit them: `cargo test` replays them through
# crates/ingress/tests/fuzz_regressions.rs) and the script exits non-zero. The growing corpus
# stays in target/fuzz-corpus/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(webhook_body signature saas_body strict_body); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

export RUSTC_BOOTSTRAP=1
failed=()
for target in "${targets[@]}"; do
  corpus="target/fuzz-corpus/$target"
  artifacts="target/fuzz-artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  echo "== fuzzing $target for ${seconds}s"
  if ! cargo fuzz run --fuzz-dir crates/fuzz --target-dir target/fuzz "$target" \
      "$corpus" "crates/fuzz/seeds/$target" -- \
      -max_total_time="$seconds" -artifact_prefix="$artifacts/" -print_final_stats=1 2>&1 |
      tee "target/fuzz-$target.log" | grep -E "^#[0-9]+ +(DONE|INITED)|^(stat::number_of_executed_units|stat::peak_rss_mb)|ERROR|panicked|SUMMARY"; then
    :
  fi
  if ls "$artifacts"/crash-* "$artifacts"/oom-* "$artifacts"/timeout-* >/dev/null 2>&1; then
    for found in "$artifacts"/crash-* "$artifacts"/oom-* "$artifacts"/timeout-*; do
      [ -e "$found" ] || continue
      cp "$found" "crates/fuzz/regressions/$target/"
      echo "!! $target failed on $found (copied to crates/fuzz/regressions/$target/)"
    done
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets that failed: ${failed[*]}"
  exit 1
fi
echo "no failures"
