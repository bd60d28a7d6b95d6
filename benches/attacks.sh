#!/usr/bin/env bash
# The attack suite at full size against `c10k serve` (defaults and --memory-budget 1GiB) and the
# peer servers of benches/peers, several runs, one JSON report per attack and run; then the table
# of docs/security.md (benches/attacks_report.py).
#
# Usage: benches/attacks.sh [--runs N] [--duration D] [--peer-runs N] [--only c10k|peers|control] [--out DIR]
#
# Each server runs alone: a server on a port of its own for each run, stopped after it (every
# attack is bounded by --duration and the tool's own waits; every server is stopped on exit).
# Targets: c10k over ws (echo), over ws in pubsub mode (subscribe-flood), over wss in chat mode
# with --backpressure drop (readers of large broadcasts, TLS ClientHellos); each peer over ws.
# The control (--only control): each attack on one c10k serve while the bystanders talk to a
# second one (--bystander-url), so that what the attack costs them through this machine alone
# (the attacker's own work and the kernel's, on the same two cores) is measured too.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
peer_runs=1
duration=60s
only=all
out=target/attacks
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --peer-runs) peer_runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --only) only=$2; shift 2
      case "$only" in all|c10k|peers|control) ;; *) echo "attacks.sh: --only all|c10k|peers|control" >&2; exit 2 ;; esac ;;
    --out) out=$2; shift 2 ;;
    *) echo "attacks.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

cargo build -q --release -p c10k-tools --bin c10k --features tls
CARGO_TARGET_DIR="$PWD/benches/peers/target" cargo build -q --release --manifest-path benches/peers/Cargo.toml
c10k=target/release/c10k
peers=benches/peers/target/release
mkdir -p "$out"
# Connections on both sides: the server and the attacker are separate processes, each within
# this machine's 20,000 descriptors.
ulimit -n "$(ulimit -Hn)"

# A test CA and a certificate it signed for the wss target, made for the run (benches/wss.py).
pki=$(mktemp -d)
python3 -c "import sys; sys.path.insert(0, 'benches'); import wss; wss.make_cert(sys.argv[1])" "$pki"

server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap 'stop_server; rm -rf "$pki"' EXIT

port=9601
# start_server NAME CMD...: starts it on a fresh port, waits until it answers.
start_server() {
  local name=$1; shift
  port=$((port + 1))
  "$@" --addr "127.0.0.1:$port" > "$out/$name-server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "attacks.sh: $name did not start on port $port" >&2
  exit 1
}

# attack NAME RUN URL ATTACK SCALE [EXTRA...]
attack() {
  local name=$1 run=$2 url=$3 what=$4 scale=$5; shift 5
  local file="$out/$name-$what-run$run.json"
  echo "== $name, run $run: $what at scale $scale"
  "$c10k" -q attack "$url" --attack "$what" --scale "$scale" --duration "$duration" \
    --server-pid "$server_pid" --json "$@" > "$file" || true
  python3 -c "import json,sys; a=json.load(open(sys.argv[1]))['attacks'][0]; print('  ', a['verdict'], a.get('answers'), 'growth', a['memory'] and a['memory']['growth'], 'ratio', a['bystanders'] and a['bystanders']['ratio'])" "$file" 2>/dev/null || echo "   (no report: see $file)"
}

# The full-size figures (docs/attacks.md).
echo_attacks=(
  "ping-flood 1" "deflate-held 1500" "slow-reader 1" "unfinished-message 10000"
  "fragment-dribble 1" "pending-handshakes 10000" "slowloris 5000" "close-flood 256"
  "address-flood 15000" "huge-frame 4" "utf8-dribble 4" "header-flood 1000"
)

if [ "$only" = all ] || [ "$only" = c10k ]; then
  for run in $(seq "$runs"); do
    start_server c10k "$c10k" -q serve --memory-budget 1GiB
    for a in "${echo_attacks[@]}"; do
      set -- $a
      attack c10k "$run" "ws://127.0.0.1:$port/" "$1" "$2"
    done
    stop_server
    start_server c10k-pubsub "$c10k" -q serve --memory-budget 1GiB --mode pubsub
    attack c10k "$run" "ws://127.0.0.1:$port/" subscribe-flood 1000000 --app pubsub
    stop_server
    start_server c10k-chat-wss "$c10k" -q serve --memory-budget 1GiB --mode chat --backpressure drop \
      --tls-cert "$pki/cert.pem" --tls-key "$pki/key.pem"
    attack c10k-wss "$run" "wss://localhost:$port/chat/attack" slow-reader 40 --tls-ca "$pki/ca.pem"
    attack c10k-wss "$run" "wss://localhost:$port/chat/hello" tls-hello-flood 10000 --tls-ca "$pki/ca.pem"
    stop_server
  done
fi

if [ "$only" = control ]; then
  # The bystanders' server, apart from the attacked one.
  port=$((port + 1))
  quiet_port=$port
  "$c10k" -q serve --memory-budget 1GiB --addr "127.0.0.1:$quiet_port" > "$out/control-bystanders.log" 2>&1 &
  quiet_pid=$!
  trap 'stop_server; kill "$quiet_pid" 2>/dev/null; rm -rf "$pki"' EXIT
  sleep 1
  for run in $(seq "$runs"); do
    start_server c10k "$c10k" -q serve --memory-budget 1GiB
    for a in "${echo_attacks[@]}"; do
      set -- $a
      attack control "$run" "ws://127.0.0.1:$port/" "$1" "$2" --bystander-url "ws://127.0.0.1:$quiet_port/"
    done
    stop_server
  done
  kill "$quiet_pid" 2>/dev/null || true
  python3 benches/attacks_report.py "$out"
  exit 0
fi

if [ "$only" = all ] || [ "$only" = peers ]; then
  for run in $(seq "$peer_runs"); do
    for peer in tokio-tungstenite:peer-tungstenite fastwebsockets:peer-fastwebsockets; do
      name=${peer%%:*}
      start_server "$name" "$peers/${peer##*:}"
      for a in "${echo_attacks[@]}"; do
        set -- $a
        attack "$name" "$run" "ws://127.0.0.1:$port/" "$1" "$2"
      done
      stop_server
    done
  done
fi

python3 benches/attacks_report.py "$out"
