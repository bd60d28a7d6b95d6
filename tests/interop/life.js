// Opens the Game of Life page in headless Chromium, waits for several complete generations, and
// checks from the page's own state that each follows from the one before by the rules of Life on
// a torus. Usage: node life.js http://HOST:PORT/ [generations to check]
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

function step(cells, n) {
  const next = new Array(n * n).fill(0);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    let live = 0;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      if (dx || dy) live += cells[((y + dy + n) % n) * n + ((x + dx + n) % n)];
    }
    const alive = cells[y * n + x] === 1;
    next[y * n + x] = live === 3 || (alive && live === 2) ? 1 : 0;
  }
  return next;
}

(async () => {
  const url = process.argv[2];
  const want = Number(process.argv[3] || 8);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c10k-life-'));
  const browser = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'],
  });
  let ok = false;
  try {
    const page = await browser.newPage();
    await page.goto(url, { timeout: 30000 });
    await page.waitForFunction(() => window.life && window.life.subscribed, null, { timeout: 20000 });
    const deadline = Date.now() + 60000;
    let gens = {};
    let pairs = 0;
    let errors = [];
    while (Date.now() < deadline) {
      gens = await page.evaluate(() => window.life.generations());
      const n = await page.evaluate(() => window.life.size);
      const keys = Object.keys(gens).map(Number).sort((a, b) => a - b);
      pairs = 0;
      errors = [];
      for (const g of keys) {
        if (!gens[g + 1]) continue;
        const expected = step(gens[g], n);
        const got = gens[g + 1];
        const bad = expected.findIndex((v, i) => v !== got[i]);
        if (bad >= 0) errors.push(`generation ${g + 1}: cell ${bad % n},${Math.floor(bad / n)} is ${got[bad]}, rules say ${expected[bad]}`);
        else pairs++;
      }
      if (pairs >= want || errors.length) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const live = Object.values(gens).map((c) => c.reduce((a, b) => a + b, 0));
    console.log(`checked ${pairs} generation steps; live cells per generation: ${live.slice(-5).join(', ')}`);
    for (const e of errors.slice(0, 5)) console.log(`FAIL ${e}`);
    ok = pairs >= want && errors.length === 0;
  } catch (e) {
    console.log(`FAIL ${e}`);
  } finally {
    await browser.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(ok ? 'all passed' : 'failures');
  process.exit(ok ? 0 : 1);
})();
