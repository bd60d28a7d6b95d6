"""Drives the side-by-side benchmark (see compare.sh): start a server pinned to CPU 0, run
`c10k bench` pinned to CPU 1 with --server-pid, stop the server; interleave servers; report
medians and ratios c10k / peer.

Cases (--cases, comma-separated):
  echo    20 B and 16 KiB echoes at 100, 1,000 and 10,000 connections (closed loop)
  hold    19,000 idle connections: server bytes per connection
  rate    10,000 connections, 20 B: the closed-loop maximum, then open loop at half of it, and
          open loop at 50,000 messages/s
  fanout  one publisher, 10,000 subscribers of one topic, 64 B at --fanout-rate messages/s,
          against the naive broadcast loop (its own server list: c10k --mode pubsub and
          peer-broadcast-tungstenite)
"""

import argparse
import json
import os
import sys
import time

from charts import figure
from pinned import C10K, ROOT, bench, fmt, med, start, stop

PEERS = os.path.join(ROOT, "benches/peers/target/release")
PORT = 9301

SERVERS = {
    "c10k": [C10K, "-q", "serve", "--shards", "1", "--addr"],
    "tokio-tungstenite": [os.path.join(PEERS, "peer-tungstenite"), "--addr"],
    "fastwebsockets": [os.path.join(PEERS, "peer-fastwebsockets"), "--addr"],
}

# A baseline build of c10k to compare with (an older commit's binary), as server "c10k-base":
#   C10K_BASE=/path/to/old/c10k python3 benches/compare.py --servers c10k,c10k-base --cases echo
if os.environ.get("C10K_BASE"):
    SERVERS["c10k-base"] = [os.environ["C10K_BASE"], "-q", "serve", "--shards", "1", "--addr"]

# Fan-out servers: (command, the --fanout-protocol the generator speaks to it).
FANOUT_SERVERS = {
    "c10k": ([C10K, "-q", "serve", "--mode", "pubsub", "--shards", "1", "--addr"], "topics"),
    "naive-broadcast": ([os.path.join(PEERS, "peer-broadcast-tungstenite"), "--addr"], "prefix"),
}








def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="5s")
    ap.add_argument("--warmup", default="1s")
    ap.add_argument("--quick", action="store_true", help="fewer cases, one round")
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--cases", default="echo,hold", help="echo,hold,rate,fanout")
    ap.add_argument("--fanout-rate", default="1000", help="fanout: messages/s published")
    ap.add_argument("--conns", default=None, help="echo: connection counts, e.g. 1000 (default 100,1000,10000)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--charts", default=None,
                    help="where to write one SVG chart per case (default: beside --out, else target/compare)")
    a = ap.parse_args()
    servers = a.servers.split(",")
    kinds = a.cases.split(",")
    run = ["--duration", a.duration, "--warmup", a.warmup]
    cases = []  # (label, args, is a fan-out case)
    conns = [100, 1000] if a.quick else [100, 1000, 10000]
    if a.conns:
        conns = [int(c) for c in a.conns.split(",")]
    if "echo" in kinds:
        for payload in (20, 16384):
            for c in conns:
                cases.append((f"echo {payload} B x {c}", ["echo", "-c", str(c), "--payload", str(payload)] + run, False))
    if "hold" in kinds:
        cases.append(("hold 19000 idle", ["hold", "-c", "19000", "--duration", "3s",
                                          "--source", "127.0.0.2,127.0.0.3"], False))
    if "rate" in kinds:
        # The rate is filled in from the maximum just measured on the same server.
        cases.append(("max 20 B x 10000", ["echo", "-c", "10000"] + run, False))
        cases.append(("rate half max 20 B x 10000", ["rate", "-c", "10000"] + run, False))
        # And at one rate for every server, the same work for each.
        cases.append(("rate 50000/s 20 B x 10000", ["rate", "-c", "10000", "--rate", "50000"] + run, False))
    if "fanout" in kinds:
        cases.append((f"fanout 64 B x 10000 at {a.fanout_rate}/s",
                      ["fanout", "-c", "10001", "--payload", "64", "--rate", a.fanout_rate] + run, True))
    rounds = 1 if a.quick else a.rounds
    results = {}
    port = PORT
    for r in range(rounds):
        for label, args, fanout in cases:
            for s in (FANOUT_SERVERS if fanout else servers):
                port += 1
                args_now = list(args)
                if fanout:
                    args_now += ["--fanout-protocol", FANOUT_SERVERS[s][1]]
                if args[0] == "rate" and "--rate" not in args:
                    top = results.get("max 20 B x 10000", {}).get(s, [{}])[-1].get("messages_per_s")
                    if not top:
                        continue
                    args_now += ["--rate", str(int(top / 2))]
                p = start(s, (FANOUT_SERVERS[s][0] if fanout else SERVERS[s]) + [f"127.0.0.1:{port}"])
                time.sleep(0.2)
                res = bench(args_now, p.pid, port)
                stop(p)
                results.setdefault(label, {}).setdefault(s, []).append(res)
                print(f"round {r + 1} {label:24} {s:18} "
                      f"{res.get('messages_per_s', 0):>10.0f} msg/s  "
                      f"cpu/msg {res.get('server_cpu_us_per_msg')}  p50 {res.get('latency', {}).get('p50_us')}  "
                      f"p99 {res.get('latency', {}).get('p99_us')}  "
                      f"bytes/conn {res.get('server_bytes_per_connection')}  errors {res.get('errors', res.get('error'))}",
                      flush=True)
    print()
    print(table(results, servers + [s for s in FANOUT_SERVERS if s not in servers]))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)
    stem = os.path.splitext(a.out)[0] if a.out else os.path.join(ROOT, "target/compare/compare")
    if a.charts:
        stem = os.path.join(a.charts, "compare")
    for path in write_charts(results, servers + [s for s in FANOUT_SERVERS if s not in servers], stem):
        print(path)


def pick(run, key, sub=None):
    v = run.get(key)
    return v.get(sub) if sub and isinstance(v, dict) else v


def write_charts(results, servers, stem):
    """One SVG per case, every server side by side: messages/s and server CPU per message
    (medians, with the range of the rounds), and bytes per connection for hold."""
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    paths = []
    for label, by_server in results.items():
        def bars(key, sub=None):
            out = []
            for s in servers:
                vals = [v for v in (pick(r, key, sub) for r in by_server.get(s, [])) if isinstance(v, (int, float))]
                if s in by_server:
                    out.append((s, med(by_server[s], key, sub), min(vals) if len(vals) > 1 else None,
                                max(vals) if len(vals) > 1 else None))
            return [("", out)]
        if label.startswith("hold"):
            panels = [{"title": "Server memory per idle connection (less is better)", "unit": "bytes",
                       "groups": bars("server_bytes_per_connection"), "fmt": lambda v: f"{v:,.0f} B"}]
        else:
            panels = [
                {"title": "Server CPU per message (less is better)", "unit": "µs",
                 "groups": bars("server_cpu_us_per_msg"), "fmt": lambda v: f"{v:.2f} µs"},
                {"title": "Messages per second", "unit": "messages/s", "groups": bars("messages_per_s"),
                 "fmt": lambda v: f"{v:,.0f}"},
                {"title": "p99 latency", "unit": "µs", "groups": bars("latency", "p99_us"),
                 "fmt": lambda v: f"{v:,.0f} µs"},
            ]
        rounds = max(len(v) for v in by_server.values())
        slug = "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")
        path = f"{stem}-{slug}.svg"
        with open(path, "w", encoding="utf-8") as f:
            f.write(figure(f"{label} (median of {rounds} round{'s' if rounds != 1 else ''}; whiskers: range)",
                           panels))
        paths.append(path)
    return paths






def table(results, servers):
    peers = [s for s in servers if s != "c10k"]
    head = "| case | server | msg/s | server µs/msg | p50 µs | p99 µs | server load | generator load | saturated | bytes/conn |"
    rows = [head, "|" + "---|" * 10]
    for label, by_server in results.items():
        for s in servers:
            runs = by_server.get(s, [])
            sat = [r.get("saturated") for r in runs if r.get("saturated")]
            if not runs:
                continue
            rows.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                label, s, fmt(med(runs, "messages_per_s"), ".0f"), fmt(med(runs, "server_cpu_us_per_msg"), ".2f"),
                fmt(med(runs, "latency", "p50_us"), ".0f"), fmt(med(runs, "latency", "p99_us"), ".0f"), fmt(med(runs, "server_cores"), ".2f"),
                fmt(med(runs, "generator_cores"), ".2f"), max(set(sat), key=sat.count) if sat else "-",
                fmt(med(runs, "server_bytes_per_connection"), ".0f")))
        c = by_server.get("c10k", [])
        for p in peers:
            pr = by_server.get(p, [])
            if not pr or not c:
                continue
            def ratio(key, sub=None):
                x, y = med(c, key, sub), med(pr, key, sub)
                return None if not x or not y else x / y
            rows.append("| {} | c10k / {} | {} | {} | {} | {} | | | | {} |".format(
                label, p, fmt(ratio("messages_per_s"), ".2f"), fmt(ratio("server_cpu_us_per_msg"), ".2f"),
                fmt(ratio("latency", "p50_us"), ".2f"), fmt(ratio("latency", "p99_us"), ".2f"), fmt(ratio("server_bytes_per_connection"), ".2f")))
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
