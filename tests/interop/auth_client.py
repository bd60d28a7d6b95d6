"""Connects to the auth example with the Python `websockets` client and prints what happened:
`open ECHO` (the echo of "hi") or `status N WWW-AUTHENTICATE` for a refused handshake.

Usage: auth_client.py ws://HOST:PORT/ TOKEN   (TOKEN "-" sends no Authorization header)
"""

import sys

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

url, token = sys.argv[1], sys.argv[2]
headers = {} if token == "-" else {"Authorization": f"Bearer {token}"}
try:
    with connect(url, additional_headers=headers, open_timeout=10) as ws:
        ws.send("hi")
        print("open", ws.recv(timeout=10), flush=True)
except InvalidStatus as e:
    r = e.response
    print("status", r.status_code, r.headers.get("WWW-Authenticate", "-"), flush=True)
