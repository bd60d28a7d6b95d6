#!/usr/bin/env bash
# Side-by-side end-to-end benchmark: c10k against the peer servers, each pinned to the same core
# (CPU 0) and driven by `c10k bench` pinned to the other (CPU 1), runs interleaved A B C A B C.
# Usage: benches/compare.sh [--rounds N] [--duration S] [--warmup S] [--quick]
#                           [--cases echo,hold,rate,fanout] [--conns 100,1000] [--fanout-rate N] [--servers A,B]
#                           [--out FILE.json] [--charts DIR]
# Writes one SVG chart per case (every server side by side) beside FILE.json, or under DIR, or
# under target/compare/.
# With C10K_BASE=/path/to/an/older/c10k, server "c10k-base" is that build (--servers c10k,c10k-base).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --bin c10k
cargo build -q --release --manifest-path benches/peers/Cargo.toml
exec python3 benches/compare.py "$@"
