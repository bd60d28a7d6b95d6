// A Node `ws` echo server, the peer of c10k's permessage-deflate benchmarks.
// Usage: node echo_server.js PORT [--compression]. Prints "listening on PORT" when ready; runs
// until killed. With --compression it accepts permessage-deflate offers and compresses every
// message of 64 bytes or more (c10k serve's threshold; ws's own default is 1 KiB), without
// context takeover unless the client allows it.
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
const compression = process.argv.includes('--compression');
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: 64 << 20,
  perMessageDeflate: compression ? { threshold: 64 } : false,
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(`listening on ${port}`));
