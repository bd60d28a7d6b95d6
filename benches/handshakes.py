#!/usr/bin/env python3
"""Handshakes per second on one shard, and what each costs the server: `c10k serve --shards 1`
pinned to CPU 0, `c10k bench connect` pinned to CPU 1 opening N connections as fast as it can,
the server's CPU time read from /proc before and after. Over plain ws, over wss with full TLS
handshakes (the default of `c10k bench`), and over wss with resumed ones (--tls-resume).

The generator does its side of every handshake on its one core, and over TLS the client's side
costs about as much as the server's: the rate it reaches is the generator's. What one shard could
take is 1 / (server CPU per handshake), printed beside it.

Usage: benches/handshakes.py [--rounds 3] [--conns 5000]   (after cargo build --release)
"""

import argparse
import os
import socket
import statistics
import tempfile

import pinned
import wss


def cpu_seconds(pid):
    """User + system CPU time of process `pid` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one(kind, conns, pki):
    port = free_port()
    cmd = [pinned.C10K, "-q", "serve", "--shards", "1", "--addr", f"127.0.0.1:{port}"]
    if kind != "ws":
        cmd += ["--tls-cert", pki["cert"], "--tls-key", pki["key"]]
    server = pinned.start(f"c10k {kind}", cmd)
    try:
        args = ["connect", "-c", str(conns)]
        if kind == "wss resumed":
            args.append("--tls-resume")
        before = cpu_seconds(server.pid)
        report = pinned.bench(args, server.pid, port, None if kind == "ws" else pki["ca"])
        used = cpu_seconds(server.pid) - before
    finally:
        pinned.stop(server)
    if "error" in report or report.get("errors"):
        raise SystemExit(f"{kind}: {report.get('error') or report.get('error_samples')}")
    return {
        "rate": report["handshakes_per_s"],
        "cpu_us": used * 1e6 / conns,
        "resumed": report.get("tls_resumed", 0),
        "params": report.get("tls_params") or "-",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=5000)
    a = ap.parse_args()
    kinds = ["ws", "wss full", "wss resumed"]
    runs = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as d:
        pki = wss.make_cert(d)
        for r in range(a.rounds):
            for k in kinds:
                res = one(k, a.conns, pki)
                runs[k].append(res)
                print(f"round {r + 1} {k:12} {res['rate']:8.0f} handshakes/s  server CPU "
                      f"{res['cpu_us']:6.1f} us/handshake  resumed {res['resumed']}/{a.conns}  {res['params']}")
    print()
    print("| handshakes | rate (generator-bound) | server CPU per handshake | one shard could take | resumed |")
    print("|---|---|---|---|---|")
    for k in kinds:
        rate = statistics.median(x["rate"] for x in runs[k])
        cpu = statistics.median(x["cpu_us"] for x in runs[k])
        resumed = statistics.median(x["resumed"] for x in runs[k])
        print(f"| {k} | {rate:,.0f}/s | {cpu:.0f} us | {1e6 / cpu:,.0f}/s | {resumed:.0f} of {a.conns} |")


if __name__ == "__main__":
    main()
