// A client under test for c10k's client suite (`c10k check --serve`), on the Node `ws` library.
//
// Usage: node tests/interop/echo_client.js ws://HOST:PORT AGENT
//
// Fetches the case ids from ws://HOST:PORT/cases, then for each id connects to
// /case/ID?agent=AGENT and sends every text or binary message back as it came (same type, same
// payload), until the connection ends; then connects to /done?agent=AGENT. A case that fails (a
// refused handshake, a protocol error, a reset, a timeout) is logged to stderr and the next one
// runs; each case gets 30 s at most, then the socket is dropped. Exits 0 once /done was reached,
// whatever the cases did; 1 if /cases could not be fetched or /done could not be reached; 2 on
// bad usage.
//
// The library is `ws` as pinned in tests/interop/package.json (8.23.0), in its default client
// configuration: it offers permessage-deflate (`perMessageDeflate: true`), answers pings
// (`autoPong`) and the close handshake itself, and waits 30 s for the server's close
// (`closeTimeout`). Nothing is changed: its message size limit (`maxPayload`) is 100 MiB by
// default, already above the suite's 16 MiB, so it is left as it is.
'use strict';
const WebSocket = require('ws');

const CASE_TIMEOUT_MS = 30000;
// /cases and /done are short exchanges; a checker that hangs on them is not reachable.
const CONTROL_TIMEOUT_MS = 30000;
const CASE_ID = /^[A-Za-z0-9._-]+$/;
// More ids than any suite has: a longer list is cut (every loop here is bounded).
const MAX_CASES = 100000;

function log(msg) {
  process.stderr.write(`echo_client.js: ${msg}\n`);
}

// Opens `url` and hands the socket to `onOpen`; resolves once the connection is over, with
// { opened, code, reason, error, timedOut }. Never rejects. After `ms` the socket is dropped.
function session(url, ms, onOpen) {
  return new Promise((resolve) => {
    const out = { opened: false, code: null, reason: '', error: null, timedOut: false };
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      out.error = e;
      resolve(out);
      return;
    }
    const timer = setTimeout(() => {
      out.timedOut = true;
      ws.terminate();
    }, ms);
    ws.on('open', () => {
      out.opened = true;
      onOpen(ws);
    });
    ws.on('error', (e) => {
      if (!out.error) out.error = e;
    });
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      out.code = code;
      out.reason = reason.toString();
      resolve(out);
    });
  });
}

async function fetchCases(base) {
  let list = null;
  const r = await session(`${base}/cases`, CONTROL_TIMEOUT_MS, (ws) => {
    ws.once('message', (data, isBinary) => {
      list = isBinary ? null : data.toString();
    });
  });
  if (list === null) {
    const why = r.error ? r.error.message : r.timedOut ? 'timed out' : `closed ${r.code} without a text message`;
    throw new Error(why);
  }
  const ids = [];
  for (const id of list.split('\n').slice(0, MAX_CASES)) {
    if (CASE_ID.test(id)) ids.push(id);
    else if (id) log(`skipping a malformed case id ${JSON.stringify(id)}`);
  }
  return ids;
}

async function runCase(base, id, agent) {
  const url = `${base}/case/${id}?agent=${encodeURIComponent(agent)}`;
  const r = await session(url, CASE_TIMEOUT_MS, (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  if (r.timedOut) log(`case ${id}: no end after ${CASE_TIMEOUT_MS / 1000} s, dropped`);
  else if (r.error) log(`case ${id}: ${r.error.message}`);
  // ws reports a reset after the handshake as a plain close with 1006, and no error.
  else if (r.code === 1006) log(`case ${id}: the connection ended without a close frame (1006)`);
  else console.log(`case ${id}: closed ${r.code} ${JSON.stringify(r.reason)}`);
}

(async () => {
  const [base0, agent] = process.argv.slice(2);
  if (process.argv.length !== 4 || !/^wss?:\/\//.test(base0)) {
    log('usage: node echo_client.js ws://HOST:PORT AGENT');
    process.exit(2);
  }
  const base = base0.replace(/\/+$/, '');
  let cases;
  try {
    cases = await fetchCases(base);
  } catch (e) {
    log(`cannot fetch ${base}/cases: ${e.message}`);
    process.exit(1);
  }
  console.log(`${cases.length} cases`);
  for (const id of cases) await runCase(base, id, agent);
  // The checker answers /done with 101 and Close 1000.
  const r = await session(`${base}/done?agent=${encodeURIComponent(agent)}`, CONTROL_TIMEOUT_MS, () => {});
  if (!r.opened) {
    log(`cannot reach ${base}/done: ${r.error ? r.error.message : 'timed out'}`);
    process.exit(1);
  }
  console.log('done');
  process.exit(0);
})();
