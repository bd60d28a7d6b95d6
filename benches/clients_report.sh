#!/usr/bin/env bash
# One conformance report of six WebSocket clients side by side: Python websockets, Node ws,
# Chromium's WebSocket (headless), tokio-tungstenite, fastwebsockets and c10k's own client, each
# in its library's default configuration. Serves the client suite (`c10k check --serve`, or the
# fuzzer's sequences with FUZZ=N), runs the six clients against it at once, writes the report.
#
#   benches/clients_report.sh [OUT.html]     (default: docs/reports/clients.html)
#
# C10K=PATH another c10k binary. Needs the release build (`cargo build --release -p c10k-tools
# --examples` and `cargo build --release --example echo_client`), the peers (`cargo build
# --release --manifest-path benches/peers/Cargo.toml`), the Python venv and the Node packages
# that `.ci/setup` installs. `c10k check` exits non-zero when a case FAILs, which is expected
# here: the script still writes the report and exits 0 once it is written.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-docs/reports/clients.html}
C10K=${C10K:-target/release/c10k}
ECHO=${ECHO:-target/release/examples/echo_client}
PEERS=benches/peers/target/release
PY=.venv/bin/python
LOGS=$(mktemp -d)

for f in "$C10K" "$ECHO" "$PEERS/peer-client-tungstenite" "$PEERS/peer-client-fastwebsockets" "$PY" \
    tests/interop/node_modules/ws tests/interop/node_modules/playwright-core /usr/bin/chromium; do
  [[ -e $f ]] || { echo "missing: $f (see the comment at the top of $0)" >&2; exit 2; }
done
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$LOGS"' EXIT

PYV=$("$PY" -c 'import websockets; print(websockets.__version__)')
NODEV=$(node -p 'require("./tests/interop/node_modules/ws/package.json").version')
CHROMEV=$(/usr/bin/chromium --version 2>/dev/null | grep -Eo '[0-9]+(\.[0-9]+)+' | head -1)
C10KV=$(git describe --always --dirty 2>/dev/null || echo client)
# Agent names go in URLs (percent-encoded by every client): short, no spaces.
AGENTS="python-websockets-$PYV,node-ws-$NODEV,chromium-$CHROMEV,tokio-tungstenite-0.30,fastwebsockets-0.10,c10k-$C10KV"
IFS=, read -r A_PY A_NODE A_CHROME A_TUNG A_FAST A_C10K <<<"$AGENTS"

mkdir -p "$(dirname "$OUT")"
if [[ -n ${FUZZ:-} ]]; then
  "$C10K" fuzz --serve 127.0.0.1:0 --sequences "$FUZZ" --clients "$AGENTS" --wait 600 --failures-only \
    >"$LOGS/check" 2>&1 &
else
  "$C10K" check --serve 127.0.0.1:0 --clients "$AGENTS" --wait 600 --report "$OUT" --failures-only \
    >"$LOGS/check" 2>&1 &
fi
CHECK=$!
for _ in $(seq 100); do grep -q '^serving' "$LOGS/check" && break; sleep 0.1; done
BASE=$(grep -Eo 'ws://127\.0\.0\.1:[0-9]+' "$LOGS/check" | head -1)
[[ -n $BASE ]] || { cat "$LOGS/check" >&2; exit 1; }

"$PY" tests/interop/echo_client.py "$BASE" "$A_PY" >"$LOGS/py" 2>&1 &
node tests/interop/echo_client.js "$BASE" "$A_NODE" >"$LOGS/node" 2>&1 &
node tests/interop/echo_client_browser.js "$BASE" "$A_CHROME" >"$LOGS/chromium" 2>&1 &
"$PEERS/peer-client-tungstenite" "$BASE" "$A_TUNG" >"$LOGS/tung" 2>&1 &
"$PEERS/peer-client-fastwebsockets" "$BASE" "$A_FAST" >"$LOGS/fast" 2>&1 &
"$ECHO" "$BASE" "$A_C10K" >"$LOGS/c10k" 2>&1 &

set +e
wait "$CHECK"
status=$?
set -e
grep -E '^[^ ]+: [0-9]+ cases:' "$LOGS/check" || tail -20 "$LOGS/check"
if [[ -z ${FUZZ:-} ]]; then
  [[ -s $OUT ]] || { echo "no report written (exit $status)" >&2; exit 1; }
  echo "wrote $OUT ($(wc -c <"$OUT") bytes); c10k check exited $status"
else
  echo "c10k fuzz exited $status"
fi
