#!/usr/bin/env bash
# A long fuzz campaign: every target (or the ones named after the options) runs until its fuzzer
# process has used SECONDS of CPU time (default 1800), JOBS targets at a time (default 2). CPU time,
# not wall time, is the budget, so a build beside the campaign or a pause (kill -STOP / -CONT on the
# fuzzer) does not shorten any target's run. Fuzzers run at nice 19.
#
# Working corpus: fuzz/corpus/<target> (kept between runs), seeds read from fuzz/seeds/<target>.
# Logs: fuzz/logs/campaign-<target>.log; a summary line per target in fuzz/logs/campaign.tsv:
#   target  cpu_s  wall_s  runs  execs_per_s  corpus_units  peak_rss_mb  verdict
# A crash stops that target; the input is left in fuzz/artifacts/<target>/. Exits non-zero if any
# target crashed.
#
# Usage: fuzz/campaign.sh [-s SECONDS] [-j JOBS] [target...]
set -euo pipefail

secs=1800
jobs=2
while getopts "s:j:" opt; do
    case "$opt" in
        s) secs="$OPTARG" ;;
        j) jobs="$OPTARG" ;;
        *) echo "usage: $0 [-s SECONDS] [-j JOBS] [target...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))

cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo fuzz build
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
bin_dir="target/$(rustc -vV | sed -n 's/^host: //p')/release"
mkdir -p logs
summary=logs/campaign.tsv
printf 'target\tcpu_s\twall_s\truns\texecs_per_s\tcorpus_units\tpeak_rss_mb\tverdict\n' >"$summary"
ticks=$(getconf CLK_TCK)

# CPU seconds (user + system) used so far by process $1, or nothing if it has exited.
cpu_of() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    # Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    stat=${stat##*) }
    read -r -a f <<<"$stat"
    echo $(((f[11] + f[12]) / ticks))
}

# Runs one target to its CPU budget and appends its summary line.
run_target() {
    local target=$1 max_len log pid start cpu=0 rc verdict
    case "$target" in
        server_conn | client_conn) max_len=16384 ;;
        frame) max_len=64 ;;
        *) max_len=4096 ;;
    esac
    mkdir -p "corpus/$target" "artifacts/$target"
    log="logs/campaign-$target.log"
    start=$(date +%s)
    nice -n 19 "$bin_dir/$target" "corpus/$target" "seeds/$target" \
        -max_len="$max_len" -print_final_stats=1 -artifact_prefix="artifacts/$target/" \
        -max_total_time=$((secs * 20)) >"$log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        cpu=$(cpu_of "$pid")
        if [ -n "$cpu" ] && [ "$cpu" -ge "$secs" ]; then
            kill -INT "$pid" 2>/dev/null || true
            break
        fi
        sleep 5
    done
    rc=0
    wait "$pid" || rc=$?
    # libFuzzer exits 72 when interrupted (the budget was reached); anything else non-zero is a find.
    if [ "$rc" -eq 0 ] || [ "$rc" -eq 72 ]; then verdict=clean; else verdict="crash(rc=$rc)"; fi
    local runs eps units rss
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    eps=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    units=$(grep -o 'stat::new_units_added: *[0-9]*' "$log" >/dev/null && ls "corpus/$target" | wc -l)
    rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$cpu" $(($(date +%s) - start)) \
        "$runs" "$eps" "${units:-?}" "$rss" "$verdict" >>"$summary"
    echo "campaign $target: $verdict, ${cpu}s CPU, $runs runs (log: fuzz/$log)"
}

pids=()
for target in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    run_target "$target" &
    pids+=($!)
done
wait
column -t "$summary"
! grep -q crash "$summary"
