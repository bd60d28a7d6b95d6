// Drives the pages the servers and examples serve in headless Chromium, as a person would use
// them, and checks what is on the screen: the text of the page's log and counters, the pixels of
// its canvas. Never the page's own variables: a page that draws nothing fails.
//
//   node pages.js echo URL SHOTS            type into the form, see each echo in the log
//   node pages.js chat URL1 URL2 SHOTS      two pages (one per node) in one room, each sees the
//                                           other's messages, in order
//   node pages.js life URL SIZE SEED GENS [RESUMES] SHOTS
//                                           the canvas shows the board of the generation the
//                                           page names, for GENS generations (and, with
//                                           RESUMES, while the page reconnects that many times)
//   node pages.js resume URL ROOM N [lost] SHOTS
//                                           the chat page in ROOM, through a relay the test cuts:
//                                           asks the test (a line on stdout, its answer on stdin)
//                                           to cut (`cut?`), then to send N messages (`send?`);
//                                           the page reconnects by itself and shows them once,
//                                           in order, and "N messages recovered"; with `lost`
//                                           (the server keeps fewer than N), none of them and
//                                           "history lost: N may be missing"
//   node pages.js refused URL SHOTS         an https:// page the browser must refuse for its
//                                           certificate: it does not load, nothing opens
//
// `--trust-cert CERT.pem` anywhere after the mode makes the browser accept the certificate with
// that certificate's key (a leaf made by the test) and no other: Chromium's
// --ignore-certificate-errors-spki-list with the SHA-256 of its SubjectPublicKeyInfo, which holds
// only for the profile it is given with (the fresh one made here). Certificates are still checked.
//
// On a failure, a screenshot of each page is written to SHOTS-1.png, SHOTS-2.png, ...
// Prints `ok ...` / `FAIL ...` lines, then `all passed` or `failures`; exits non-zero on failure.
'use strict';
const { chromium } = require('playwright-core');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const DEADLINE_MS = 60000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let failed = 0;
function check(name, ok, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${!ok && detail ? `: ${detail}` : ''}`);
  if (!ok) failed++;
  return ok;
}

/// Polls `probe` until it returns a truthy value, at most `ms`; returns the last value.
async function until(probe, ms = 15000) {
  const end = Date.now() + ms;
  let v;
  while (Date.now() < end) {
    v = await probe();
    if (v) return v;
    await sleep(100);
  }
  return v;
}

/// The lines of an element's rendered text.
async function lines(page, selector) {
  return (await page.locator(selector).innerText()).split('\n').map((l) => l.trim()).filter(Boolean);
}

async function echo(pages, url) {
  const page = await pages.open(url);
  if (!check('status shows open', await until(async () => (await page.locator('#status').innerText()) === 'open'))) return;
  const { protocol, host } = new URL(url);
  if (protocol === 'https:') {
    // The page over https says where its socket went (c10k serve's page does; the example's
    // page, plain only, does not).
    check(`the log says the page connected to wss://${host}/`, (await lines(page, '#log')).includes(`connected to wss://${host}/`),
      JSON.stringify(await lines(page, '#log')));
  }
  const sent = ['hello from the form', 'κόσμε 𝄞', 'third message'];
  for (const [i, text] of sent.entries()) {
    await page.locator('#text').fill(text);
    if (i % 2) await page.locator('#text').press('Enter');
    else await page.getByRole('button', { name: 'Send' }).click();
    const seen = await until(async () => (await lines(page, '#log')).includes(`< ${text}`));
    if (!check(`the echo of ${JSON.stringify(text)} is in the log`, seen, JSON.stringify(await lines(page, '#log')))) return;
  }
  const got = (await lines(page, '#log')).filter((l) => l.startsWith('< ')).map((l) => l.slice(2));
  check('the echoes in the log are the messages sent, in order', JSON.stringify(got) === JSON.stringify(sent), JSON.stringify(got));
  check('the log is visible', await page.locator('#log').isVisible());
}

async function chat(pages, url1, url2) {
  const room = `room${process.pid}`;
  const people = [['alice', await pages.open(url1)], ['bob', await pages.open(url2)]];
  for (const [name, page] of people) {
    await page.locator('#room').fill(room);
    await page.getByRole('button', { name: 'join' }).click();
    await page.locator('#name').fill(name);
    check(`${name}'s status shows the room`, await until(async () => (await page.locator('#status').innerText()) === `in room ${room}`));
  }
  const say = async (page, text) => {
    await page.locator('#text').fill(text);
    await page.getByRole('button', { name: 'Send' }).click();
  };
  // Each node subscribes to the room in Redis when its first member joins; until both have,
  // a message may reach only its own node. Say hello until each page shows the other's.
  const seesHello = async (page, from) => (await lines(page, '#log')).some((l) => l.startsWith(`${from}: hello`));
  const [[a, pa], [b, pb]] = people;
  let n = 0;
  const ready = await until(async () => {
    const [aSeesB, bSeesA] = [await seesHello(pa, b), await seesHello(pb, a)];
    if (aSeesB && bSeesA) return true;
    if (!aSeesB) await say(pb, `hello ${n}`);
    if (!bSeesA) await say(pa, `hello ${n}`);
    n++;
    await sleep(200);
    return false;
  }, 20000);
  if (!check('each page shows the other\'s hello', ready)) return;
  // The conversation: both type, alternately.
  const count = 6;
  for (let i = 1; i <= count; i++) {
    await say(pa, `message ${i}`);
    await say(pb, `message ${i}`);
  }
  const want = Array.from({ length: count }, (_, i) => `message ${i + 1}`);
  for (const [name, page] of people) {
    const saidBy = async (who) => (await lines(page, '#log')).filter((l) => l.startsWith(`${who}: message`)).map((l) => l.slice(who.length + 2));
    await until(async () => (await saidBy(a)).length >= count && (await saidBy(b)).length >= count);
    for (const who of [a, b]) {
      const got = await saidBy(who);
      check(`${name}'s page shows ${who}'s ${count} messages once each, in order`, JSON.stringify(got) === JSON.stringify(want), JSON.stringify(got));
    }
  }
}

// Lines from the test on stdin, one per question asked on stdout.
const answers = [];
let answered = null;
require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
  answers.push(line);
  if (answered) answered();
});
async function ask(question, ms = 30000) {
  console.log(question);
  const end = Date.now() + ms;
  while (!answers.length && Date.now() < end) await new Promise((r) => { answered = r; setTimeout(r, 200); });
  return answers.shift();
}

// The chat page loses its connection (the test cuts it) while another member speaks; it
// reconnects by itself and shows each message it missed once, in order, with their count.
async function resume(pages, url, room, n, lost) {
  const page = await pages.open(url);
  await page.locator('#room').fill(room);
  await page.getByRole('button', { name: 'join' }).click();
  await page.locator('#name').fill('alice');
  if (!check('the status shows the room', await until(async () => (await page.locator('#status').innerText()) === `in room ${room}`))) return;
  await page.locator('#text').fill('before the cut');
  await page.getByRole('button', { name: 'Send' }).click();
  if (!check('the page shows its own message', await until(async () => (await lines(page, '#log')).includes('alice: before the cut')),
    JSON.stringify(await lines(page, '#log')))) return;
  if (!check('the test cut the connection', (await ask('cut?')) === 'cut')) return;
  check('the page says it is reconnecting', await until(async () => /reconnecting/.test(await page.locator('#status').innerText())),
    await page.locator('#status').innerText());
  if (!check('the test sent the messages', (await ask('send?')) === 'sent')) return;
  const said = async () => (await lines(page, '#log')).filter((l) => /^(alice|carol): /.test(l));
  const missed = lost ? [] : Array.from({ length: n }, (_, i) => `carol: missed ${i + 1}`);
  const want = ['alice: before the cut', ...missed];
  const notice = lost ? `history lost: ${n} may be missing` : `${n} messages recovered`;
  await until(async () => (await said()).length >= want.length && (await lines(page, '#log')).some((l) => /recovered|history lost/.test(l)));
  check(`the page shows the ${missed.length} messages recovered, once each, in order`, JSON.stringify(await said()) === JSON.stringify(want),
    JSON.stringify(await lines(page, '#log')));
  const notices = (await lines(page, '#log')).filter((l) => /recovered|lost/.test(l));
  check(`the page says "${notice}", once`, JSON.stringify(notices) === JSON.stringify([notice]), JSON.stringify(notices));
  check('the status shows the room again', (await page.locator('#status').innerText()) === `in room ${room}`,
    await page.locator('#status').innerText());
  // Live messages go on after the seam.
  await page.locator('#text').fill('after the cut');
  await page.getByRole('button', { name: 'Send' }).click();
  await until(async () => (await said()).length > want.length);
  check('a message after the reconnection comes once, last', JSON.stringify(await said()) === JSON.stringify([...want, 'alice: after the cut']),
    JSON.stringify(await lines(page, '#log')));
}

// An https:// page whose certificate the browser must refuse: the navigation fails with a
// certificate error, so the page's script never runs and its socket never opens.
async function refused(browser, url) {
  const page = await browser.newPage();
  let error = null;
  try {
    await page.goto(url, { timeout: 30000 });
  } catch (e) {
    error = String(e).split('\n')[0];
  }
  check(`GET ${url} fails on the certificate`, error && /net::ERR_CERT_/.test(error), error || 'it loaded');
  console.log(`     (${error})`);
  const status = await page.locator('#status').count() ? await page.locator('#status').innerText() : null;
  check('the page is not there, nothing opened', status === null, `status: ${status}`);
}

/// The value of Chromium's --ignore-certificate-errors-spki-list for a PEM certificate: the
/// base64 SHA-256 of its SubjectPublicKeyInfo.
function spkiHash(file) {
  const spki = new crypto.X509Certificate(fs.readFileSync(file)).publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(spki).digest('base64');
}

// The life example's first board (tools/examples/life/main.rs, `initial`): xorshift64 from
// the seed, a cell alive where the number is a multiple of 3, a glider in the corner.
function initial(n, seed) {
  const mask = (1n << 64n) - 1n;
  let s = BigInt(seed) | 1n;
  const cells = [];
  for (let i = 0; i < n * n; i++) {
    s ^= (s << 13n) & mask;
    s ^= s >> 7n;
    s ^= (s << 17n) & mask;
    cells.push(s % 3n === 0n ? 1 : 0);
  }
  for (const [x, y] of [[1, 0], [2, 1], [0, 2], [1, 2], [2, 2]]) cells[y * n + x] = 1;
  return cells;
}

// One generation of Life on an n x n torus.
function step(cells, n) {
  const next = new Array(n * n).fill(0);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    let live = 0;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      if (dx || dy) live += cells[((y + dy + n) % n) * n + ((x + dx + n) % n)];
    }
    next[y * n + x] = live === 3 || (cells[y * n + x] === 1 && live === 2) ? 1 : 0;
  }
  return next;
}

function picture(cells, n) {
  const rows = [];
  for (let y = 0; y < n; y++) rows.push(cells.slice(y * n, y * n + n).map((c) => (c ? '#' : '.')).join(''));
  return rows.join('\n');
}

async function life(pages, url, n, seed, want, minResumes) {
  const page = await pages.open(url);
  const canvas = page.locator('canvas');
  check('the board is visible', await canvas.isVisible());
  const boards = [initial(n, seed)];
  const expected = (g) => {
    while (boards.length <= g) boards.push(step(boards[boards.length - 1], n));
    return boards[g];
  };
  const end = Date.now() + DEADLINE_MS;
  const shown = [];
  let bad = null;
  const resumes = async () => Number(await page.locator('#resumes').innerText());
  while (Date.now() < end && (shown.length < want || (await resumes()) < minResumes) && !bad) {
    // What the screen shows at one moment: the counters' text and the canvas's pixel at the
    // centre of each cell (dark: alive).
    const s = await page.evaluate((n) => {
      const c = document.querySelector('canvas');
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const cells = [];
      for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
        const cx = Math.floor(((x + 0.5) * c.width) / n);
        const cy = Math.floor(((y + 0.5) * c.height) / n);
        const i = (cy * c.width + cx) * 4;
        cells.push(px[i + 3] > 128 && px[i] < 128 ? 1 : 0);
      }
      return { gen: document.getElementById('gen').innerText, live: document.getElementById('live').innerText, cells };
    }, n);
    const g = Number(s.gen);
    if (s.gen !== '-' && Number.isInteger(g) && !shown.some((x) => x.g === g)) {
      const exp = expected(g);
      const count = exp.reduce((a, b) => a + b, 0);
      if (s.cells.join('') !== exp.join('')) {
        bad = `generation ${g}: the canvas shows\n${picture(s.cells, n)}\nthe rules say\n${picture(exp, n)}`;
      } else if (Number(s.live) !== count) {
        bad = `generation ${g}: the page says ${s.live} alive, the board has ${count}`;
      } else {
        shown.push({ g, live: count });
      }
    }
    await sleep(40);
  }
  check(`the canvas showed the right board for ${want} generations`, shown.length >= want && !bad,
    bad || `${shown.length} generations seen: ${JSON.stringify(shown)}`);
  // A blank or frozen canvas must not pass: the boards checked had live cells, and changed.
  check('the boards shown had live cells', shown.length > 0 && shown.every((x) => x.live > 0), JSON.stringify(shown));
  check('the board shown changed', new Set(shown.map((x) => expected(x.g).join(''))).size > 1);
  const gens = shown.map((x) => x.g);
  check('the generation counter advanced', gens.length >= 2 && gens.every((g, i) => i === 0 || g > gens[i - 1]), JSON.stringify(gens));
  if (minResumes) {
    check(`the page reconnected and resumed the board ${minResumes} times or more`, (await resumes()) >= minResumes, `${await resumes()} times`);
  }
  console.log(`generations ${gens.join(', ')}; alive ${shown.map((x) => x.live).join(', ')}`);
}

(async () => {
  const [mode, ...args] = process.argv.slice(2);
  const trustAt = args.indexOf('--trust-cert');
  const trusted = trustAt >= 0 ? args.splice(trustAt, 2)[1] : null;
  const shots = args.pop();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c10k-pages-'));
  const flags = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'];
  if (trusted) flags.push(`--ignore-certificate-errors-spki-list=${spkiHash(trusted)}`);
  const browser = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: flags,
  });
  const opened = [];
  const pages = {
    async open(url) {
      const page = await browser.newPage();
      opened.push(page);
      const res = await page.goto(url, { timeout: 30000 });
      check(`GET ${url} answers 200`, res && res.status() === 200, res && res.status());
      return page;
    },
  };
  try {
    if (mode === 'echo') await echo(pages, args[0]);
    else if (mode === 'chat') await chat(pages, args[0], args[1]);
    else if (mode === 'life') await life(pages, args[0], Number(args[1]), Number(args[2]), Number(args[3]), Number(args[4] || 0));
    else if (mode === 'resume') await resume(pages, args[0], args[1], Number(args[2]), args[3] === 'lost');
    else if (mode === 'refused') await refused(browser, args[0]);
    else check(`known mode ${mode}`, false);
  } catch (e) {
    check('no error', false, String(e));
  }
  if (failed) {
    fs.mkdirSync(path.dirname(shots), { recursive: true });
    for (const [i, page] of opened.entries()) {
      const file = `${shots}-${i + 1}.png`;
      try {
        await page.screenshot({ path: file, fullPage: true });
        console.log(`screenshot: ${file}`);
      } catch (e) {
        console.log(`no screenshot of page ${i + 1}: ${e}`);
      }
    }
  }
  await browser.close();
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(failed ? 'failures' : 'all passed');
  process.exit(failed ? 1 : 0);
})();
