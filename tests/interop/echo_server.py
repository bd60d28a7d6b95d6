"""A Python `websockets` echo server, for testing c10k's client against it.

Usage: echo_server.py PORT [--compression] [--max-size BYTES] [--tls CERT KEY]. With --tls it
serves wss:// with that certificate chain and key (PEM). --max-size is the largest message it
takes (default: no limit). Prints "listening on PORT" when ready; runs until killed.
"""

import asyncio
import ssl
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


def tls_context():
    if "--tls" not in sys.argv:
        return None
    at = sys.argv.index("--tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[at + 1], sys.argv[at + 2])
    return context


def max_size():
    if "--max-size" not in sys.argv:
        return None
    return int(sys.argv[sys.argv.index("--max-size") + 1])


async def main():
    port = int(sys.argv[1])
    compression = "deflate" if "--compression" in sys.argv else None
    async with serve(echo, "127.0.0.1", port, max_size=max_size(), compression=compression,
                     ssl=tls_context()) as server:
        print(f"listening on {port}", flush=True)
        await server.serve_forever()


asyncio.run(main())
