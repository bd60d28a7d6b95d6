#!/usr/bin/env python3
"""Publish throughput through one Redis and through a three-master Redis Cluster, on this
machine: two `c10k serve --mode pubsub --shards 1` nodes in streams mode (history on), three
`c10k bench fanout` generators at once, each on a topic of its own (picked so that the three
topics live on three different masters of the cluster), one subscriber on node A and the
publisher on node B per topic. Each setting is run at rising rates per topic; a rate is carried
when every generator delivered it (and with no error). The Redis CPU per publish (INFO
commandstats, the publish script) is printed for each master.

Usage: python3 benches/cluster_spread.py [--rates 5000,10000,15000,20000] [--duration 3s]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodes_history import wait_port  # noqa: E402
from pinned import C10K  # noqa: E402

PORT = 9900


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def topics_on_three_masters():
    """Three topic names whose slots fall in the three thirds that `redis-cli --cluster create`
    gives three masters."""
    want, found, i = [(0, 5460), (5461, 10922), (10923, 16383)], [], 0
    for lo, hi in want:
        while True:
            name = f"t{i}"
            i += 1
            if lo <= crc16(name.encode()) % 16384 <= hi:
                found.append(name)
                break
    return found


def redis(port, tmp, cluster):
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", tmp]
    if cluster:
        args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    wait_port(port)
    return p


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True, text=True).stdout


def setup(cluster, tmp):
    if not cluster:
        return [redis(PORT + 10, tmp, False)], [PORT + 10], f"redis://127.0.0.1:{PORT + 10}"
    ports = [PORT + 10 + i for i in range(3)]
    procs = [redis(p, tmp, True) for p in ports]
    subprocess.run(["redis-cli", "--cluster", "create"] + [f"127.0.0.1:{p}" for p in ports] + ["--cluster-yes"],
                   capture_output=True, check=True)
    for _ in range(100):
        if all("cluster_state:ok" in cli(p, "cluster", "info") for p in ports):
            break
        time.sleep(0.1)
    return procs, ports, "redis-cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)


def script_calls(ports):
    out = []
    for p in ports:
        calls = usec = 0
        for line in cli(p, "info", "commandstats").splitlines():
            if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
                f = dict(kv.split("=") for kv in line.split(":", 1)[1].split(","))
                calls += int(f["calls"])
                usec += int(f["usec"])
        out.append((calls, usec))
    return out


def run(cluster, rates, duration):
    tmp = tempfile.mkdtemp()
    procs, ports, url = setup(cluster, tmp)
    nodes = []
    for n in range(2):
        nodes.append(subprocess.Popen([C10K, "-q", "serve", "--mode", "pubsub", "--shards", "1",
                                       "--addr", f"127.0.0.1:{PORT + n}", "--redis", url]
                                      + ([] if cluster else ["--redis-streams"]),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(PORT + n)
    time.sleep(0.5)
    topics = topics_on_three_masters()
    label = "3-master cluster" if cluster else "one Redis"
    try:
        for rate in rates:
            gens = [subprocess.Popen([C10K, "bench", "fanout", "--url", f"ws://127.0.0.1:{PORT}/",
                                      "--publish-url", f"ws://127.0.0.1:{PORT + 1}/", "-c", "2", "--payload", "64",
                                      "--rate", str(rate), "--duration", duration, "--warmup", "1s",
                                      "--fanout-protocol", "offsets", "--topic", t],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                    for t in topics]
            got, errors = 0.0, 0
            for g in gens:
                out = g.communicate(timeout=120)[0]
                for line in out.splitlines():
                    if line.startswith("messages"):
                        got += float(line.split("(")[1].split()[0])
                    if line.startswith("errors"):
                        errors += int(line.split()[1])
            carried = got >= 0.98 * rate * len(topics) and errors == 0
            print(f"{label:17} {len(topics)} topics x {rate:>6}/s offered: {got:>8.0f} delivered/s, "
                  f"errors {errors}: {'carried' if carried else 'NOT carried'}", flush=True)
        per = script_calls(ports)
        print(f"{label:17} publish scripts per master: " + ", ".join(
            f"{c} calls, {u / c if c else 0:.1f} µs each" for c, u in per))
    finally:
        for p in nodes + procs:
            p.terminate()
        for p in nodes + procs:
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="5000,10000,15000,20000")
    ap.add_argument("--duration", default="3s")
    a = ap.parse_args()
    rates = [int(r) for r in a.rates.split(",")]
    run(False, rates, a.duration)
    run(True, rates, a.duration)


if __name__ == "__main__":
    main()
