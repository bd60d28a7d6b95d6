#!/usr/bin/env bash
# permessage-deflate end to end: c10k serve against a Node `ws` echo server with compression, each
# pinned to CPU 0 and driven by `c10k bench --deflate` pinned to CPU 1, runs interleaved, medians
# (1 KiB JSON-like text with and without compression; 10,000 idle connections after one message
# each, with and without). Needs node and tests/interop/node_modules (.ci/setup).
# Usage: benches/deflate.sh [--rounds N] [--duration S] [--hold N] [--servers c10k,node-ws,...] [--out FILE.json]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --bin c10k
exec python3 benches/deflate.py "$@"
