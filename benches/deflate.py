"""permessage-deflate end to end (see deflate.sh): c10k serve against a Node `ws` echo server
with compression (tests/interop/echo_server.js), each pinned to CPU 0 and driven by `c10k bench`
pinned to CPU 1 with --server-pid; cases and servers interleaved, round after round; medians.

Cases: 1 KiB JSON-like text echoed over 100 connections with --deflate and without; 10,000 idle
connections after one message each (hold --first-echo), with --deflate and without."""

import argparse
import json
import os
import sys
import time

from pinned import C10K, ROOT, bench, fmt, med, start, stop
PORT = 9501

SERVERS = {
    "c10k": lambda port: [C10K, "-q", "serve", "--shards", "1", "--addr", f"127.0.0.1:{port}"],
    # c10k at zlib's fastest level (the default is 6).
    "c10k-level1": lambda port: [C10K, "-q", "serve", "--shards", "1", "--deflate-level", "1", "--addr",
                                 f"127.0.0.1:{port}"],
    "node-ws": lambda port: ["node", os.path.join(ROOT, "tests/interop/echo_server.js"), str(port),
                             "--compression"],
    "python-websockets": lambda port: [os.path.join(ROOT, ".venv/bin/python"),
                                       os.path.join(ROOT, "tests/interop/echo_server.py"), str(port),
                                       "--compression"],
}












def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--warmup", default="2s")
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--hold", type=int, default=10000, help="idle connections of the hold cases (0: none)")
    ap.add_argument("--servers", default="c10k,node-ws", help=f"some of {','.join(SERVERS)}")
    ap.add_argument("--cases", default="echo,hold", help="echo, hold, or both")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    servers = a.servers.split(",")
    echo = ["echo", "-c", str(a.connections), "--payload", "1024", "--payload-kind", "json",
            "--duration", a.duration, "--warmup", a.warmup]
    hold = ["hold", "-c", str(a.hold), "--first-echo", "--payload", "1024", "--payload-kind", "json",
            "--duration", "3s"]
    cases = []
    if "echo" in a.cases:
        cases += [("echo 1 KiB JSON, deflate", echo + ["--deflate"]), ("echo 1 KiB JSON, plain", echo)]
    if a.hold and "hold" in a.cases:
        cases += [(f"hold {a.hold}, deflate", hold + ["--deflate"]), (f"hold {a.hold}, plain", hold)]
    results = {}
    port = PORT
    for r in range(a.rounds):
        for label, args in cases:
            for s in servers:
                port += 1
                p = start(s, SERVERS[s](port))
                time.sleep(0.3)
                res = bench(args, p.pid, port)
                stop(p)
                results.setdefault(label, {}).setdefault(s, []).append(res)
                print(f"round {r + 1} {label:26} {s:18} "
                      f"{res.get('messages_per_s', 0):>9.0f} msg/s  cpu/msg {res.get('server_cpu_us_per_msg')}  "
                      f"p99 {res.get('latency', {}).get('p99_us')}  server {res.get('server_cores')}  "
                      f"generator {res.get('generator_cores')}  bytes/conn {res.get('server_bytes_per_connection')}  "
                      f"errors {res.get('errors', res.get('error'))}", flush=True)
    print()
    head = ("| case | server | msg/s | server µs/msg | p50 µs | p99 µs | server load | generator load | "
            "saturated | bytes/conn | errors |")
    rows = [head, "|" + "---|" * 11]
    for label, by_server in results.items():
        for s in servers:
            runs = by_server.get(s, [])
            sat = [r.get("saturated") for r in runs if r.get("saturated")]
            rows.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                label, s, fmt(med(runs, "messages_per_s"), ".0f"), fmt(med(runs, "server_cpu_us_per_msg"), ".2f"),
                fmt(med(runs, "latency", "p50_us"), ".0f"), fmt(med(runs, "latency", "p99_us"), ".0f"),
                fmt(med(runs, "server_cores"), ".2f"), fmt(med(runs, "generator_cores"), ".2f"),
                max(set(sat), key=sat.count) if sat else "-", fmt(med(runs, "server_bytes_per_connection"), ".0f"),
                sum(r.get("errors", 1) for r in runs)))
    print("\n".join(rows))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
