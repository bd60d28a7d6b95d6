#!/usr/bin/env bash
# Builds every fuzz target and runs each for N seconds (default 20; the first argument overrides)
# over its seeds in fuzz/seeds/<target>, with the working corpus in fuzz/corpus/<target>.
# Exits non-zero if any target crashes; the crashing input is left in fuzz/artifacts/<target>/.
#
# Usage: fuzz/smoke.sh [seconds] | fuzz/smoke.sh --build-only
# --build-only installs cargo-fuzz if needed and builds the targets, without running them (CI
# builds first, then fuzzes on one core while it does other work on the other).
set -euo pipefail

secs="${1:-20}"
cd "$(dirname "$0")"
# cargo-fuzz passes -Z flags to rustc; this lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cargo fuzz build
if [ "$secs" = --build-only ]; then
    exit 0
fi
mkdir -p logs
passed=0
failed=0
for target in $(cargo fuzz list); do
    case "$target" in
        server_conn | client_conn) max_len=16384 ;;
        frame) max_len=64 ;;
        *) max_len=4096 ;;
    esac
    mkdir -p "corpus/$target"
    log="logs/$target.log"
    if cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
        echo "fuzz $target: ok, ${runs:-?} runs in ${secs}s"
        passed=$((passed + 1))
    else
        echo "fuzz $target: FAILED (log: fuzz/$log, input: fuzz/artifacts/$target/)"
        grep -m 1 -A 8 -E 'panicked|ERROR:' "$log" || tail -20 "$log"
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
