"""Echo latency of established connections while 1,000 handshakes wait for a decision made
later.

A server (`c10k serve --defer-path /pending`, one shard, pinned to CPU 0) leaves upgrades to
/pending waiting for --defer; `c10k bench rate` (CPU 1) measures 100 connections echoing at a fixed
rate, alternately alone and while this script holds 1,000 upgrades to /pending open, all pending
for the whole window. Reports the p99 of each and their ratio, medians over the rounds.

Usage: benches/pending.sh [--rounds 3] [--pending 1000] [--rate 10000] [--duration 5s]
"""

import argparse
import resource
import socket
import statistics
import time

from pinned import C10K, bench, start, stop

UPGRADE = ("GET /pending HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def hold_pending(port, n):
    """n connections whose upgrade request is pending on the server."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(UPGRADE)
        socks.append(s)
    return socks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pending", type=int, default=1000)
    ap.add_argument("--rate", default="10000")
    ap.add_argument("--duration", default="5s")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = {"alone": [], "pending": []}
    port = 9400
    for r in range(a.rounds):
        for case in ("alone", "pending"):
            port += 1
            # Pending long enough to cover the warm-up and the window; the timeout beyond it.
            p = start("c10k", [C10K, "-q", "serve", "--shards", "1", "--addr", f"127.0.0.1:{port}",
                               "--defer-path", "/pending", "--defer", "60s", "--handshake-timeout", "90s"])
            time.sleep(0.2)
            held = hold_pending(port, a.pending) if case == "pending" else []
            time.sleep(0.5)
            res = bench(["rate", "-c", "100", "--rate", a.rate, "--duration", a.duration, "--warmup", "1s"],
                        p.pid, port)
            for s in held:
                s.close()
            stop(p)
            lat = res.get("latency", {})
            rows[case].append(res)
            print(f"round {r + 1} {case:8} p50 {lat.get('p50_us')} µs  p99 {lat.get('p99_us')} µs  "
                  f"msg/s {res.get('messages_per_s')}  errors {res.get('errors', res.get('error'))}  "
                  f"late sends {res.get('late_sends')}", flush=True)
    p99 = {k: [r["latency"]["p99_us"] for r in v if "latency" in r] for k, v in rows.items()}
    pairs = [b / a_ for a_, b in zip(p99["alone"], p99["pending"]) if a_]
    print()
    print("| case | p99 µs per round | median |")
    print("|---|---|---|")
    for k in ("alone", "pending"):
        print(f"| {k} | {', '.join(f'{v:.0f}' for v in p99[k])} | {statistics.median(p99[k]):.0f} |")
    print(f"| pending / alone | {', '.join(f'{x:.2f}' for x in pairs)} | {statistics.median(pairs):.2f} |")


if __name__ == "__main__":
    main()
