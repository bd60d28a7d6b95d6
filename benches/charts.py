"""Bar charts as plain SVG text (no plotting library): used by compare.py for one chart per case,
and run on its own to draw the tables of docs/benchmarks.md into docs/figures/, so that the
committed charts are made from the committed numbers:

    python3 benches/charts.py docs/benchmarks.md docs/figures

Each figure is a stack of panels; a panel is a set of groups of horizontal bars (one bar per
server), with the range of the rounds as a whisker where the table gives one.
"""

import math
import os
import re
import sys

COLOURS = {"c10k": "#1f5fa8", "fastwebsockets": "#d0641a", "tokio-tungstenite": "#2b8a3e",
           "naive broadcast": "#8a2be2", "naive-broadcast": "#8a2be2", "tungstenite": "#2b8a3e",
           "c10k-base": "#6c8ebf"}
OTHER = ["#777777", "#b5651d", "#4b7f52", "#a05195"]
WIDTH = 760
LEFT = 190  # group and bar labels
RIGHT = 120  # value labels
BAR = 16
GAP = 10


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def colour(name, seen):
    if name in COLOURS:
        return COLOURS[name]
    if name not in seen:
        seen[name] = OTHER[len(seen) % len(OTHER)]
    return seen[name]


def human(v):
    """1234567 -> 1.23 M; 0.0042 -> 0.0042."""
    if v is None:
        return "-"
    a = abs(v)
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if a >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def ticks(top, log, bottom=1.0):
    if log:
        lo = int(math.floor(math.log10(bottom)))
        return [10 ** e for e in range(lo, max(lo + 1, int(math.ceil(math.log10(top)))) + 1)]
    raw = top / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [step * i for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def panel(p, y0, seen):
    """One panel: p = {"title", "unit", "groups": [(label, [(server, value, lo, hi)])], "log"}.
    Returns (svg text, height)."""
    log = p.get("log", False)
    values = [b[3] if b[3] is not None else b[1] for _, bars in p["groups"] for b in bars if b[1] is not None]
    top = max(values) if values else 1
    lows = [b[2] if b[2] is not None else b[1] for _, bars in p["groups"] for b in bars if b[1]]
    ts = ticks(top, log, min(lows) if lows else 1.0)
    top = ts[-1]
    lo_v = ts[0] if log else 0
    plot_w = WIDTH - LEFT - RIGHT

    def x(v):
        if log:
            v = max(v, lo_v)
            return LEFT + plot_w * (math.log10(v) - math.log10(lo_v)) / max(1e-9, math.log10(top) - math.log10(lo_v))
        return LEFT + plot_w * v / top

    out = [f'<text x="10" y="{y0 + 18}" font-size="13" font-weight="600">{esc(p["title"])}</text>']
    y = y0 + 30
    body_top = y
    rows = []
    for label, bars in p["groups"]:
        if label:
            rows.append(f'<text x="10" y="{y + 12}" font-weight="600">{esc(label)}</text>')
            y += 18
        for server, v, lo, hi in bars:
            c = p.get("colour") or colour(server, seen)
            rows.append(f'<text x="{LEFT - 8}" y="{y + BAR - 4}" text-anchor="end">{esc(server)}</text>')
            if v is not None:
                # Bars start at the origin (1 for ratios, so that "slower" points left), else at 0.
                x0 = x(p["origin"]) if "origin" in p else LEFT
                left, w = min(x0, x(v)), max(1.0, abs(x(v) - x0))
                rows.append(f'<rect class="bar" x="{left:.1f}" y="{y}" width="{w:.1f}" height="{BAR}" fill="{c}"/>')
                if lo is not None and hi is not None:
                    ym = y + BAR / 2
                    rows.append(f'<path d="M{x(lo):.1f} {ym} H{x(hi):.1f} M{x(lo):.1f} {ym - 4} V{ym + 4} '
                                f'M{x(hi):.1f} {ym - 4} V{ym + 4}" stroke="#222" fill="none"/>')
                rows.append(f'<text x="{max(x(v), x0, x(hi) if hi is not None else 0) + 6:.1f}" y="{y + BAR - 4}">'
                            f'{esc(p.get("fmt", human)(v))}</text>')
            else:
                rows.append(f'<text x="{LEFT + 4}" y="{y + BAR - 4}" fill="#777">not measured</text>')
            y += BAR + 4
        y += GAP
    grid = []
    for t in ts:
        grid.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{body_top}" y2="{y}" stroke="#e3e3e3"/>')
        grid.append(f'<text x="{x(t):.1f}" y="{y + 14}" text-anchor="middle" fill="#555">{esc(human(t))}</text>')
    axis = (f'<text x="{LEFT + plot_w / 2:.1f}" y="{y + 30}" text-anchor="middle" fill="#333">'
            f'{esc(p["unit"])}{" (log scale)" if log else ""}</text>')
    return "\n".join(out + grid + rows + [axis]), y + 40 - y0


def figure(title, panels, note=None):
    """A whole SVG: a title, panels one below the other, an optional note."""
    seen = {}
    parts, y = [], 34
    for p in panels:
        svg, h = panel(p, y, seen)
        parts.append(svg)
        y += h
    if note:
        for i, line in enumerate(wrap(note, 120)):
            parts.append(f'<text x="10" y="{y + 4 + 15 * i}" fill="#555">{esc(line)}</text>')
        y += 15 * len(wrap(note, 120)) + 6
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y:.0f}" viewBox="0 0 {WIDTH} {y:.0f}" '
            f'font-family="system-ui, sans-serif" font-size="12" role="img" aria-label="{esc(title)}">\n'
            f'<title>{esc(title)}</title>\n<rect width="100%" height="100%" fill="#fff"/>\n'
            f'<text x="10" y="22" font-size="15" font-weight="600">{esc(title)}</text>\n')
    return head + "\n".join(parts) + "\n</svg>\n"


def wrap(text, width):
    words, lines, cur = text.split(), [], ""
    for w in words:
        if len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = (cur + " " + w).strip()
    return lines + ([cur] if cur else [])


# ---- reading docs/benchmarks.md ----

NUM = r"([0-9][0-9,]*\.?[0-9]*)"


def number(cell, scale=None):
    """First number of a cell, with its unit: '**3.96 µs**' -> 3.96; '7.40 M' -> 7.4e6;
    '0.94 ms' with scale 'ms' -> 0.94; '29 µs' with scale 'ms' -> 0.029."""
    c = cell.replace("**", "")
    m = re.search(NUM + r"\s*(M|k|µs|ms|ns|s|x)?", c)
    if not m:
        return None
    v = float(m.group(1).replace(",", ""))
    unit = m.group(2)
    if unit == "M":
        v *= 1e6
    elif unit == "k":
        v *= 1e3
    if scale == "ms" and unit == "µs":
        v /= 1000
    if scale == "ms" and unit == "s":
        v *= 1000
    return v


def rng(cell, scale=None):
    """The range in brackets: '227,511 (223,964-239,710)' -> (223964, 239710)."""
    c = cell.replace("**", "")
    m = re.search(r"\(" + NUM + r"\s*(M|k|µs|ms)?\s*-\s*" + NUM + r"\s*(M|k|µs|ms)?\)", c)
    if not m:
        return None, None
    unit = m.group(4) or m.group(2)
    lo = number(m.group(1) + " " + (unit or ""), scale)
    hi = number(m.group(3) + " " + (unit or ""), scale)
    return lo, hi


def tables(md):
    """Every table of a Markdown text: (header cells, rows of cells)."""
    out, cur = [], None
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cur is None:
                cur = (cells, [])
            elif not all(set(c) <= set("-: ") for c in cells):
                cur[1].append(cells)
        elif cur is not None:
            out.append(cur)
            cur = None
    if cur is not None:
        out.append(cur)
    return out


def find(md, *head):
    for h, rows in tables(md):
        if h[: len(head)] == list(head):
            return rows
    raise SystemExit(f"no table with the header {head} in the document")


def carry(rows):
    """Rows whose first cell is empty continue the case above."""
    case = ""
    for r in rows:
        case = r[0] or case
        yield [case] + r[1:]


def server_of(cell):
    return re.sub(r"\s*\(.*\)$", "", cell.replace("**", "")).strip()


def echo_figure(md):
    rows = list(carry(find(md, "case", "server", "msg/s", "server CPU per msg")))
    groups = {}
    for case, server, msgs, cpu, *_ in rows:
        groups.setdefault(case, []).append((server_of(server), msgs, cpu))
    g_msgs = [(c, [(s, number(m), *rng(m)) for s, m, _ in b]) for c, b in groups.items()]
    g_cpu = [(c, [(s, number(u), *rng(u)) for s, _, u in b]) for c, b in groups.items()]
    return figure("Echo, one message in flight per connection (median of 3 rounds)", [
        {"title": "Server CPU per message (less is better; the figure that ranks the servers)",
         "unit": "µs of server CPU per echoed message", "groups": g_cpu, "fmt": lambda v: f"{v:.2f} µs"},
        {"title": "Messages per second (the generator may be the limit: see the table)",
         "unit": "messages/s", "groups": g_msgs, "fmt": lambda v: f"{v:,.0f}"},
    ], "Whiskers: the range of the 3 rounds where the table gives it. Each server on one core, the "
       "generator on the other (2-core machine, loopback).")


def idle_figure(md):
    rows = find(md, "server", "bytes per idle connection")
    bars = [(server_of(s), number(b), *rng(b)) for s, b, *_ in rows]
    return figure("Memory per idle connection (19,000 held, one shard)", [
        {"title": "Server RSS per idle connection (less is better)", "unit": "bytes", "log": True,
         "groups": [("", bars)], "fmt": lambda v: f"{v:,.0f} B"},
    ])


def rate_figure(md):
    rows = list(carry(find(md, "load", "server", "msg/s", "server CPU per msg", "p50")))
    lat, cpu = {}, {}
    for load, server, _msgs, c, _p50, p99, *_ in rows:
        s = server_of(server)
        lat.setdefault(load, []).append((s, number(p99, "ms"), *rng(p99, "ms")))
        cpu.setdefault(load, []).append((s, number(c), None, None))
    return figure("Open loop, 10,000 connections, 20 B (median of 3 rounds)", [
        {"title": "p99 latency from the intended send time (less is better)", "unit": "milliseconds",
         "log": True, "groups": list(lat.items()), "fmt": lambda v: f"{v:.3g} ms"},
        {"title": "Server CPU per message", "unit": "µs", "groups": list(cpu.items()),
         "fmt": lambda v: f"{v:.2f} µs"},
    ], "Half of the maximum is half of each server's own closed-loop maximum, so the loads differ "
       "by server there.")


def fanout_figure(md):
    rows = list(carry(find(md, "offered", "server", "deliveries/s")))
    dl, cpu = {}, {}
    for offered, server, d, c, *_ in rows:
        s = server_of(server)
        dl.setdefault(offered, []).append((s, number(d), *rng(d)))
        cpu.setdefault(offered, []).append((s, number(c), None, None))
    return figure("Fan-out: one publisher, 10,000 subscribers of one topic, 64 B", [
        {"title": "Deliveries per second (more is better)", "unit": "deliveries/s", "groups": list(dl.items())},
        {"title": "Server CPU per delivery (less is better)", "unit": "µs", "log": True,
         "groups": list(cpu.items()), "fmt": lambda v: f"{v:.3g} µs"},
    ])


PROTO_TABLES = {"header": "Frame header decode", "payload": "Unmask", "operation": "Handshake",
                "frame": "One message through Connection::read"}


def proto_figure(md):
    groups = []
    for head, rows in tables(md):
        if len(head) < 6 or head[1] != "c10k" or "ratio" not in head:
            continue
        peer = head[3]
        col = head.index("ratio")
        bars = []
        for r in rows:
            v = number(r[col]) if len(r) > col else None
            if v:
                bars.append((server_of(r[0].replace("`", "")), v, None, None))
        if bars:
            groups.append((f"{PROTO_TABLES.get(head[0], head[0])}, vs {peer}", bars))
    return figure("Protocol core: how many times faster c10k is than the peer (run A)", [
        {"title": "Peer's median time / c10k's (above 1: c10k is faster)", "unit": "ratio", "log": True,
         "groups": groups, "fmt": lambda v: f"{v:.2f}x", "colour": COLOURS["c10k"], "origin": 1.0},
    ], "Figures under about 10 ns are within the noise of this shared machine (see Noise). UTF-8 "
       "validation, against the standard library, is in its own table.")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    md = open(sys.argv[1], encoding="utf-8").read()
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for name, make in (("proto", proto_figure), ("echo", echo_figure), ("idle", idle_figure),
                       ("rate", rate_figure), ("fanout", fanout_figure)):
        path = os.path.join(out, f"{name}.svg")
        with open(path, "w", encoding="utf-8") as f:
            f.write(make(md))
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
