#!/usr/bin/env python3
"""Line charts of benches/c1m.sh runs, as plain SVG (no plotting library), from the figures each
run wrote (c1m_report.py --json; kept in docs/figures/c1m-*.json):

    python3 benches/c1m_chart.py docs/figures docs/figures/c1m-250k.json docs/figures/c1m-500k.json \
        docs/figures/c1m-1m.json

draws docs/figures/c1m-ramp.svg (connections open against time, one line per run) and
docs/figures/c1m-pings.svg (keep-alive pings the clients got, second by second, over the last
30 s of each run's hold).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from charts import esc, human, ticks  # noqa: E402 (beside this file)

COLOURS = ["#6c8ebf", "#2b8a3e", "#1f5fa8", "#d0641a", "#a05195"]
W, H = 760, 360
L, R, T, B = 80, 150, 40, 50


def chart(title, xlabel, ylabel, series, note):
    """series: [(name, [(x, y), ...])]"""
    xmax = max(x for _, pts in series for x, _ in pts) or 1
    ymax = max(y for _, pts in series for _, y in pts) or 1
    xt, yt = ticks(xmax, False), ticks(ymax, False)
    xmax, ymax = xt[-1], yt[-1]
    pw, ph = W - L - R, H - T - B

    def px(x):
        return L + pw * x / xmax

    def py(y):
        return T + ph * (1 - y / ymax)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H + 20}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H + 20}" fill="white"/>',
           f'<text x="{L}" y="22" font-size="15" font-weight="bold">{esc(title)}</text>']
    for v in xt:
        out.append(f'<line x1="{px(v):.1f}" y1="{T}" x2="{px(v):.1f}" y2="{T + ph}" stroke="#eee"/>')
        out.append(f'<text x="{px(v):.1f}" y="{T + ph + 16}" text-anchor="middle">{human(v)}</text>')
    for v in yt:
        out.append(f'<line x1="{L}" y1="{py(v):.1f}" x2="{L + pw}" y2="{py(v):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{L - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{human(v)}</text>')
    out.append(f'<text x="{L + pw / 2}" y="{T + ph + 36}" text-anchor="middle">{esc(xlabel)}</text>')
    out.append(f'<text x="16" y="{T + ph / 2}" transform="rotate(-90 16 {T + ph / 2})" '
               f'text-anchor="middle">{esc(ylabel)}</text>')
    for i, (name, pts) in enumerate(series):
        c = COLOURS[i % len(COLOURS)]
        d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{d}"/>')
        out.append(f'<rect x="{L + pw + 14}" y="{T + 6 + i * 20}" width="12" height="12" fill="{c}"/>')
        out.append(f'<text x="{L + pw + 32}" y="{T + 16 + i * 20}">{esc(name)}</text>')
    out.append(f'<text x="{L}" y="{H + 12}" fill="#555">{esc(note)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    out_dir, files = sys.argv[1], sys.argv[2:]
    runs = [json.load(open(f)) for f in files]
    runs.sort(key=lambda r: r["connections"])
    ramp = []
    for r in runs:
        pts = [(0.0, 0)] + [(t, c) for t, c in r["ramp"] if t >= 0]
        ramp.append((f"{human(r['connections'])}: {r['connect_s']:.0f} s", pts))
    with open(os.path.join(out_dir, "c1m-ramp.svg"), "w") as f:
        f.write(chart("Connections open during the ramp (benches/c1m.sh)", "seconds", "connections",
                      ramp, "Both sides on one 2-core machine: server and load generator share the CPU."))
    pings = [(human(r["connections"]), list(enumerate(r["pings_last_interval"])))
             for r in runs if r.get("pings_last_interval")]
    with open(os.path.join(out_dir, "c1m-pings.svg"), "w") as f:
        f.write(chart("Keep-alive pings received per second, last 30 s of the hold", "second",
                      "pings per second", pings,
                      "Default 30 s interval: N/30 a second when spread evenly."))


if __name__ == "__main__":
    main()
