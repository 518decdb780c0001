#!/usr/bin/env bash
# Run every test of the project, as root, on a fresh Debian 12 machine:
#   ./scripts/test.sh
# Installs what the tests need, checks formatting and lints, runs the unit and
# integration tests (real containers), the conformance suite against husk and
# runc (husk must pass everything runc passes) and a quick benchmark smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

./scripts/setup-test-deps.sh

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== build"
cargo build --release --workspace
bin=$PWD/target/x86_64-unknown-linux-gnu/release
export HUSK_BINARY=$bin/husk

echo "== unit and integration tests"
# One test thread: the tests create real containers and cgroups, and this
# machine has two cores.
# --nocapture shows why a test skipped itself: cargo counts such a test as
# passed, so the skips are counted and listed again below.
test_log=$(mktemp)
cargo test --release --workspace -- --test-threads=1 --nocapture 2>&1 | tee "$test_log"
skips=$(grep -o 'SKIPPED.*' "$test_log" || true)
echo "== cargo tests that skipped themselves (cargo counted them as passed): $(printf '%s' "$skips" | grep -c . || true)"
[ -z "$skips" ] || printf '%s\n' "$skips"
rm -f "$test_log"

echo "== conformance: runc (reference)"
runc_report=$(mktemp)
trap 'rm -f "$runc_report"' EXIT
"$bin/conformance" --runtime "$(command -v runc)" --report "$runc_report" || true
echo "== conformance: husk"
"$bin/conformance" --runtime "$HUSK_BINARY" --must-pass "$runc_report"

echo "== benchmark smoke run (figures: cargo run -p benches --release --bin lifecycle)"
"$bin/lifecycle" --quick --runtimes "husk=$HUSK_BINARY,runc=$(command -v runc),crun"
