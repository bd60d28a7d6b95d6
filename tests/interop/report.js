// Opens a `c10k check --report` page from a file in headless Chromium and checks what is on the
// screen: the grid's cells, the legend and the counts, and the panel a click on a cell opens.
//
//   node report.js FILE.html ROWS COLUMNS ROW COLUMN TEXT SHOTS
//
// The page must show ROWS x COLUMNS elements `.cell`, each with a `data-verdict`, a legend and a
// summary row with a count per column; clicking the cell at ROW, COLUMN (from 0, in reading
// order) must open a panel whose transcript shows TEXT. Ticking "only the cases where the
// implementations differ" must hide the rows whose cells all agree.
//
// On a failure, a screenshot is written to SHOTS-1.png.
// Prints `ok ...` / `FAIL ...` lines, then `all passed` or `failures`; exits non-zero on failure.
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');
const url = require('url');

let failed = 0;
function check(name, ok, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${!ok && detail !== undefined ? `: ${detail}` : ''}`);
  if (!ok) failed++;
  return ok;
}

async function run(page, file, rows, columns, row, column, text) {
  const res = await page.goto(url.pathToFileURL(path.resolve(file)).href, { timeout: 10000 });
  check('the page loads from a file', res !== null);
  const cells = page.locator('.cell');
  const n = await cells.count();
  check(`${rows * columns} cells`, n === rows * columns, n);
  const verdicts = await cells.evaluateAll((els) => els.map((e) => e.dataset.verdict || ''));
  check('every cell has a verdict', verdicts.every((v) => v.length > 0), verdicts.join(','));
  const shown = await cells.evaluateAll((els) => els.filter((e) => e.offsetWidth > 0).length);
  check('every cell is visible', shown === n, shown);
  check('the legend is shown', await page.locator('#legend').isVisible());
  const legend = await page.locator('#legend').innerText();
  for (const v of ['PASS', 'NON-STRICT', 'FAIL', 'SKIPPED', 'INFO']) {
    check(`the legend names ${v}`, legend.includes(v), legend);
  }
  const counts = page.locator('#summary td');
  const c = await counts.count();
  check(`a summary for each of ${columns} columns`, c === columns, c);
  // The counts of each column add up to the rows.
  for (let i = 0; i < c; i++) {
    const t = await counts.nth(i).innerText();
    const sum = (t.match(/\d+/g) || []).map(Number).reduce((a, b) => a + b, 0);
    check(`column ${i + 1}'s counts add up to ${rows}`, sum === rows, t);
  }
  check('the panel is closed at first', !(await page.locator('#panel').isVisible()));
  const target = cells.nth(row * columns + column);
  await target.click();
  const panel = page.locator('#panel');
  await panel.waitFor({ state: 'visible', timeout: 5000 }).catch(() => {});
  check('a click opens the panel', await panel.isVisible());
  const transcript = await page.locator('#p-transcript').innerText().catch(() => '');
  check(`the transcript shows ${JSON.stringify(text)}`, transcript.includes(text), transcript);
  const verdict = await page.locator('#p-verdict').innerText().catch(() => '');
  const expected = await target.getAttribute('data-verdict');
  check('the panel shows the cell\'s verdict', verdict === expected, `${verdict} vs ${expected}`);
  await page.keyboard.press('Escape');
  await panel.waitFor({ state: 'hidden', timeout: 5000 }).catch(() => {});
  check('Escape closes the panel', !(await panel.isVisible()));
  const same = await page.locator('tr[data-same]').count();
  await page.locator('#only-diff').check();
  const left = await cells.evaluateAll((els) => els.filter((e) => e.offsetWidth > 0).length);
  check('only the differing cases are left', left === n - same * columns, `${left} of ${n}, ${same} rows agree`);
}

(async () => {
  const [file, rows, columns, row, column, text, shots] = process.argv.slice(2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c10k-report-'));
  const browser = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'],
  });
  // Nothing but the file itself may load: the page is self-contained.
  const fetched = [];
  browser.on('request', (r) => { if (!r.url().startsWith('file:')) fetched.push(r.url()); });
  const page = await browser.newPage();
  try {
    await run(page, file, +rows, +columns, +row, +column, text);
    check('nothing is fetched from the network', fetched.length === 0, fetched.join(' '));
  } catch (e) {
    check('the checks ran', false, e && e.stack);
  }
  if (failed) await page.screenshot({ path: `${shots}-1.png`, fullPage: true }).catch(() => {});
  await browser.close();
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(failed ? 'failures' : 'all passed');
  process.exit(failed ? 1 : 0);
})();
