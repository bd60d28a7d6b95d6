"""Drives a c10k server with the Python `websockets` client; exits non-zero on any failure.

Usage: client.py ws://HOST:PORT/ [--compression]
       client.py wss://HOST:PORT/ --ca CA.pem [--compression]

Over wss:// the server's certificate is verified against the CA in CA.pem (and its name against
HOST); first the script checks that the certificate is refused by a client trusting only the
system's CAs, and by one trusting the test CA but expecting another name.
"""

import asyncio
import os
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

failures = []
COMPRESSION = "--compression" in sys.argv
CA = sys.argv[sys.argv.index("--ca") + 1] if "--ca" in sys.argv else None


def check(name, cond, detail=""):
    if not cond:
        failures.append(f"{name}: {detail}")
        print(f"FAIL {name} {detail}", flush=True)
    else:
        print(f"ok   {name}", flush=True)


def json_text(n):
    """About n bytes of JSON-like text: what compression is for."""
    items = [f'{{"id":{i},"user":"user-{i % 97}","event":"update","ok":true}}' for i in range(n // 40 + 1)]
    return ("[" + ",".join(items))[:n]


async def echo(url, kwargs):
    async with connect(url, max_size=None, **kwargs) as ws:
        if COMPRESSION:
            names = [e.name for e in ws.protocol.extensions]
            check("permessage-deflate negotiated", "permessage-deflate" in names, f"extensions: {names}")
        await ws.send("hello")
        check("text", await ws.recv() == "hello")
        await ws.send("κόσμε 𝄞")
        check("text utf-8", await ws.recv() == "κόσμε 𝄞")
        await ws.send(b"\x00\x01\x02\xff")
        check("binary", await ws.recv() == b"\x00\x01\x02\xff")
        await ws.send(b"")
        check("empty binary", await ws.recv() == b"")
        for size, name in ((16 << 10, "16 KiB"), (1 << 20, "1 MiB")):
            big = os.urandom(size)
            await ws.send(big)
            check(f"{name} binary", await ws.recv() == big)
            big_text = "x" * size
            await ws.send(big_text)
            check(f"{name} text", await ws.recv() == big_text)
        for size in (1 << 10, 64 << 10, 1 << 20):
            text = json_text(size)
            await ws.send(text)
            check(f"JSON-like text of {size} bytes", await ws.recv() == text)
        # A fragmented message: an iterable of fragments.
        await ws.send(["frag", "ment", "ed"])
        check("fragmented text", await ws.recv() == "fragmented")
        await ws.send([b"ab", b"cd"])
        check("fragmented binary", await ws.recv() == b"abcd")
        pong = await ws.ping(b"ping-data")
        latency = await asyncio.wait_for(pong, 5)
        check("ping answered", latency >= 0)
        for i in range(100):
            await ws.send(f"m{i}")
        got = [await ws.recv() for _ in range(100)]
        check("100 in a row, in order", got == [f"m{i}" for i in range(100)])


async def close_codes(url, kwargs):
    for code, reason in [(1000, ""), (1001, "going"), (4000, "app"), (3999, "x" * 123)]:
        ws = await connect(url, **kwargs)
        await ws.close(code, reason)
        # The server echoes the code (RFC 6455 section 5.5.1); echoing the reason is optional.
        check(f"close {code} echoed", ws.close_code == code, f"got {ws.close_code} {ws.close_reason!r}")


async def one(url, i, kwargs):
    async with connect(url, **kwargs) as ws:
        for j in range(5):
            msg = f"client {i} message {j}"
            await ws.send(msg)
            if await ws.recv() != msg:
                return False
    return True


async def concurrent(url, kwargs, n=200):
    results = await asyncio.gather(*(one(url, i, kwargs) for i in range(n)), return_exceptions=True)
    ok = sum(1 for r in results if r is True)
    check(f"{n} concurrent connections", ok == n, f"{ok}/{n} ok; first error: "
          f"{next((r for r in results if r is not True), None)!r}")


async def refused(name, url, **kwargs):
    """A connection that must fail the certificate check."""
    try:
        async with connect(url, compression=None, **kwargs):
            check(name, False, "it connected")
    except ssl.SSLCertVerificationError as e:
        check(name, True)
        print(f"     ({e.verify_message})", flush=True)


async def main():
    url = sys.argv[1]
    # The default of the websockets client is to offer permessage-deflate.
    kwargs = {} if COMPRESSION else {"compression": None}
    if CA:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
        context.load_verify_locations(CA)
        await refused("a client without the test CA refuses the certificate", url,
                      ssl=ssl.create_default_context())
        await refused("a client with the test CA refuses it for another name", url,
                      ssl=context, server_hostname="other.test")
        kwargs["ssl"] = context
    await echo(url, kwargs)
    await close_codes(url, kwargs)
    await concurrent(url, kwargs)
    if failures:
        print(f"{len(failures)} failures", flush=True)
        sys.exit(1)
    print("all passed", flush=True)


try:
    asyncio.run(asyncio.wait_for(main(), 120))
except (ConnectionClosed, OSError, asyncio.TimeoutError) as e:
    print(f"FAIL connection: {e!r}", flush=True)
    sys.exit(1)
