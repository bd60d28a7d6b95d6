#!/usr/bin/env python3
"""The report of benches/c1m.sh, from what it gathered: the load generator's JSON report, the
kernel/process samples taken every second, and the server's own counts from /metrics.

With --json FILE, the figures are also written as one JSON object (for docs/benchmarks.md and
the charts)."""
import argparse
import json
import sys

TICK = 100  # clock ticks per second (getconf CLK_TCK)


def rows(path, width):
    out = []
    try:
        for line in open(path):
            parts = line.split()
            if len(parts) >= width:
                try:
                    out.append([float(x) for x in parts[:width]])
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--t0", type=float, required=True)
    ap.add_argument("--t1", type=float, required=True)
    ap.add_argument("--before", required=True)
    ap.add_argument("--server-exit", type=int, required=True)
    ap.add_argument("--connections", type=int, required=True)
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--hold", type=float, required=True)
    ap.add_argument("--json")
    a = ap.parse_args()
    n = a.connections
    try:
        r = json.load(open(a.report))
    except (OSError, ValueError) as e:
        print(f"c1m: no report from the load generator ({e})")
        return 1
    tcp0, pages0, slab0, avail0 = (int(x) for x in a.before.split())
    # time, tcp, pages, slab kB, avail kB, server ticks, server rss kB, load ticks
    k = rows(a.kernel, 8)
    # time, workers seen, requests, open, handshaking, pings, accept errors, rejected
    m = rows(a.metrics, 8)
    hs = r["handshake_latency"]
    lat = r["latency"]
    connect_s = r["connect_s"]
    ramp_end = a.t0 + connect_s
    hold_end = ramp_end + a.hold
    fig = {"connections": n, "connected": r["connected"], "open_at_once": r["peak_concurrent"],
           "survivors": r["survivors"], "final_echoes": r["messages"], "errors": r["errors"],
           "connect_s": connect_s, "handshakes_per_s": r["connected"] / max(connect_s, 1e-9),
           "handshake_p50_ms": hs["p50_us"] / 1000, "handshake_p99_ms": hs["p99_us"] / 1000,
           "handshake_max_ms": hs["max_us"] / 1000, "workers": a.workers}
    print(f"connections         {n} asked, {r['connected']} connected, {r['peak_concurrent']} open at once, "
          f"{r['survivors']} still open after the {a.hold:.0f} s hold")
    print(f"time to connect     {connect_s:.1f} s ({fig['handshakes_per_s']:.0f} connections/s); handshake p50 "
          f"{fig['handshake_p50_ms']:.1f} ms, p99 {fig['handshake_p99_ms']:.1f} ms, max {fig['handshake_max_ms']:.0f} ms")
    # The ramp, second by second, from the kernel's count of TCP sockets (both ends: 2 per connection).
    ramp = [(t - a.t0, (tcp - tcp0) / 2) for t, tcp, *_ in k if t <= ramp_end + 1]
    fig["ramp"] = [[round(t, 1), int(c)] for t, c in ramp]
    if len(ramp) > 2:
        rates = [(c2 - c1) / max(t2 - t1, 1e-9) for (t1, c1), (t2, c2) in zip(ramp, ramp[1:])]
        print(f"ramp                connections/s by second: max {max(rates):.0f}, "
              f"median {sorted(rates)[len(rates) // 2]:.0f} (kernel sockets, {len(rates)} samples)")
    # The server's own count through the hold: only sweeps that heard every worker.
    full = [row for row in m if int(row[1]) == a.workers]
    held = [row for row in full if ramp_end <= row[0] <= hold_end]
    fig["server_counts"] = [[round(row[0] - a.t0, 1), int(row[3])] for row in full]
    if held:
        lo, hi = min(int(x[3]) for x in held), max(int(x[3]) for x in held)
        span = held[-1][0] - held[0][0]
        print(f"server's own count  c10k_connections_open summed over {a.workers} workers: {lo} to {hi} in "
              f"{len(held)} sweeps over {span:.0f} s of the hold")
        fig.update(server_open_min=lo, server_open_max=hi, server_sweeps=len(held), server_span_s=span)
    else:
        print(f"server's own count  no sweep during the hold heard all {a.workers} workers "
              f"({len(full)} full sweeps of {len(m)})")
    print(f"final echoes        {r['messages']} of {r['survivors']} (round trip p50 {lat['p50_us'] / 1000:.1f} ms, "
          f"p99 {lat['p99_us'] / 1000:.1f} ms, max {lat['max_us'] / 1000:.0f} ms)")
    # Memory.
    during = [row for row in k if ramp_end + 2 <= row[0] <= hold_end]
    if during:
        mid = during[len(during) // 2]
        _, tcp, pages, slab, avail, _, srss, _ = mid
        delta = r.get("server_bytes_per_connection") or 0
        conns = max(r["peak_concurrent"], 1)
        fig.update(server_rss_delta_per_conn=delta, server_rss_total_mib=srss / 1024,
                   server_rss_total_per_conn=srss * 1024 / conns,
                   slab_per_conn=(slab - slab0) * 1024 / conns, tcp_sockets=int(tcp),
                   tcp_pages=int(pages), tcp_pages_before=pages0,
                   mem_used_per_conn=(avail0 - avail) * 1024 / conns,
                   mem_used_gib=(avail0 - avail) / 1048576)
        print(f"server RSS          {delta:.0f} bytes per connection (growth over the ramp); "
              f"{srss / 1024:.0f} MiB in all, {srss * 1024 / conns:.0f} bytes per connection with each "
              f"worker's fixed part")
        print(f"kernel              {int(tcp)} TCP sockets in use (both ends); Slab {(slab - slab0) / 1024:.0f} MiB more "
              f"than before: {(slab - slab0) * 1024 / conns:.0f} bytes per connection (both ends); TCP buffer pages "
              f"{int(pages)} (before {pages0})")
        print(f"machine             {(avail0 - avail) / 1048576:.1f} GiB of MemAvailable used: "
              f"{(avail0 - avail) * 1024 / conns:.0f} bytes per connection, everything counted")
    # CPU at rest: the last 30 s of the hold (the ramp's stragglers are done by then).
    rest = [row for row in k if hold_end - 31 <= row[0] <= hold_end]
    if len(rest) >= 2:
        secs = rest[-1][0] - rest[0][0]
        server_cores = (rest[-1][5] - rest[0][5]) / TICK / secs
        load_cores = (rest[-1][7] - rest[0][7]) / TICK / secs
        conns = max(r["survivors"], 1)
        per = server_cores * 1e6 / conns
        fig.update(rest_server_cores=server_cores, rest_load_cores=load_cores, rest_us_per_conn_s=per,
                   rest_window_s=secs)
        print(f"at rest             server {server_cores * 100:.1f}% of a core over the last {secs:.0f} s of the hold: "
              f"{per * 1000:.2f} ns of CPU per idle connection per second (30 s keep-alive pings); "
              f"load side {load_cores * 100:.1f}%")
    pings = r.get("pings_per_s") or []
    if pings:
        fig["pings_per_s"] = pings
        # One whole interval (30 s) at the end of the hold, when every connection is past its
        # first ping: the seconds with no ping count as 0.
        last = int(hold_end) - 1
        window = dict(pings)
        counts = [window.get(s, 0) for s in range(last - 29, last + 1)]
        fig["pings_last_interval"] = counts
        print(f"pings received      by second over the last 30 s of the hold: min {min(counts)}, median "
              f"{sorted(counts)[15]}, max {max(counts)}; {sum(counts)} in all ({sum(counts) / 30:.0f}/s)")
        print(f"                    {' '.join(str(c) for c in counts)}")
        if "rest_server_cores" in fig and sum(counts):
            # The server's CPU over the same 30 s, per ping it sent (and pong it read).
            per_ping = fig["rest_server_cores"] * 30 * 1e6 / sum(counts)
            fig["rest_us_per_ping"] = per_ping
            print(f"                    server CPU per ping (send, pong, timer): {per_ping:.1f} µs")
    # The drain: from the SIGTERM the load side sent.
    started = r.get("drain_started_unix")
    if started is not None:
        during = [row for row in k if row[0] >= started - 0.5]
        peak_rss = max((row[6] for row in during), default=0)
        least_avail = min((row[4] for row in during), default=avail0)
        gone = r.get("going_away") or 0
        fig.update(going_away=gone, drain_s=r.get("drain_s"), server_exit=a.server_exit,
                   drain_peak_server_rss_mib=peak_rss / 1024)
        print(f"drain               {gone} of {r['survivors']} clients got 1001 Going Away; the last closed "
              f"{r.get('drain_s') or 0:.1f} s after the SIGTERM; server exit status {a.server_exit}; server RSS at "
              f"most {peak_rss / 1024:.0f} MiB during the drain (MemAvailable at least {least_avail / 1048576:.1f} GiB)")
    else:
        print("drain               the server was not drained (the run stopped before)")
    print(f"errors              {r['errors']} {r['error_samples'][:3]}")
    if a.json:
        json.dump(fig, open(a.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
