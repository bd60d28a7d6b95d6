// Loads `c10k serve --dashboard`'s page in headless Chromium while `c10k bench` loads the server,
// and checks that the page holds one socket per worker, that its numbers move, and that they
// match /metrics within the sampling period: a counter on the page lies between the same counter
// scraped before the page's sample and scraped a sampling period after it.
// Usage: node dashboard.js http://HOST:PORT/ --workers N [--screenshot FILE.png]
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

const base = process.argv[2];
const arg = (name) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : undefined; };
const workers = Number(arg('--workers') || 1);
const screenshot = arg('--screenshot');
const COUNTERS = ['messages_in', 'messages_out', 'bytes_in', 'bytes_out', 'handshakes', 'pings_sent'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One scrape: the worker that answered (the kernel picks one under a supervisor) and each
// metric summed over its shards.
async function scrape() {
  const text = await (await fetch(base + 'metrics')).text();
  const out = { worker: 0 };
  for (const line of text.split('\n')) {
    const m = line.match(/^c10k_(\w+?)(?:_total)?\{([^}]*)\} (\d+)$/);
    if (!m || m[2].includes('le=') || m[2].includes('reason=') || m[2].includes('code=')) continue;
    const w = m[2].match(/worker="(\d+)"/);
    if (w) out.worker = Number(w[1]);
    out[m[1]] = (out[m[1]] || 0) + Number(m[3]);
  }
  return out;
}

// A scrape of worker `w`: scrapes until that worker answers (bounded).
async function scrapeWorker(w) {
  for (let i = 0; i < 60; i++) {
    const m = await scrape();
    if (m.worker === w) return m;
  }
  throw new Error(`/metrics never reached worker ${w}`);
}

(async () => {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c10k-chromium-'));
  const browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'],
  });
  let failed = 0;
  const check = (name, ok, detail = '') => {
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok ? '' : ' ' + detail}`);
    if (!ok) failed++;
  };
  try {
    const page = await browser.newPage();
    const fetched = [];
    page.on('request', (r) => fetched.push(r.url()));
    page.on('pageerror', (e) => check('no script error', false, e.message));
    await page.goto(base + 'dashboard', { timeout: 30000 });
    await page.waitForFunction((n) => {
      const d = window.dashboard;
      return d.expected === n && [...d.workers.values()].filter((w) => w.socket).length === n;
    }, workers, { timeout: 30000 });
    check(`one socket per worker (${workers})`, true);
    await page.waitForFunction(() => window.dashboard.totals.rate && window.dashboard.totals.rate.messages_in > 0,
      null, { timeout: 20000 });
    const cards = () => page.evaluate(() => Object.fromEntries(
      [...document.querySelectorAll('#totals [data-k]')].map((e) => [e.dataset.k, e.dataset.v])));
    const seqOf = (w) => page.evaluate((w) => window.dashboard.workers.get(w).lastSeq, w);
    const waitSamples = async (w, n) => {
      const from = await seqOf(w);
      await page.waitForFunction(([w, s]) => window.dashboard.workers.get(w).lastSeq >= s, [w, from + n], { timeout: 20000 });
    };

    // The numbers move: two readings of the page's cards, samples apart.
    const a = await cards();
    await waitSamples(0, 2);
    const b = await cards();
    check('messages in (total) moves on the page', Number(b.messages_in) > Number(a.messages_in), `${a.messages_in} -> ${b.messages_in}`);
    check('messages/s in shown', Number(b.rate_messages_in) > 0, b.rate_messages_in);
    check('messages/s out shown', Number(b.rate_messages_out) > 0, b.rate_messages_out);
    check('connections shown', Number(b.connections_open) > 0, b.connections_open);

    // Against /metrics: m0 before the page's sample, m1 a sampling period (and a publication
    // period of the other shards) after it.
    const m0 = await scrape();
    const w = m0.worker;
    await waitSamples(w, 2);
    const p = await page.evaluate((w) => window.dashboard.workers.get(w).totals, w);
    await waitSamples(w, 2);
    const m1 = await scrapeWorker(w);
    for (const k of COUNTERS) {
      const ok = m0[k] <= p[k] && p[k] <= m1[k];
      check(`worker ${w} ${k}: /metrics before <= page <= /metrics after`, ok, `${m0[k]} <= ${p[k]} <= ${m1[k]}`);
    }
    check(`worker ${w} connections_open as /metrics says`, p.connections_open === m0.connections_open || p.connections_open === m1.connections_open,
      `${m0.connections_open}, page ${p.connections_open}, ${m1.connections_open}`);
    check(`worker ${w} queued bytes shown`, Number.isInteger(p.queued_bytes) && m1.queued_bytes !== undefined, String(p.queued_bytes));

    // Pings reach the page's idle sockets and come back: round trips are shown.
    await page.waitForFunction(() => window.dashboard.totals.pongs > 0, null, { timeout: 20000 });
    const t = await page.evaluate(() => window.dashboard.totals);
    check('pongs counted', t.pongs > 0 && t.pings_sent >= t.pongs, `${t.pings_sent} pings, ${t.pongs} pongs`);
    check('pong RTT median shown', t.rtt[0] !== null, JSON.stringify(t.rtt));
    const rows = await page.evaluate(() => document.querySelectorAll('#shards tbody tr').length);
    check('a row per shard and per worker', rows >= 2 * workers, String(rows));
    const outside = fetched.filter((u) => !u.startsWith(base.replace(/\/$/, '')) && !u.startsWith('data:'));
    check('nothing fetched from elsewhere', outside.length === 0, outside.join(' '));
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
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
