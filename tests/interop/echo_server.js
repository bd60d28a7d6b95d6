// A Node `ws` echo server: the peer of c10k's permessage-deflate benchmarks and of its client's
// interop tests.
// Usage: node echo_server.js PORT [--compression] [--tls CERT KEY]. Prints "listening on PORT"
// when ready; runs until killed. With --compression it accepts permessage-deflate offers and
// compresses every message of 64 bytes or more (c10k serve's threshold; ws's own default is
// 1 KiB), without context takeover unless the client allows it. With --tls it serves wss:// with
// that certificate chain and key (PEM).
'use strict';
const fs = require('fs');
const https = require('https');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
const compression = process.argv.includes('--compression');
const tlsAt = process.argv.indexOf('--tls');
const options = {
  maxPayload: 64 << 20,
  perMessageDeflate: compression ? { threshold: 64 } : false,
};
let wss;
if (tlsAt >= 0) {
  const server = https.createServer({
    cert: fs.readFileSync(process.argv[tlsAt + 1]),
    key: fs.readFileSync(process.argv[tlsAt + 2]),
  });
  wss = new WebSocketServer({ server, ...options });
  server.listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
} else {
  wss = new WebSocketServer({ host: '127.0.0.1', port, ...options });
  wss.on('listening', () => console.log(`listening on ${port}`));
}
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
