#!/usr/bin/env bash
# C100k on one machine: 100,000 concurrent WebSocket connections over loopback.
#
# One process may hold at most 20,000 descriptors here, so both sides are several processes:
#   server: c10k serve --processes 6 (a supervisor and 6 workers on one port, SO_REUSEPORT)
#   load:   c10k bench hold --processes 6 --source 127.0.0.2,...  (each child ~16,700 connections,
#           spread over several source addresses for ephemeral ports)
# Every connection is opened, held idle, and at the end answers one echo (--final-echo). Printed:
# connections held at once, time to connect them all, handshake latency, the server's memory per
# connection (RSS of the supervisor's process tree before and after), the kernel's TCP sockets, and
# how long the graceful shutdown took.
#
# Usage: benches/c100k.sh [CONNECTIONS] (default 100000)
# Environment: SERVER_PROCS (6), LOAD_PROCS (6), SOURCES (12 addresses), HOLD (10s), PORT (9100).
#
# Loopback drops SYNs in bursts (net.core.netdev_max_backlog, 1000 by default): the kernel
# retransmits them after 1 s, 3 s, ..., which slows the ramp but loses nothing; the connect
# timeout below bounds it. Raising the setting (see docs/operations.md) makes the ramp faster.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${1:-100000}
SERVER_PROCS=${SERVER_PROCS:-6}
LOAD_PROCS=${LOAD_PROCS:-6}
SOURCES=${SOURCES:-12}
HOLD=${HOLD:-10s}
PORT=${PORT:-9100}

cargo build -q --release --bin c10k
BIN=${CARGO_TARGET_DIR:-target}/release/c10k
TMP=$(mktemp -d)
SUP=
SAMPLER=
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  if [ -n "$SUP" ] && kill -0 "$SUP" 2>/dev/null; then
    kill -TERM "$SUP" 2>/dev/null || true
    sleep 1
    kill -KILL "$SUP" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

echo "c100k: $CONNECTIONS connections, server $SERVER_PROCS processes, load $LOAD_PROCS processes, $SOURCES source addresses"
echo "kernel: somaxconn $(cat /proc/sys/net/core/somaxconn), netdev_max_backlog $(cat /proc/sys/net/core/netdev_max_backlog)," \
  "tcp_max_syn_backlog $(cat /proc/sys/net/ipv4/tcp_max_syn_backlog), ports $(tr '\t' '-' < /proc/sys/net/ipv4/ip_local_port_range)," \
  "descriptors per process $(ulimit -Hn)"

"$BIN" -q serve --addr "127.0.0.1:$PORT" --processes "$SERVER_PROCS" --shards 1 >"$TMP/serve.out" 2>"$TMP/serve.err" &
SUP=$!
for _ in $(seq 1 300); do
  grep -q "listening" "$TMP/serve.out" 2>/dev/null && break
  kill -0 "$SUP" 2>/dev/null || { cat "$TMP/serve.err"; exit 1; }
  sleep 0.1
done
head -1 "$TMP/serve.out"

# Every second: the most sockets the kernel held, and the most descriptors of any worker.
(
  max_tcp=0; max_fds=0
  while sleep 1; do
    tcp=$(awk '/^TCP:/ {print $3}' /proc/net/sockstat)
    [ "$tcp" -gt "$max_tcp" ] && max_tcp=$tcp
    for w in $(cat /proc/"$SUP"/task/*/children 2>/dev/null); do
      n=$(ls /proc/"$w"/fd 2>/dev/null | wc -l)
      [ "$n" -gt "$max_fds" ] && max_fds=$n
    done
    echo "$max_tcp $max_fds $(awk '/^TCP:/ {print $NF}' /proc/net/sockstat)" >"$TMP/peak.new"
    mv "$TMP/peak.new" "$TMP/peak"
  done
) &
SAMPLER=$!

src=$(seq 2 $((SOURCES + 1)) | sed 's/^/127.0.0./' | paste -sd, -)
start=$(date +%s%N)
set +e
"$BIN" -q bench hold --url "ws://127.0.0.1:$PORT/" -c "$CONNECTIONS" --processes "$LOAD_PROCS" \
  --source "$src" --duration "$HOLD" --warmup 0s --final-echo --connect-timeout 180s \
  --server-pid "$SUP" --json >"$TMP/report.json"
status=$?
set -e
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
kill "$SAMPLER" 2>/dev/null || true
SAMPLER=

read -r max_tcp max_fds tcp_pages < "$TMP/peak" || true
python3 - "$TMP/report.json" "$took_ms" "${max_tcp:-0}" "${max_fds:-0}" "${tcp_pages:-0}" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
took, max_tcp, max_fds, pages = int(sys.argv[2]) / 1000, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
mib = lambda b: (b or 0) / 1048576
hs = r["handshake_latency"]
lat = r["latency"]
print(f"connections         {r['connections']} asked, {r['connected']} connected, {r['peak_concurrent']} open at once, "
      f"{r['survivors']} still open after {r['window_s']:.0f} s")
print(f"final echoes        {r['messages']} (round trip p50 {lat['p50_us']/1000:.1f} ms, p99 {lat['p99_us']/1000:.1f} ms, "
      f"max {lat['max_us']/1000:.1f} ms)")
print(f"time to connect     {r['connect_s']:.1f} s ({r['connected'] / max(r['connect_s'], 1e-9):.0f} connections/s); "
      f"handshake p50 {hs['p50_us']/1000:.1f} ms, p99 {hs['p99_us']/1000:.1f} ms, max {hs['max_us']/1000:.0f} ms")
print(f"server RSS          {mib(r['server_rss_before']):.1f} MiB -> {mib(r['server_rss_after']):.1f} MiB "
      f"(supervisor and workers): {r['server_bytes_per_connection'] or 0:.0f} bytes per connection")
print(f"kernel              at most {max_tcp} TCP sockets in use (both ends), TCP memory {pages * 4096 / 1048576:.0f} MiB "
      f"at the last sample; busiest worker {max_fds} descriptors")
print(f"errors              {r['errors']} {r['error_samples'][:3]}")
print(f"whole run           {took:.1f} s")
EOF

t0=$(date +%s%N)
kill -TERM "$SUP"
wait "$SUP" && drained=ok || drained="exit status $?"
echo "shutdown            $(( ($(date +%s%N) - t0) / 1000000 )) ms after SIGTERM ($drained)"
SUP=
exit $status
