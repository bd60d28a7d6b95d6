#!/usr/bin/env bash
# Echo p99 of established connections with and without 1,000 handshakes pending (see pending.py).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --bin c10k
exec python3 benches/pending.py "$@"
