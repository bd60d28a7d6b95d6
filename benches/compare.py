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
  connect 5,000 connections opened as fast as the generator can: handshakes/s (with --tls, full
          TLS handshakes)

With --tls every server serves wss with a test certificate made for the run (a test CA and an
ECDSA P-256 certificate it signs, see wss.py) and the generator dials wss:// trusting that CA
(--tls-ca); the servers' names get " wss". With --tls --with-plain every server also runs over
plain ws in the same rounds, so that what TLS costs each comes from the same run. --check starts
every server the way the run would and checks that it answers (one echo, the certificate
verified), without measuring.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import wss
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


def column_name(server, tls):
    return f"{server} wss" if tls else server


def transport(column):
    """(server, over TLS) of a column name."""
    return (column[:-4], True) if column.endswith(" wss") else (column, False)


def command(cmd, cert):
    """A server's command line (ending with --addr), with the TLS flags when `cert` is given."""
    if cert is None:
        return list(cmd)
    return cmd[:-1] + ["--tls-cert", cert["cert"], "--tls-key", cert["key"]] + cmd[-1:]


def check_servers(columns, fanout_columns, cert, port):
    """--check: start every server as the run would, check that it answers (echo servers: one
    echo; fan-out servers: the handshake), stop it. Exit status 1 if any did not."""
    todo = ([(c, SERVERS[transport(c)[0]], True) for c in columns]
            + [(c, FANOUT_SERVERS[transport(c)[0]][0], False) for c in fanout_columns])
    failed = 0
    for col, cmd, echo in todo:
        tls = transport(col)[1]
        port += 1
        try:
            p = start(col, command(cmd, cert if tls else None) + [f"127.0.0.1:{port}"])
        except (OSError, RuntimeError) as e:
            print(f"check {col:24} FAILED to start: {e}", flush=True)
            failed += 1
            continue
        try:
            what = wss.check(port, cert["ca"] if tls else None, echo=echo)
            print(f"check {col:24} ok: {what}, {'one echo' if echo else 'handshake (fan-out server)'}", flush=True)
        except (OSError, RuntimeError) as e:
            print(f"check {col:24} FAILED: {e}", flush=True)
            failed += 1
        finally:
            stop(p)
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="5s")
    ap.add_argument("--warmup", default="1s")
    ap.add_argument("--quick", action="store_true", help="fewer cases, one round")
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--cases", default="echo,hold", help="echo,hold,rate,fanout,connect")
    ap.add_argument("--fanout-rate", default="1000", help="fanout: messages/s published")
    ap.add_argument("--conns", default=None, help="echo: connection counts, e.g. 1000 (default 100,1000,10000)")
    ap.add_argument("--tls", action="store_true",
                    help="every server over wss with a test certificate; the generator with --tls-ca")
    ap.add_argument("--with-plain", action="store_true",
                    help="with --tls: every server over plain ws too, in the same rounds")
    ap.add_argument("--check", action="store_true",
                    help="only check that every server answers as the run would reach it, then exit")
    ap.add_argument("--out", default=None)
    ap.add_argument("--charts", default=None,
                    help="where to write one SVG chart per case (default: beside --out, else target/compare)")
    a = ap.parse_args()
    if a.with_plain and not a.tls:
        ap.error("--with-plain goes with --tls")
    servers = a.servers.split(",")
    for s in servers:
        if s not in SERVERS:
            ap.error(f"unknown server {s!r} (known: {', '.join(SERVERS)})")
    kinds = a.cases.split(",")
    transports = [False, True] if a.with_plain else [a.tls]
    columns = [column_name(s, t) for s in servers for t in transports]
    fanout_columns = [column_name(s, t) for s in FANOUT_SERVERS for t in transports]
    cert_dir = tempfile.mkdtemp(prefix="c10k-compare-tls-") if a.tls else None
    try:
        cert = wss.make_cert(cert_dir) if a.tls else None
        if a.check:
            return check_servers(columns, fanout_columns if "fanout" in kinds else [], cert, PORT)
        measure(a, kinds, columns, fanout_columns, cert)
    finally:
        if cert_dir:
            shutil.rmtree(cert_dir, ignore_errors=True)


def measure(a, kinds, columns, fanout_columns, cert):
    """Every case, every round, every server in turn; the tables and charts."""
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
    if "connect" in kinds:
        cases.append(("connect 5000", ["connect", "-c", "5000"], False))
    rounds = 1 if a.quick else a.rounds
    results = {}
    port = PORT
    for r in range(rounds):
        for label, args, fanout in cases:
            for col in (fanout_columns if fanout else columns):
                s, tls = transport(col)
                port += 1
                args_now = list(args)
                if fanout:
                    args_now += ["--fanout-protocol", FANOUT_SERVERS[s][1]]
                if args[0] == "rate" and "--rate" not in args:
                    top = results.get("max 20 B x 10000", {}).get(col, [{}])[-1].get("messages_per_s")
                    if not top:
                        continue
                    args_now += ["--rate", str(int(top / 2))]
                cmd = FANOUT_SERVERS[s][0] if fanout else SERVERS[s]
                p = start(col, command(cmd, cert if tls else None) + [f"127.0.0.1:{port}"])
                time.sleep(0.2)
                res = bench(args_now, p.pid, port, tls_ca=cert["ca"] if tls else None)
                stop(p)
                results.setdefault(label, {}).setdefault(col, []).append(res)
                rate = (f"{res.get('handshakes_per_s', 0):>10.0f} handshakes/s" if args[0] == "connect"
                        else f"{res.get('messages_per_s', 0):>10.0f} msg/s")
                print(f"round {r + 1} {label:24} {col:22} {rate}  "
                      f"cpu/msg {res.get('server_cpu_us_per_msg')}  p50 {res.get('latency', {}).get('p50_us')}  "
                      f"p99 {res.get('latency', {}).get('p99_us')}  "
                      f"bytes/conn {res.get('server_bytes_per_connection')}  errors {res.get('errors', res.get('error'))}",
                      flush=True)
    every = columns + [c for c in fanout_columns if c not in columns]
    print()
    print(table(results, every))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)
    stem = os.path.splitext(a.out)[0] if a.out else os.path.join(ROOT, "target/compare/compare")
    if a.charts:
        stem = os.path.join(a.charts, "compare")
    for path in write_charts(results, every, stem):
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
        elif label.startswith("connect"):
            panels = [{"title": "Handshakes per second", "unit": "handshakes/s",
                       "groups": bars("handshakes_per_s"), "fmt": lambda v: f"{v:,.0f}"}]
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


def ratio_pairs(columns):
    """The ratio rows: c10k against every other server over the same transport, and c10k over wss
    against c10k over ws (what TLS costs it)."""
    pairs = []
    for c in columns:
        server, tls = transport(c)
        if server != "c10k":
            continue
        pairs += [(c, p) for p in columns if p != c and transport(p)[1] == tls]
        if tls and "c10k" in columns:
            pairs.append((c, "c10k"))
    return pairs


def table(results, servers):
    head = ("| case | server | msg/s | server µs/msg | p50 µs | p99 µs | server load | generator load | saturated "
            "| bytes/conn | handshakes/s |")
    rows = [head, "|" + "---|" * 11]
    for label, by_server in results.items():
        for s in servers:
            runs = by_server.get(s, [])
            sat = [r.get("saturated") for r in runs if r.get("saturated")]
            if not runs:
                continue
            rows.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                label, s, fmt(med(runs, "messages_per_s"), ".0f"), fmt(med(runs, "server_cpu_us_per_msg"), ".2f"),
                fmt(med(runs, "latency", "p50_us"), ".0f"), fmt(med(runs, "latency", "p99_us"), ".0f"), fmt(med(runs, "server_cores"), ".2f"),
                fmt(med(runs, "generator_cores"), ".2f"), max(set(sat), key=sat.count) if sat else "-",
                fmt(med(runs, "server_bytes_per_connection"), ".0f"), fmt(med(runs, "handshakes_per_s"), ".0f")))
        for c_name, p in ratio_pairs(servers):
            c, pr = by_server.get(c_name, []), by_server.get(p, [])
            if not pr or not c:
                continue
            def ratio(key, sub=None):
                x, y = med(c, key, sub), med(pr, key, sub)
                return None if not x or not y else x / y
            rows.append("| {} | {} / {} | {} | {} | {} | {} | | | | {} | {} |".format(
                label, c_name, p, fmt(ratio("messages_per_s"), ".2f"), fmt(ratio("server_cpu_us_per_msg"), ".2f"),
                fmt(ratio("latency", "p50_us"), ".2f"), fmt(ratio("latency", "p99_us"), ".2f"),
                fmt(ratio("server_bytes_per_connection"), ".2f"), fmt(ratio("handshakes_per_s"), ".2f")))
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
