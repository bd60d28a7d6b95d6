#!/usr/bin/env python3
"""The table of docs/security.md from the JSON reports of benches/attacks.sh.

Usage: benches/attacks_report.py DIR [--json FILE]

Per server and attack, over its runs: the median of the server's memory growth (peak less
before) and of what stayed after it (after less before), the largest peak, the median of the
bystanders' p99 before and during the attack and of their ratio, the bystanders' errors (all
runs), the answers the attackers got (every run's, merged), and the verdicts.
"""
import glob
import json
import os
import statistics
import sys

MIB = 1 << 20


def load(directory):
    rows = {}
    for path in sorted(glob.glob(os.path.join(directory, "*-run*.json"))):
        name = os.path.basename(path)[: -len(".json")]
        server_attack, run = name.rsplit("-run", 1)
        try:
            report = json.load(open(path))
        except (OSError, ValueError):
            continue
        for a in report.get("attacks", []):
            server = server_attack[: -len(a["attack"]) - 1]
            rows.setdefault((server, a["attack"]), []).append((int(run), a))
    return rows


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_mib(v):
    return "-" if v is None else f"{v / MIB:.1f}"


def summary(runs):
    attacks = [a for _, a in sorted(runs)]
    mem = [a["memory"] for a in attacks if a.get("memory")]
    bys = [a["bystanders"] for a in attacks if a.get("bystanders")]
    answers = {}
    for a in attacks:
        for k, n in (a.get("answers") or {}).items():
            answers[k] = answers.get(k, 0) + n
    verdicts = [a["verdict"] for a in attacks]
    return {
        "runs": len(attacks),
        "scale": attacks[0].get("scale"),
        "growth": med([m["growth"] for m in mem]),
        "peak": max((m["peak"] for m in mem), default=None),
        "stayed": med([m["after"] - m["before"] for m in mem if m.get("after") is not None]),
        "p99_base_us": med([b["base"]["p99_us"] for b in bys if b.get("base")]),
        "p99_attack_us": med([b["attack"]["p99_us"] for b in bys if b.get("attack")]),
        "ratio": med([b.get("ratio") for b in bys]),
        "errors": sum(b.get("errors", 0) for b in bys),
        "answers": answers,
        "first": (attacks[-1].get("first_answer") or {}).get("detail"),
        "verdicts": verdicts,
        "skipped": attacks[-1].get("skipped"),
    }


def main():
    directory = sys.argv[1]
    rows = {k: summary(v) for k, v in load(directory).items()}
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            json.dump({f"{s} {a}": r for (s, a), r in sorted(rows.items())}, f, indent=1, sort_keys=True)
    print("| server | attack | scale | runs | growth MiB (median) | peak MiB (max) | stayed after MiB | bystanders p99 before / during (ms) | ratio | errors | what the attackers got | verdicts |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (server, attack), r in sorted(rows.items()):
        if r["skipped"]:
            print(f"| {server} | {attack} | {r['scale']} | {r['runs']} | | | | | | | skipped: {r['skipped']} | |")
            continue
        base, during = r["p99_base_us"], r["p99_attack_us"]
        p99 = "-" if base is None else f"{base / 1000:.1f} / {during / 1000:.1f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        answers = ", ".join(f"{k} x{n}" for k, n in sorted(r["answers"].items(), key=lambda kv: -kv[1]))
        verdicts = ", ".join(f"{v} x{r['verdicts'].count(v)}" for v in sorted(set(r["verdicts"])))
        print(
            f"| {server} | {attack} | {r['scale']} | {r['runs']} | {fmt_mib(r['growth'])} | {fmt_mib(r['peak'])} "
            f"| {fmt_mib(r['stayed'])} | {p99} | {ratio} | {r['errors']} | {answers} | {verdicts} |"
        )


if __name__ == "__main__":
    main()
