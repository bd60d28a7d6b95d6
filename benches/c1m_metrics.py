#!/usr/bin/env python3
"""The server's own count, for benches/c1m.sh: every EVERY seconds, GET /metrics from a
`c10k serve --processes P --metrics` until each of the P workers has answered (each request is a
new connection, which SO_REUSEPORT hands to some worker), then prints one line:

    UNIX_TIME WORKERS_SEEN REQUESTS SUM(c10k_connections_open) SUM(c10k_handshaking) \
        SUM(c10k_pings_sent_total) SUM(c10k_accept_errors_total) SUM(c10k_handshakes_rejected_total)

A worker's figures are those of its latest answer within the sweep. Bounded: at most
40 requests per worker per sweep, at most SWEEPS sweeps, and it stops after LIMIT seconds.
"""
import argparse
import http.client
import re
import sys
import time

LINE = re.compile(r'^(c10k_[a-z_]+)\{([^}]*)\} (\d+)$')
WORKER = re.compile(r'worker="(\d+)"')
SUMMED = ("c10k_connections_open", "c10k_handshaking", "c10k_pings_sent_total",
          "c10k_accept_errors_total", "c10k_handshakes_rejected_total")


def scrape(port):
    """One GET /metrics: {worker: {metric: value summed over the worker's shards}}, or None."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
        c.close()
    except (OSError, http.client.HTTPException):
        return None
    out = {}
    for line in body.splitlines():
        m = LINE.match(line)
        if not m or m.group(1) not in SUMMED:
            continue
        w = WORKER.search(m.group(2))
        if w is None:
            continue
        d = out.setdefault(int(w.group(1)), dict.fromkeys(SUMMED, 0))
        d[m.group(1)] += int(m.group(3))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--every", type=float, default=10)
    ap.add_argument("--sweeps", type=int, default=1000)
    ap.add_argument("--limit", type=float, default=1800)
    a = ap.parse_args()
    end = time.time() + a.limit
    for _ in range(a.sweeps):
        if time.time() > end:
            break
        start = time.time()
        seen, requests = {}, 0
        while len(seen) < a.workers and requests < 40 * a.workers and time.time() < end:
            requests += 1
            got = scrape(a.port)
            if got:
                seen.update(got)
        sums = [sum(w[k] for w in seen.values()) for k in SUMMED]
        print(f"{start:.3f} {len(seen)} {requests} " + " ".join(map(str, sums)), flush=True)
        time.sleep(max(0.0, a.every - (time.time() - start)))


if __name__ == "__main__":
    sys.exit(main())
