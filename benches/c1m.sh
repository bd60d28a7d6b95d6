#!/usr/bin/env bash
# C1M on one machine: a million concurrent WebSocket connections over loopback, proven live from
# the server's side, then drained.
#
#   benches/c1m.sh [CONNECTIONS]          (default 1000000; 250000 and 500000 show the growth)
#
# One process may hold at most 20,000 descriptors here, so both sides are many processes:
#   server: c10k serve --processes P (one shard each, SO_REUSEPORT on one port), --metrics
#   load:   c10k bench hold --processes P --source 127.0.0.2,... (each child ~19,000 connections,
#           spread over source addresses so that no address runs out of ephemeral ports)
# What it proves and measures:
#   1. the ramp: time to connect every connection, handshakes per second, handshake latency;
#   2. the server's own count: GET /metrics scraped until every worker has answered, its
#      c10k_connections_open summed, every SAMPLE_EVERY seconds through the hold;
#   3. memory: server RSS per connection (delta and total), kernel memory per connection
#      (TCP sockets and pages from /proc/net/sockstat, Slab from /proc/meminfo, before and held);
#   4. rest: the server's CPU over the hold (default 30 s keep-alive pings), per idle connection
#      per second, and the pings the clients got in each second of the hold (the spread);
#   5. the end: every connection answers one echo (--final-echo), then the server drains on
#      SIGTERM: every client must get 1001, the drain's time and peak memory are reported.
#
# It runs in a network namespace of its own, with an established-connection hash table sized for
# the run (see below). Kernel limits the run needs are raised for the run only and restored on exit
# (also on error or Ctrl-C): tcp_child_ehash_entries, netdev_max_backlog, file-max; the
# namespace's own ip_local_port_range, somaxconn and tcp_max_syn_backlog go away with it.
# It refuses to start, saying why, when the machine cannot hold the target (memory, descriptors,
# limits it may not raise). Every wait is bounded and every process it starts is stopped.
#
# Environment: SERVER_PROCS, LOAD_PROCS (default: one per PER_PROC connections), PER_PROC (19000),
# SOURCES (default: one per 20,000 connections), HOLD (60s), PORT (9300), MAX_PENDING (per load
# process, 64), SAMPLE_EVERY (10), KEEP (a directory to keep the raw samples and reports in),
# NETNS (0: run in the current network namespace), LIMITS (keep: change no kernel setting),
# C10K_BIN (a c10k binary to run instead of building target/release/c10k).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-1000000}
PER_PROC=${PER_PROC:-19000}
SERVER_PROCS=${SERVER_PROCS:-$(( (N + PER_PROC - 1) / PER_PROC ))}
LOAD_PROCS=${LOAD_PROCS:-$SERVER_PROCS}
# connect() looks for a free port among the even ports of the range first, then the odd ones; once a
# source address has used every even port, each connect scans all of them before it finds an odd
# one, and the ramp falls from ~20,000 to ~300 connections/s (measured). So each source address
# keeps under 20,000 connections, well inside the 32,256 even ports of 1024-65535.
SOURCES=${SOURCES:-$(( (N + 19999) / 20000 ))}
HOLD=${HOLD:-60s}
[[ "$HOLD" =~ ^[0-9]+s$ ]] || { echo "c1m: HOLD in seconds, like 60s" >&2; exit 2; }
PORT=${PORT:-9300}
MAX_PENDING=${MAX_PENDING:-64}
SAMPLE_EVERY=${SAMPLE_EVERY:-10}
# Memory per idle connection measured here, both ends on this box: 8.4 KB of kernel Slab (sockets,
# inodes, files, epoll entries), 7.2 KB of MemAvailable in all (some Slab is reclaimable); with a
# margin.
BYTES_PER_CONN=${BYTES_PER_CONN:-14000}

die() { echo "c1m: $*" >&2; exit 2; }

# --- What the machine can hold --------------------------------------------------------------------
[ "$N" -ge 1000 ] || die "at least 1000 connections"
[ "$SOURCES" -le 250 ] || die "SOURCES=$SOURCES: at most 250 (127.0.0.2 to 127.0.0.251)"
hard=$(ulimit -Hn)
per_server=$(( (N + SERVER_PROCS - 1) / SERVER_PROCS ))
per_load=$(( (N + LOAD_PROCS - 1) / LOAD_PROCS ))
# A worker's share varies with the SO_REUSEPORT hash, by about the square root of the share (one
# standard deviation): leave five of them, and 100 descriptors, of room.
spread=$(awk -v n="$per_server" 'BEGIN {printf "%d", 5 * sqrt(n)}')
[ $(( per_server + spread + 100 )) -le "$hard" ] ||
  die "$per_server connections per server process, but a process may hold $hard descriptors: raise SERVER_PROCS"
[ $(( per_load + 100 )) -le "$hard" ] ||
  die "$per_load connections per load process, but a process may hold $hard descriptors: raise LOAD_PROCS"
avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
need_kb=$(( N * BYTES_PER_CONN / 1024 ))
if [ "$need_kb" -gt "$avail_kb" ]; then
  die "$N connections need about $(( need_kb / 1048576 )) GiB ($BYTES_PER_CONN bytes each, both ends), " \
      "$(( avail_kb / 1048576 )) GiB are available: at most about $(( avail_kb * 1024 / BYTES_PER_CONN )) here"
fi
even_ports=$(( (65535 - 1024 + 1) / 2 ))
[ $(( SOURCES * even_ports )) -ge "$N" ] ||
  die "SOURCES=$SOURCES give $(( SOURCES * even_ports )) even ports for $N connections: the ramp would crawl"

# --- Kernel limits, for this run only -------------------------------------------------------------
declare -A SAVED=()
restore_sysctls() {
  for k in "${!SAVED[@]}"; do
    echo "${SAVED[$k]}" > "/proc/sys/$k" 2>/dev/null || echo "c1m: could not restore $k to ${SAVED[$k]}" >&2
  done
  SAVED=()
}
# set KEY VALUE: only ever raises (a machine tuned higher keeps its setting). LIMITS=keep leaves
# every setting as it is (a small run, or a machine set up by hand).
raise() {
  local key=$1 want=$2 now
  [ "${LIMITS:-raise}" = keep ] && return
  now=$(tr '\t' ' ' < "/proc/sys/$key")
  if [ "$key" = net/ipv4/ip_local_port_range ]; then
    [ "$now" = "$want" ] && return
  elif [ "$now" -ge "$want" ]; then
    return
  fi
  [ -w "/proc/sys/$key" ] && echo "$want" > "/proc/sys/$key" 2>/dev/null ||
    die "cannot set $key to $want (it is $now): run as root, or set it yourself and rerun"
  SAVED[$key]=$now
}

# The machine's settings, seen only from the first network namespace.
raise_global() {
  raise net/core/netdev_max_backlog 65536
  raise fs/file-max $(( 2 * N + 200000 ))
}

# --- A network namespace of its own ----------------------------------------------------------------
# The kernel's table of established TCP connections has the number of buckets it was given at boot
# (/proc/sys/net/ipv4/tcp_ehash_entries, 262,144 on this 24 GiB machine). With two million sockets
# (both ends of a million connections) every packet's lookup walks chains of eight: the first
# kernel function of the ramp (9% of all CPU between 1.3 and 1.8 million sockets, measured with
# perf), and the ramp slowed from 20,000 to 10,000 connections/s. A server meant for millions is
# booted with thash_entries=N; without a reboot, a new network namespace gets a table of the size
# asked for (net.ipv4.tcp_child_ehash_entries), and its own settings go away with it. NETNS=0 runs
# in the current namespace instead.
if [ -z "${C1M_INSIDE:-}" ] && [ "${NETNS:-1}" != 0 ]; then
  command -v unshare >/dev/null || die "unshare (util-linux) is needed for the network namespace; or NETNS=0"
  buckets=1
  while [ "$buckets" -lt $(( 2 * N )) ]; do buckets=$(( buckets * 2 )); done
  trap restore_sysctls EXIT
  trap 'exit 130' INT TERM
  raise net/ipv4/tcp_child_ehash_entries "$buckets"
  raise_global
  [ -n "${C10K_BIN:-}" ] || cargo build -q --release --bin c10k
  set +e
  unshare -n env C1M_INSIDE=1 bash "$0" "$@"
  status=$?
  set -e
  exit $status
fi
if [ -n "${C1M_INSIDE:-}" ]; then
  ip link set lo up || die "cannot bring up the namespace's loopback"
else
  raise_global
fi

BIN=${C10K_BIN:-${CARGO_TARGET_DIR:-target}/release/c10k}
TMP=$(mktemp -d)
SUP=
BG=()
cleanup() {
  for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$SUP" ] && kill -0 "$SUP" 2>/dev/null; then
    kill -TERM "$SUP" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SUP" 2>/dev/null || true
  fi
  restore_sysctls
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp -r "$TMP"/. "$KEEP"/; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -n "${C1M_INSIDE:-}" ] || [ -n "${C10K_BIN:-}" ] || cargo build -q --release --bin c10k

# The namespace's own settings (the current namespace's with NETNS=0).
raise net/ipv4/ip_local_port_range "1024 65535"
raise net/core/somaxconn 65535
raise net/ipv4/tcp_max_syn_backlog 65535

echo "c1m: $N connections; server $SERVER_PROCS processes, load $LOAD_PROCS processes, $SOURCES source addresses," \
  "hold $HOLD, at most $MAX_PENDING connecting per load process"
echo "kernel: ports $(tr '\t' '-' < /proc/sys/net/ipv4/ip_local_port_range), somaxconn $(cat /proc/sys/net/core/somaxconn)," \
  "tcp_max_syn_backlog $(cat /proc/sys/net/ipv4/tcp_max_syn_backlog), netdev_max_backlog 65536 or more," \
  "file-max $(cat /proc/sys/fs/file-max), descriptors per process $hard, MemAvailable $(( avail_kb / 1024 )) MiB," \
  "established hash $(cat /proc/sys/net/ipv4/tcp_ehash_entries | tr -d -) buckets$( [ -n "${C1M_INSIDE:-}" ] && echo ' (a network namespace of its own)')"

# --- Kernel memory before -------------------------------------------------------------------------
kernel() { # TCP sockets in use, TCP pages, Slab kB, MemAvailable kB
  echo "$(awk '/^TCP:/ {print $3, $NF}' /proc/net/sockstat) $(awk '/^Slab:/ {s=$2} /^MemAvailable:/ {a=$2} END {print s, a}' /proc/meminfo)"
}
tree() { # CPU ticks and RSS kB of process $1 and its children
  local files="/proc/$1/stat"
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do files="$files /proc/$c/stat"; done
  # shellcheck disable=SC2086
  awk '{t += $14 + $15; r += $24} END {print t + 0, r * 4}' $files 2>/dev/null || echo "0 0"
}
read -r tcp0 pages0 slab0 avail0 <<<"$(kernel)"

"$BIN" -q serve --addr "127.0.0.1:$PORT" --processes "$SERVER_PROCS" --shards 1 --metrics \
  --backlog 65535 --drain-timeout 120s >"$TMP/serve.out" 2>"$TMP/serve.err" &
SUP=$!
for _ in $(seq 1 600); do
  grep -q "listening" "$TMP/serve.out" 2>/dev/null && break
  kill -0 "$SUP" 2>/dev/null || { cat "$TMP/serve.err"; exit 1; }
  sleep 0.1
done
grep -q "listening" "$TMP/serve.out" || die "the server did not start in 60 s"
head -1 "$TMP/serve.out"

# --- Samplers: the kernel every second, the server's own count every SAMPLE_EVERY s ---------------
T0=$(date +%s.%N)
LOAD=
(
  # time, TCP sockets, TCP pages, Slab kB, MemAvailable kB, server CPU ticks and RSS kB, load CPU ticks
  for _ in $(seq 1 3600); do
    load=$(pgrep -o -f "bench hold --url ws://127.0.0.1:$PORT/" || true)
    echo "$(date +%s.%N) $(kernel) $(tree "$SUP") $( [ -n "$load" ] && tree "$load" | cut -d' ' -f1 || echo 0)"
    sleep 1
  done
) >"$TMP/kernel.txt" &
BG+=($!)
python3 benches/c1m_metrics.py --port "$PORT" --workers "$SERVER_PROCS" --every "$SAMPLE_EVERY" \
  >"$TMP/metrics.txt" 2>"$TMP/metrics.err" &
BG+=($!)

# --- The load, the final echoes, the drain ---------------------------------------------------------
# The load side sends the server SIGTERM once every connection has answered its final echo, and
# counts the 1001s; the server's drain timeout is long enough for a million closes on 2 cores.
src=$(seq 2 $((SOURCES + 1)) | sed 's/^/127.0.0./' | paste -sd, -)
set +e
"$BIN" -q bench hold --url "ws://127.0.0.1:$PORT/" -c "$N" --processes "$LOAD_PROCS" \
  --source "$src" --duration "$HOLD" --warmup 0s --final-echo --server-drain --connect-timeout 180s \
  --max-pending "$MAX_PENDING" --server-pid "$SUP" --json >"$TMP/report.json"
status=$?
set -e
T1=$(date +%s.%N)
exit_status=
for _ in $(seq 1 1200); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SUP" 2>/dev/null; then
  echo "c1m: the server was still running 120 s after the load generator ended" >&2
  status=1
else
  wait "$SUP" 2>/dev/null && exit_status=0 || exit_status=$?
  SUP=
fi
sleep 1
for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
BG=()

python3 benches/c1m_report.py --report "$TMP/report.json" --kernel "$TMP/kernel.txt" --metrics "$TMP/metrics.txt" \
  --t0 "$T0" --t1 "$T1" --before "$tcp0 $pages0 $slab0 $avail0" --server-exit "${exit_status:-1}" \
  --connections "$N" --workers "$SERVER_PROCS" --hold "${HOLD%s}" --json "$TMP/figures.json"
exit $status
