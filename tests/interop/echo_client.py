"""A client under test for c10k's client suite (`c10k check --serve`), on Python `websockets`.

Usage: .venv/bin/python tests/interop/echo_client.py ws://HOST:PORT AGENT

Fetches the case ids from ws://HOST:PORT/cases, then for each id connects to
/case/ID?agent=AGENT and sends every text or binary message back as it came, until the
connection ends; then connects to /done?agent=AGENT. A case that fails (a refused handshake, a
protocol error, a reset, a timeout) is logged to stderr and the next one runs; each case gets
30 s at most. Exits 0 once /done was reached, whatever the cases did; 1 if /cases could not be
fetched or /done could not be reached; 2 on bad usage.

The library is `websockets` as pinned in tests/interop/requirements.txt (17.4), asyncio API, in
its default configuration: it offers permessage-deflate (`compression="deflate"`), answers
pings and the close handshake itself, sends its own keepalive pings every 20 s. Two changes:
the message size limit is raised from its default 1 MiB to 16 MiB (`max_size`), and proxies
from the environment are not used (`proxy=None`: the checker is on the loopback, and a proxy
would only take the connection somewhere else; it is no part of the WebSocket protocol).
"""

import asyncio
import re
import sys
import time
from urllib.parse import quote

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

# The library's default limit is 1 MiB; the suite sends messages up to 16 MiB.
MAX_SIZE = 16 << 20
CASE_TIMEOUT = 30.0
# /cases and /done are short exchanges; a checker that hangs on them is not reachable.
CONTROL_TIMEOUT = 30.0
CASE_ID = re.compile(r"^[A-Za-z0-9._-]+$")
# More ids than any suite has: a list longer than this is cut (every loop here is bounded).
MAX_CASES = 100_000


def log(*args):
    print("echo_client.py:", *args, file=sys.stderr, flush=True)


def options():
    return {"max_size": MAX_SIZE, "proxy": None}


async def fetch_cases(base):
    async with connect(f"{base}/cases", **options()) as ws:
        text = await ws.recv()
    if not isinstance(text, str):
        raise ValueError("the case list came as a binary message")
    ids = []
    for case in text.split("\n")[:MAX_CASES]:
        if CASE_ID.match(case):
            ids.append(case)
        elif case:
            log(f"skipping a malformed case id {case!r}")
    return ids


async def echo(url):
    async with connect(url, **options()) as ws:
        try:
            # Ends when the connection closes with 1000 or 1001; another code raises.
            async for message in ws:
                await ws.send(message)
        except ConnectionClosedError as e:
            # The checker closed with another code and the library answered it: the case ended
            # as the checker chose. Anything else (no close frame, a protocol error) is a failure.
            if not e.rcvd_then_sent:
                raise
        return ws.close_code, ws.close_reason


async def run_case(base, case, agent):
    url = f"{base}/case/{case}?agent={quote(agent, safe='')}"
    start = time.monotonic()
    try:
        code, reason = await asyncio.wait_for(echo(url), CASE_TIMEOUT)
        print(f"case {case}: closed {code} {reason!r}", flush=True)
    except asyncio.TimeoutError:
        log(f"case {case}: timed out after {time.monotonic() - start:.1f} s, moving on")
    except Exception as e:  # whatever the case did, the next one runs
        log(f"case {case}: {type(e).__name__}: {e}")


async def done(base, agent, opened):
    async with connect(f"{base}/done?agent={quote(agent, safe='')}", **options()) as ws:
        opened.append(True)
        # The checker sends Close 1000; iterating ends there.
        async for _ in ws:
            pass


async def main(base, agent):
    try:
        cases = await asyncio.wait_for(fetch_cases(base), CONTROL_TIMEOUT)
    except Exception as e:
        log(f"cannot fetch {base}/cases: {type(e).__name__}: {e}")
        return 1
    print(f"{len(cases)} cases", flush=True)
    for case in cases:
        await run_case(base, case, agent)
    opened = []
    try:
        await asyncio.wait_for(done(base, agent, opened), CONTROL_TIMEOUT)
    except Exception as e:
        if not opened:
            log(f"cannot reach {base}/done: {type(e).__name__}: {e}")
            return 1
        # /done answered 101, so it was reached; its close went wrong.
        log(f"/done: {type(e).__name__}: {e}")
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or not sys.argv[1].startswith(("ws://", "wss://")):
        print("usage: echo_client.py ws://HOST:PORT AGENT", file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(main(sys.argv[1].rstrip("/"), sys.argv[2])))
