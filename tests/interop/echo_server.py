"""A Python `websockets` echo server, for testing c10k's client against it.

Usage: echo_server.py PORT. Prints "listening on PORT" when ready; runs until killed.
"""

import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main():
    port = int(sys.argv[1])
    compression = "deflate" if "--compression" in sys.argv else None
    async with serve(echo, "127.0.0.1", port, max_size=None, compression=compression) as server:
        print(f"listening on {port}", flush=True)
        await server.serve_forever()


asyncio.run(main())
