#!/usr/bin/env bash
# The production-operation proofs at full size: the tests of tools/tests/ops_faults.rs and
# tools/tests/ops_haproxy.rs, built in release mode, with C10K_FULL_SIZE=1. Each test prints its figures:
#   slowloris       2,000 connections trickling a request one byte per second (10 s handshake
#                   timeout: every one answered 408 and closed, and replaced), 1,000 clients
#                   echoing at 10,000 msg/s: their p99 with and without the attack (server
#                   and attack on CPU 0, echo clients on CPU 1)
#   slow consumers  200 subscribers that never read, 10 that do, a publisher flooding the topic:
#                   1008 closes, the server's peak memory against the cap times the slow clients
#   churn           200,000 connect/close cycles (clean, reset, mid-handshake, mid-frame,
#                   half-open) while 8 clients echo: descriptors, slab, timers and memory after
#   descriptors     a server at 128 descriptors: CPU while at the limit, accept pauses, recovery
#   dead peers, graceful restart (1 and 2 processes), HAProxy (pings on and off): as in CI
# Usage: benches/faults.sh [TEST NAME FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
export C10K_FULL_SIZE=1
cargo test -q --release --test ops_faults --test ops_haproxy -- --nocapture --test-threads 1 "$@" 2>&1 |
  grep -v -e '^running ' -e '^$'
