// Loads the page that `c10k serve` answers on GET / in headless Chromium, checks that its own
// WebSocket opens, then runs a scripted echo exchange in the page and reads the results back.
// Usage: node browser.js http://HOST:PORT/ [--compression]
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

(async () => {
  const pageUrl = process.argv[2];
  const compression = process.argv.includes('--compression');
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c10k-chromium-'));
  const browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'],
  });
  let failed = 0;
  try {
    const page = await browser.newPage();
    await page.goto(pageUrl, { timeout: 30000 });
    await page.waitForFunction(() => window.c10k && window.c10k.ws.readyState === 1, null, { timeout: 10000 });
    console.log('ok   page socket open');
    const results = await page.evaluate(async () => {
      const out = {};
      const ws = new WebSocket(window.c10k.url);
      ws.binaryType = 'arraybuffer';
      await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
      out.extensions = ws.extensions;
      const queue = [];
      let waiter = null;
      ws.onmessage = (e) => { if (waiter) { const w = waiter; waiter = null; w(e.data); } else queue.push(e.data); };
      const next = () => queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => { waiter = r; });
      ws.send('hello');
      out.text = (await next()) === 'hello';
      const bin = new Uint8Array([0, 1, 2, 255]);
      ws.send(bin);
      const b = new Uint8Array(await next());
      out.binary = b.length === 4 && b.every((v, i) => v === bin[i]);
      const big = new Uint8Array(1 << 20);
      for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 255;
      ws.send(big);
      const g = new Uint8Array(await next());
      out.mib = g.length === big.length && g.every((v, i) => v === big[i]);
      // 1 MiB of JSON-like text: compressed both ways when permessage-deflate is agreed.
      const items = [];
      for (let i = 0; items.length * 40 < (1 << 20) + 40; i++) items.push(`{"id":${i},"user":"user-${i % 97}","event":"update","ok":true}`);
      const json = ('[' + items.join(',')).slice(0, 1 << 20);
      ws.send(json);
      out.jsonMib = (await next()) === json;
      for (let i = 0; i < 100; i++) ws.send('m' + i);
      let inOrder = true;
      for (let i = 0; i < 100; i++) if ((await next()) !== 'm' + i) inOrder = false;
      out.hundred = inOrder;
      const closed = new Promise((r) => { ws.onclose = (e) => r(e.code); });
      ws.close(4000, 'bye');
      out.closeCode = await closed;
      return out;
    });
    const checks = [
      ['text', results.text], ['binary', results.binary], ['1 MiB binary', results.mib],
      ['1 MiB JSON-like text', results.jsonMib],
      ['100 in a row, in order', results.hundred], ['close 4000 echoed', results.closeCode === 4000],
    ];
    if (compression) {
      // Browsers offer permessage-deflate on every connection; the server must have agreed.
      checks.push(['permessage-deflate negotiated', String(results.extensions).includes('permessage-deflate')]);
    }
    for (const [name, ok] of checks) {
      console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}`);
      if (!ok) failed++;
    }
    console.log(`extensions negotiated: ${JSON.stringify(results.extensions)}`);
  } catch (e) {
    console.log(`FAIL ${e}`);
    failed++;
  } finally {
    await browser.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  console.log(failed ? `${failed} failures` : 'all passed');
  process.exit(failed ? 1 : 0);
})();
