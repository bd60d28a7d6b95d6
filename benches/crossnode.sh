#!/usr/bin/env bash
# The cost of a publish that crosses nodes: a Redis server and two `c10k serve --mode pubsub
# --redis` nodes on this machine; `c10k bench fanout` with its subscribers on node A publishes
# either on node A (same node: the engine delivers it) or on node B (B's bridge sends it to Redis,
# Redis to A's bridge, A delivers it). Rounds alternate same-node and cross-node runs; each prints
# deliveries/s and publish-to-delivery latency (p50, p99).
#
# Usage: benches/crossnode.sh [ROUNDS] (default 3)
# Environment: SUBSCRIBERS (10), RATE (1000 messages/s), DURATION (5s), PORT (9500; A, B, Redis on
# PORT, PORT+1, PORT+2).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
subs=${SUBSCRIBERS:-10}
rate=${RATE:-1000}
duration=${DURATION:-5s}
port=${PORT:-9500}
redis_port=$((port + 2))
command -v redis-server >/dev/null || { echo "crossnode: redis-server is needed (.ci/setup installs it)" >&2; exit 1; }
cargo build -q --release --bin c10k
exe=target/release/c10k
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" &
pids+=($!)
for _ in $(seq 50); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
for node in 0 1; do
  "$exe" -q serve --mode pubsub --shards 1 --addr "127.0.0.1:$((port + node))" \
    --redis "redis://127.0.0.1:$redis_port" >"$tmp/node$node.log" 2>&1 &
  pids+=($!)
done
sleep 0.5

run() { # LABEL [--publish-url URL]
  local label=$1
  shift
  "$exe" bench fanout --url "ws://127.0.0.1:$port/" -c $((subs + 1)) --payload 64 --rate "$rate" \
    --duration "$duration" --warmup 1s --json "$@" |
    python3 -c '
import json, sys
d = json.loads(next(l for l in sys.stdin if l.startswith("{")))
l = d["latency"]
print("%-11s %9.0f deliveries/s  p50 %7.0f µs  p99 %7.0f µs  errors %d"
      % (sys.argv[1], d["messages_per_s"], l["p50_us"], l["p99_us"], d["errors"]))
' "$label"
}

echo "$subs subscribers on node A, one publisher at $rate messages/s of 64 B, $duration per run"
for r in $(seq "$rounds"); do
  echo "round $r"
  run "same node"
  run "cross node" --publish-url "ws://127.0.0.1:$((port + 1))/"
done
