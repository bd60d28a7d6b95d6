#!/usr/bin/env python3
"""What offsets and history cost, and what a resume takes: `c10k serve --mode pubsub --shards 1`
pinned to CPU 0 with history on (the default) and off (--no-history), `c10k bench fanout` on
CPU 1, rounds interleaved (off, on, off, on, ...).

  fan-out   one publisher, --subs subscribers (1,000) of one topic, 64 B at --rate (500/s):
            server CPU per delivered message; with history on, the subscribers follow offsets
            (`sub fanout @`, deliveries `OFFSET fanout PAYLOAD`), so every message is kept and
            tagged: the whole cost
  publish   one publisher at --publish-rate (20,000/s) to 10 subscribers: deliveries/s and CPU
  resume    a client that missed 1,000 messages comes back (`sub r @EPOCH:OFFSET`): time from
            its new connection to the `resumed` answer, after the 1,000 messages (median of 20)
  memory    RSS of the node before and after 100 topics get 1,000 messages of 64 B each (the
            default history keeps them all): bytes per topic
  idle      19,000 connections that subscribe to nothing (`c10k bench hold`): bytes per
            connection, history on and off

Usage: .venv/bin/python benches/history.py (the venv .ci/setup makes has websockets)
       [--rounds 3] [--parts fanout,publish,resume,memory,idle]
Prints each run and a table of medians and per-round ratios on/off.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pinned import C10K, bench, med, start, stop  # noqa: E402

PORT = 9401
SERVE = [C10K, "-q", "serve", "--mode", "pubsub", "--shards", "1", "--addr"]


def server(history, port):
    cmd = SERVE + [f"127.0.0.1:{port}"]
    if not history:
        cmd.append("--no-history")
    return start("c10k " + ("history" if history else "no history"), cmd)


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fanout_runs(a, label, subs, rate):
    """Rounds of (off, on): the bench reports, per setting."""
    runs = {"off": [], "on": []}
    port = PORT
    for r in range(a.rounds):
        for setting in ("off", "on"):
            port += 1
            p = server(setting == "on", port)
            time.sleep(0.2)
            proto = "offsets" if setting == "on" else "topics"
            res = bench(["fanout", "-c", str(subs + 1), "--payload", "64", "--rate", str(rate),
                         "--duration", a.duration, "--warmup", "1s", "--fanout-protocol", proto],
                        p.pid, port)
            stop(p)
            runs[setting].append(res)
            print(f"round {r + 1} {label:8} history {setting:3}  {res.get('messages_per_s', 0):>10.0f} deliveries/s  "
                  f"cpu/delivery {res.get('server_cpu_us_per_msg')} µs  "
                  f"p50 {res.get('latency', {}).get('p50_us')} µs  errors {res.get('errors', res.get('error'))}",
                  flush=True)
    return runs


def ratios(runs, key):
    out = []
    for off, on in zip(runs["off"], runs["on"]):
        if isinstance(off.get(key), (int, float)) and isinstance(on.get(key), (int, float)) and off[key]:
            out.append(on[key] / off[key])
    return out


def report(label, runs):
    for key, what in (("server_cpu_us_per_msg", "server CPU per delivery (µs)"),
                      ("messages_per_s", "deliveries/s")):
        r = ratios(runs, key)
        print(f"{label:8} {what:30} off {med(runs['off'], key)}  on {med(runs['on'], key)}  "
              f"on/off per round {[round(x, 3) for x in r]}  median {round(statistics.median(r), 3) if r else '-'}")


def resume(a):
    from websockets.sync.client import connect

    port = PORT + 100
    p = server(True, port)
    url = f"ws://127.0.0.1:{port}/"
    times = []
    try:
        with connect(url) as pub:
            for _ in range(20):
                with connect(url) as c:
                    c.send("sub r @")
                    at = c.recv().split(" ")[2]  # resumed r EPOCH:OFFSET 0
                for i in range(1000):
                    pub.send(f"pub r {i:064d}")
                pub.send("sync done")
                while pub.recv() != "sync done":
                    pass
                t0 = time.perf_counter()
                with connect(url) as c:
                    c.send(f"sub r @{at}")
                    got = 0
                    while True:
                        m = c.recv()
                        if m.startswith("resumed "):
                            break
                        got += 1
                    times.append(time.perf_counter() - t0)
                    assert got == 1000 and m.endswith(" 1000"), (got, m)
    finally:
        stop(p)
    ms = sorted(t * 1000 for t in times)
    print(f"resume   1,000 missed messages of 64 B: median {statistics.median(ms):.2f} ms "
          f"(min {ms[0]:.2f}, max {ms[-1]:.2f}; new connection, handshake and all, Python client)")


def memory(a):
    from websockets.sync.client import connect

    port = PORT + 200
    p = server(True, port)
    try:
        time.sleep(0.3)
        before = rss(p.pid)
        with connect(f"ws://127.0.0.1:{port}/") as c:
            for t in range(100):
                for i in range(1000):
                    c.send(f"pub topic{t} {i:064d}")
            c.send("sync done")
            while c.recv() != "sync done":
                pass
        time.sleep(0.5)
        after = rss(p.pid)
    finally:
        stop(p)
    print(f"memory   100 topics x 1,000 messages of 64 B kept: RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB, "
          f"{(after - before) / 100 / 1024:.0f} KiB per topic ({(after - before) / 100_000:.0f} bytes per kept message)")


def idle(a):
    port = PORT + 300
    runs = {"off": [], "on": []}
    for r in range(a.rounds):
        for setting in ("off", "on"):
            port += 1
            p = server(setting == "on", port)
            time.sleep(0.2)
            res = bench(["hold", "-c", "19000", "--duration", "3s", "--source", "127.0.0.2,127.0.0.3"], p.pid, port)
            stop(p)
            runs[setting].append(res)
            print(f"round {r + 1} idle     history {setting:3}  {res.get('server_bytes_per_connection')} bytes per connection",
                  flush=True)
    r = ratios(runs, "server_bytes_per_connection")
    print(f"idle     bytes per connection: off {med(runs['off'], 'server_bytes_per_connection')}  "
          f"on {med(runs['on'], 'server_bytes_per_connection')}  on/off {[round(x, 3) for x in r]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--parts", default="fanout,publish,resume,memory,idle")
    ap.add_argument("--subs", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--publish-rate", type=int, default=20000)
    ap.add_argument("--duration", default="5s")
    a = ap.parse_args()
    parts = a.parts.split(",")
    done = []
    if "fanout" in parts:
        done.append(("fan-out", fanout_runs(a, "fan-out", a.subs, a.rate)))
    if "publish" in parts:
        done.append(("publish", fanout_runs(a, "publish", 10, a.publish_rate)))
    for label, runs in done:
        report(label, runs)
    if "resume" in parts:
        resume(a)
    if "memory" in parts:
        memory(a)
    if "idle" in parts:
        idle(a)


if __name__ == "__main__":
    main()
