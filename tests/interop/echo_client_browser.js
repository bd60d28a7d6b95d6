// A client under test for c10k's client suite (`c10k check --serve`): headless Chromium's own
// WebSocket, driven from a page.
//
// Usage: node tests/interop/echo_client_browser.js ws://HOST:PORT AGENT
//
// Starts /usr/bin/chromium (or $CHROMIUM) headless through `playwright-core` (the version in
// tests/interop/package.json) with a fresh profile in a temporary folder, removed at the end,
// opens an empty page that this process serves on 127.0.0.1 (see below for why), and runs the
// whole loop in the page's own JavaScript: fetch the case ids from ws://HOST:PORT/cases, then
// for each id `new WebSocket(.../case/ID?agent=AGENT)` with `binaryType = 'arraybuffer'` and
// `ws.send(e.data)` for every message (a string goes back as text, an ArrayBuffer as binary),
// until the connection ends; then /done?agent=AGENT. The page
// prints its progress with console.log (copied to stdout) and its failures with console.error
// (copied to stderr, with the browser's own messages about failed connections). A case that
// fails (a refused handshake, a protocol error, a reset) is logged and the next one runs; after
// 30 s a case is closed with `ws.close()` and the next one runs. Exits 0 once /done was reached,
// whatever the cases did; 1 if /cases could not be fetched, /done could not be reached or the
// browser failed; 2 on bad usage.
//
// The WebSocket is the browser's, as it is in every page: Chromium offers permessage-deflate
// (`client_max_window_bits`) on every connection, answers pings and the close handshake itself,
// and has no message size limit a page can set. Nothing is changed: a page has no say over any
// of it, which is the point of testing it.
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

// Runs in the page. Returns 0 when /done was reached, 1 otherwise.
async function pageLoop({ base, agent, caseTimeoutMs, controlTimeoutMs, maxCases }) {
  const CASE_ID = /^[A-Za-z0-9._-]+$/;
  // Opens `url` and calls onOpen(ws); resolves once the connection is over or `ms` has passed
  // (then the socket is closed with ws.close() and left to finish on its own).
  const session = (url, ms, onOpen) => new Promise((resolve) => {
    const out = { opened: false, code: null, reason: '', clean: false, failed: false, timedOut: false };
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      out.failed = true;
      out.reason = String(e);
      resolve(out);
      return;
    }
    ws.binaryType = 'arraybuffer';
    const timer = setTimeout(() => {
      out.timedOut = true;
      ws.close();
      resolve(out);
    }, ms);
    ws.onopen = () => {
      out.opened = true;
      onOpen(ws);
    };
    // A page learns nothing about why a connection failed; the browser's console says it.
    ws.onerror = () => {
      out.failed = true;
    };
    ws.onclose = (e) => {
      clearTimeout(timer);
      out.code = e.code;
      out.reason = e.reason;
      out.clean = e.wasClean;
      resolve(out);
    };
  });

  let list = null;
  const r = await session(`${base}/cases`, controlTimeoutMs, (ws) => {
    ws.onmessage = (e) => {
      if (list === null && typeof e.data === 'string') list = e.data;
    };
  });
  if (list === null) {
    console.error(`cannot fetch ${base}/cases: ${r.timedOut ? 'timed out' : `closed ${r.code}`}`);
    return 1;
  }
  const cases = [];
  for (const id of list.split('\n').slice(0, maxCases)) {
    if (CASE_ID.test(id)) cases.push(id);
    else if (id) console.error(`skipping a malformed case id ${JSON.stringify(id)}`);
  }
  console.log(`${cases.length} cases`);
  const q = `agent=${encodeURIComponent(agent)}`;
  for (const id of cases) {
    const c = await session(`${base}/case/${id}?${q}`, caseTimeoutMs, (ws) => {
      ws.onmessage = (e) => ws.send(e.data);
    });
    if (c.timedOut) console.error(`case ${id}: no end after ${caseTimeoutMs / 1000} s, closed`);
    else if (!c.opened) console.error(`case ${id}: the connection failed (${c.code})`);
    else if (c.failed || !c.clean) console.error(`case ${id}: ended with an error (${c.code})`);
    else console.log(`case ${id}: closed ${c.code} ${JSON.stringify(c.reason)}`);
  }
  const d = await session(`${base}/done?${q}`, controlTimeoutMs, () => {});
  if (!d.opened) {
    console.error(`cannot reach ${base}/done (${d.code})`);
    return 1;
  }
  console.log('done');
  return 0;
}

(async () => {
  const [base0, agent] = process.argv.slice(2);
  if (process.argv.length !== 4 || !/^wss?:\/\//.test(base0)) {
    process.stderr.write('usage: node echo_client_browser.js ws://HOST:PORT AGENT\n');
    process.exit(2);
  }
  const base = base0.replace(/\/+$/, '');
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c10k-chromium-'));
  let code = 1;
  let browser = null;
  let server = null;
  try {
    // The page comes from a loopback address, because only such a page may open connections
    // to the loopback without asking. From about:blank, a data: URL or a page the driver makes
    // up (page.route), Chromium's Local Network Access checks block them
    // (ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS) until a user allows it, and granting the
    // permission through playwright does not lift that for those origins. So this process serves
    // the page on 127.0.0.1, on a port of its own (the checker sees that as the Origin); the
    // WebSocket is left exactly as the browser makes it.
    server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>c10k echo client</title>');
    });
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const pageUrl = `http://127.0.0.1:${server.address().port}/`;
    // playwright passes --headless for `headless: true` and --user-data-dir for the profile.
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--no-first-run'],
    });
    const page = await browser.newPage();
    page.on('console', (msg) => {
      if (msg.type() === 'error') process.stderr.write(`echo_client_browser.js: ${msg.text()}\n`);
      else console.log(msg.text());
    });
    await page.goto(pageUrl);
    code = await page.evaluate(pageLoop, {
      base, agent, caseTimeoutMs: 30000, controlTimeoutMs: 30000, maxCases: 100000,
    });
  } catch (e) {
    process.stderr.write(`echo_client_browser.js: ${e}\n`);
    code = 1;
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (server) server.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.exit(code);
})();
