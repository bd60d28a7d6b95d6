#!/usr/bin/env bash
# Side-by-side end-to-end benchmark: c10k against the peer servers, each pinned to the same core
# (CPU 0) and driven by `c10k bench` pinned to the other (CPU 1), runs interleaved A B C A B C.
# Usage: benches/compare.sh [--rounds N] [--duration S] [--warmup S] [--quick]
#                           [--cases echo,hold,rate,fanout,connect] [--conns 100,1000] [--fanout-rate N] [--servers A,B]
#                           [--tls [--with-plain]] [--check] [--out FILE.json] [--charts DIR]
# --tls: every server over wss with a test certificate made for the run (openssl), the generator
# verifying it (--tls-ca); --with-plain: over plain ws too, in the same rounds. --check: only check
# that every server answers as the run would reach it.
# Writes one SVG chart per case (every server side by side) beside FILE.json, or under DIR, or
# under target/compare/.
# With C10K_BASE=/path/to/an/older/c10k, server "c10k-base" is that build (--servers c10k,c10k-base).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --bin c10k
# In their own target folder whatever CARGO_TARGET_DIR says: compare.py looks for them there.
CARGO_TARGET_DIR="$PWD/benches/peers/target" cargo build -q --release --manifest-path benches/peers/Cargo.toml
exec python3 benches/compare.py "$@"
