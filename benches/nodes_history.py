#!/usr/bin/env python3
"""History across nodes: what Redis Streams cost against plain Redis pub/sub. redis-server and
three `c10k serve --mode pubsub --shards 1` nodes on this machine, joined through Redis either
by pub/sub without history (`--no-history`) or by Redis Streams with history
(`--redis-streams`); `c10k bench fanout` puts --subs subscribers on node A and publishes on node
B at --rate (every message crosses Redis). Rounds alternate the two. Each run prints deliveries/s,
publish-to-delivery latency, and the CPU time of Redis and the three nodes together per delivered
message (from /proc, over the whole run, warm-up included).

Usage: python3 benches/nodes_history.py [--rounds 3] [--subs 300] [--rate 1000]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pinned import C10K  # noqa: E402

PORT = 9600


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port):
    import socket

    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def run(a, streams, port):
    tmp = tempfile.mkdtemp()
    redis_port = port + 10
    procs = [subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)]
    wait_port(redis_port)
    bridge = ["--redis", f"redis://127.0.0.1:{redis_port}"]
    bridge += ["--redis-streams"] if streams else ["--no-history"]
    for n in range(3):
        procs.append(subprocess.Popen([C10K, "-q", "serve", "--mode", "pubsub", "--shards", "1",
                                       "--addr", f"127.0.0.1:{port + n}"] + bridge,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(port + n)
    time.sleep(0.3)
    before = sum(cpu_s(p.pid) for p in procs)
    proto = "offsets" if streams else "topics"
    out = subprocess.run([C10K, "bench", "fanout", "--url", f"ws://127.0.0.1:{port}/",
                          "--publish-url", f"ws://127.0.0.1:{port + 1}/", "-c", str(a.subs + 1),
                          "--payload", "64", "--rate", str(a.rate), "--duration", a.duration,
                          "--warmup", "1s", "--fanout-protocol", proto, "--json"],
                         capture_output=True, text=True, timeout=300)
    after = sum(cpu_s(p.pid) for p in procs)
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
    line = next((x for x in out.stdout.splitlines() if x.startswith("{")), None)
    if line is None:
        return {"error": (out.stdout + out.stderr)[-400:]}
    d = json.loads(line)
    # Deliveries over the whole run (warm-up, window): what was published, to every subscriber
    # (the generator checks that each got every message).
    deliveries = a.rate * (1 + float(a.duration.rstrip("s"))) * a.subs if not d.get("errors") else 0
    d["cpu_us_per_delivery"] = (after - before) * 1e6 / deliveries if deliveries else None
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--subs", type=int, default=300)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", default="5s")
    a = ap.parse_args()
    runs = {"pubsub": [], "streams": []}
    port = PORT
    for r in range(a.rounds):
        for mode in ("pubsub", "streams"):
            port += 20
            d = run(a, mode == "streams", port)
            runs[mode].append(d)
            lat = d.get("latency", {})
            print(f"round {r + 1} {mode:8} {d.get('messages_per_s', 0):>9.0f} deliveries/s  "
                  f"p50 {lat.get('p50_us')} µs  p99 {lat.get('p99_us')} µs  "
                  f"cpu/delivery {d.get('cpu_us_per_delivery') and round(d['cpu_us_per_delivery'], 3)} µs  "
                  f"errors {d.get('errors', d.get('error'))}", flush=True)
    for key in ("cpu_us_per_delivery", "messages_per_s"):
        pairs = [s[key] / p[key] for p, s in zip(runs["pubsub"], runs["streams"])
                 if isinstance(p.get(key), (int, float)) and isinstance(s.get(key), (int, float)) and p[key]]
        meds = {m: statistics.median([x[key] for x in runs[m] if isinstance(x.get(key), (int, float))] or [0])
                for m in runs}
        print(f"{key:22} pub/sub {meds['pubsub']:.3f}  streams {meds['streams']:.3f}  "
              f"streams/pubsub per round {[round(x, 3) for x in pairs]}  "
              f"median {round(statistics.median(pairs), 3) if pairs else '-'}")


if __name__ == "__main__":
    main()
