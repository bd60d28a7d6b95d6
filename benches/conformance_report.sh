#!/usr/bin/env bash
# One conformance report of several WebSocket echo servers side by side: c10k serve, the Rust
# peers tokio-tungstenite and fastwebsockets (benches/peers), Python websockets and Node ws
# (tests/interop/echo_server.*). Starts each on a free loopback port, runs
# `c10k check URL... --report` against all of them one after the other, stops them.
#
#   benches/conformance_report.sh [OUT.html]     (default: docs/reports/servers.html)
#
# CASES=PATTERN runs only those cases (as `c10k check --cases`); C10K=PATH another c10k binary.
#
# Needs the release build (`cargo build --release -p c10k-tools`), the peers
# (`cargo build --release --manifest-path benches/peers/Cargo.toml`), the Python venv and the
# Node packages that `.ci/setup` installs. Every server gets the same message limit, 64 MiB (the
# peers' own), given to the checker with --max-message so that the limit cases run for all.
# `c10k check` exits non-zero when a case FAILs, which is expected here: the script still writes
# the report and exits 0 once it is written.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-docs/reports/servers.html}
LIMIT=$((64 << 20))
C10K=${C10K:-target/release/c10k}
PEERS=benches/peers/target/release
PY=.venv/bin/python
LOGS=$(mktemp -d)

for f in "$C10K" "$PEERS/peer-tungstenite" "$PEERS/peer-fastwebsockets" "$PY" \
    tests/interop/node_modules/ws; do
  [[ -e $f ]] || { echo "missing: $f (see the comment at the top of $0)" >&2; exit 2; }
done

PIDS=()
stop() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$LOGS"
}
trap stop EXIT

# A free loopback port (the Python servers and Node take a port, not port 0).
free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits at most 20 s for LOG to hold a line matching REGEX; prints the first match.
wait_for() {
  local log=$1 regex=$2
  for _ in $(seq 200); do
    if grep -Eo "$regex" "$log" 2>/dev/null | head -1 | grep .; then return 0; fi
    sleep 0.1
  done
  echo "no line matching /$regex/ in $log after 20 s:" >&2
  cat "$log" >&2
  return 1
}

# start NAME COMMAND...: starts a server with its output in $LOGS/NAME.
start() {
  local name=$1; shift
  "$@" >"$LOGS/$name" 2>&1 &
  PIDS+=($!)
}

start c10k "$C10K" serve --addr 127.0.0.1:0 -q --max-message "$LIMIT" --max-frame "$LIMIT"
C10K_URL=$(wait_for "$LOGS/c10k" 'ws://127\.0\.0\.1:[0-9]+/')

start tungstenite "$PEERS/peer-tungstenite" --addr 127.0.0.1:0
TUNG=$(wait_for "$LOGS/tungstenite" '127\.0\.0\.1:[0-9]+')

start fastwebsockets "$PEERS/peer-fastwebsockets" --addr 127.0.0.1:0
FAST=$(wait_for "$LOGS/fastwebsockets" '127\.0\.0\.1:[0-9]+')

PY_PORT=$(free_port)
start python "$PY" tests/interop/echo_server.py "$PY_PORT" --compression --max-size "$LIMIT"
wait_for "$LOGS/python" "listening on $PY_PORT" >/dev/null

NODE_PORT=$(free_port)
start node node tests/interop/echo_server.js "$NODE_PORT" --compression
wait_for "$LOGS/node" "listening on $NODE_PORT" >/dev/null

PYV=$("$PY" -c 'import websockets; print(websockets.__version__)')
NODEV=$(node -p 'require("./tests/interop/node_modules/ws/package.json").version')
NAMES="c10k $(git describe --always --dirty 2>/dev/null || echo serve),tokio-tungstenite 0.30,fastwebsockets 0.10,Python websockets $PYV,Node ws $NODEV"

mkdir -p "$(dirname "$OUT")"
set +e
timeout 900 "$C10K" check "$C10K_URL" "ws://$TUNG/" "ws://$FAST/" \
  "ws://127.0.0.1:$PY_PORT/" "ws://127.0.0.1:$NODE_PORT/" \
  --names "$NAMES" --max-message "$LIMIT" --report "$OUT" --failures-only ${CASES:+--cases "$CASES"} \
  >"$LOGS/check" 2>&1
status=$?
set -e
grep -E '^(===|[0-9]+ cases:|c10k)' "$LOGS/check" || true
if [[ ! -s $OUT ]]; then
  echo "no report written (c10k check exited $status):" >&2
  tail -20 "$LOGS/check" >&2
  exit 1
fi
echo "wrote $OUT ($(wc -c <"$OUT") bytes); c10k check exited $status"
