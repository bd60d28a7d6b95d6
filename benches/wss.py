"""What the benchmark drivers need for wss (compare.py --tls): a test certificate, and a check that a
server answers at the URL the generator will use.

Python's standard library can verify certificates but not make them, so the certificate comes from
the openssl command line (.ci/setup installs it): a test CA and an ECDSA P-256 server certificate it
signs for `localhost` and `127.0.0.1`, the address every server of the drivers listens on.
"""

import base64
import hashlib
import os
import shutil
import socket
import ssl
import struct
import subprocess

OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = c10k benchmark test CA
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
"""


def make_cert(directory):
    """Writes ca.pem, cert.pem and key.pem (PKCS#8) into `directory`; returns their paths as
    {"ca", "cert", "key"}. Valid for 7 days."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("wss: the openssl command line is needed to make the test certificate "
                         "(.ci/setup installs it)")
    path = lambda name: os.path.join(directory, name)  # noqa: E731
    with open(path("openssl.cnf"), "w") as f:
        f.write(OPENSSL_CONFIG)

    def openssl_run(*args):
        out = subprocess.run([openssl, *args], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"wss: openssl {args[0]} failed: {out.stderr.strip()}")

    p256 = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"]
    openssl_run(*p256, path("ca.key"))
    openssl_run("req", "-x509", "-new", "-config", path("openssl.cnf"), "-extensions", "ca",
                "-key", path("ca.key"), "-days", "7", "-out", path("ca.pem"))
    openssl_run(*p256, path("key.pem"))
    openssl_run("req", "-new", "-config", path("openssl.cnf"), "-key", path("key.pem"),
                "-subj", "/CN=localhost", "-out", path("server.csr"))
    openssl_run("x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "7",
                "-extfile", path("openssl.cnf"), "-extensions", "server", "-out", path("cert.pem"))
    return {"ca": path("ca.pem"), "cert": path("cert.pem"), "key": path("key.pem")}


def check(port, tls_ca=None, echo=True, timeout=10):
    """Connects to 127.0.0.1:`port` the way the generator will (over TLS when `tls_ca` is given:
    TLS 1.2 or 1.3, ALPN http/1.1, the certificate checked against that CA and the name
    127.0.0.1), does the WebSocket handshake and, with `echo`, one text echo. Returns what was
    negotiated ("ws", or e.g. "TLSv1.3 http/1.1"); raises with the reason otherwise."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        what = "ws"
        if tls_ca:
            ctx = ssl.create_default_context(cafile=tls_ca)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_alpn_protocols(["http/1.1"])
            sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
            what = f"{sock.version()} {sock.selected_alpn_protocol()}"
            if sock.selected_alpn_protocol() != "http/1.1":
                raise RuntimeError(f"ALPN {sock.selected_alpn_protocol()!r}, expected http/1.1")
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            b = sock.recv(1)
            if not b or len(head) > 8192:
                raise RuntimeError(f"no complete handshake response: {head[:200]!r}")
            head += b
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
                                  .digest()).decode()
        if not head.startswith(b"HTTP/1.1 101") or accept.encode() not in head:
            raise RuntimeError(f"handshake refused: {head.splitlines()[0]!r}")
        if echo:
            payload = b"benchmark check"
            mask = os.urandom(4)
            masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            sock.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)
            got = b""
            while len(got) < 2 + len(payload):
                b = sock.recv(2 + len(payload) - len(got))
                if not b:
                    raise RuntimeError(f"connection closed after {got!r}")
                got += b
            if got != struct.pack("!BB", 0x81, len(payload)) + payload:
                raise RuntimeError(f"echo differs: {got!r}")
        # Close 1000, masked with a zero key; the reply is not awaited.
        sock.sendall(b"\x88\x82\x00\x00\x00\x00\x03\xe8")
        return what
    finally:
        sock.close()
