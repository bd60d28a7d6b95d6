"""What the end-to-end benchmark drivers (compare.py, deflate.py) share: a server pinned to CPU 0,
`c10k bench` pinned to CPU 1 reading the server's CPU time (--server-pid), and medians."""

import json
import os
import signal
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
C10K = os.path.join(TARGET, "release/c10k")


def start(name, cmd):
    """Starts `cmd` on CPU 0 and waits for the line that says it listens."""
    p = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if "listening" not in line:
        p.kill()
        raise RuntimeError(f"{name} did not start: {line!r}")
    return p


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def bench(args, pid, port, tls_ca=None):
    """One `c10k bench ARGS --json` on CPU 1 against the server on `port`; its report. Over
    wss:// when `tls_ca` is the PEM file of the CA that the server's certificate is checked against."""
    scheme = "wss" if tls_ca else "ws"
    cmd = ["taskset", "-c", "1", C10K, "bench"] + args + [
        "--url", f"{scheme}://127.0.0.1:{port}/", "--server-pid", str(pid), "--json"]
    if tls_ca:
        cmd += ["--tls-ca", tls_ca]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    line = next((l for l in out.stdout.splitlines() if l.startswith("{")), None)
    if line is None:
        return {"error": (out.stdout + out.stderr)[-500:]}
    return json.loads(line)


def med(runs, key, sub=None):
    vals = []
    for r in runs:
        v = r.get(key)
        if sub and isinstance(v, dict):
            v = v.get(sub)
        if isinstance(v, (int, float)):
            vals.append(v)
    return statistics.median(vals) if vals else None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)
