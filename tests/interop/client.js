// Drives a c10k server with the Node `ws` client; exits non-zero on any failure.
// Usage: node client.js ws://HOST:PORT/ [--compression]
//        node client.js wss://HOST:PORT/ --ca CA.pem [--compression]
// Over wss:// the server's certificate is verified against the CA in CA.pem (and its name
// against HOST); first the script checks that the certificate is refused by a client trusting
// only Node's own CAs, and by one trusting the test CA but expecting another name.
'use strict';
const WebSocket = require('ws');
const crypto = require('crypto');
const fs = require('fs');

const url = process.argv[2];
const compression = process.argv.includes('--compression');
const caAt = process.argv.indexOf('--ca');
const ca = caAt >= 0 ? fs.readFileSync(process.argv[caAt + 1]) : undefined;
const failures = [];

function check(name, cond, detail = '') {
  if (cond) console.log(`ok   ${name}`);
  else { failures.push(name); console.log(`FAIL ${name} ${detail}`); }
}

function open(tls = { ca }) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: compression, maxPayload: 0, ...tls });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function next(ws) {
  return new Promise((resolve, reject) => {
    const closed = (code) => reject(new Error(`closed ${code}`));
    ws.once('message', (data, isBinary) => { ws.off('close', closed); resolve({ data, isBinary }); });
    ws.once('close', closed);
  });
}

async function roundTrip(ws, payload, opts = {}) {
  const p = next(ws);
  ws.send(payload, opts);
  return p;
}

// About n bytes of JSON-like text: what compression is for.
function jsonText(n) {
  const items = [];
  for (let i = 0; items.length * 40 < n + 40; i++) items.push(`{"id":${i},"user":"user-${i % 97}","event":"update","ok":true}`);
  return ('[' + items.join(',')).slice(0, n);
}

async function echo() {
  const ws = await open();
  if (compression) {
    check('permessage-deflate negotiated', ws.extensions.includes('permessage-deflate'), `extensions: ${JSON.stringify(ws.extensions)}`);
  }
  let r = await roundTrip(ws, 'hello');
  check('text', !r.isBinary && r.data.toString() === 'hello');
  r = await roundTrip(ws, 'κόσμε 𝄞');
  check('text utf-8', r.data.toString() === 'κόσμε 𝄞');
  const bin = Buffer.from([0, 1, 2, 255]);
  r = await roundTrip(ws, bin);
  check('binary', r.isBinary && r.data.equals(bin));
  r = await roundTrip(ws, Buffer.alloc(0));
  check('empty binary', r.isBinary && r.data.length === 0);
  for (const [size, name] of [[16 << 10, '16 KiB'], [1 << 20, '1 MiB']]) {
    const big = crypto.randomBytes(size);
    r = await roundTrip(ws, big);
    check(`${name} binary`, r.isBinary && r.data.equals(big));
    const text = 'x'.repeat(size);
    r = await roundTrip(ws, text);
    check(`${name} text`, !r.isBinary && r.data.toString() === text);
  }
  // ws compresses messages of 1 KiB and more (its default threshold).
  for (const size of [1 << 10, 64 << 10, 1 << 20]) {
    const text = jsonText(size);
    r = await roundTrip(ws, text);
    check(`JSON-like text of ${size} bytes`, !r.isBinary && r.data.toString() === text);
  }
  // Fragmented: fin false on all but the last fragment.
  const p = next(ws);
  ws.send('frag', { fin: false });
  ws.send('ment', { fin: false });
  ws.send('ed', { fin: true });
  r = await p;
  check('fragmented text', r.data.toString() === 'fragmented');
  const pong = new Promise((resolve) => ws.once('pong', resolve));
  ws.ping(Buffer.from('ping-data'));
  const pd = await Promise.race([pong, new Promise((res) => setTimeout(() => res(null), 5000))]);
  check('ping answered with same payload', pd !== null && pd.toString() === 'ping-data');
  const got = [];
  const all = new Promise((resolve) => {
    const on = (d) => { got.push(d.toString()); if (got.length === 100) { ws.off('message', on); resolve(); } };
    ws.on('message', on);
  });
  for (let i = 0; i < 100; i++) ws.send(`m${i}`);
  await all;
  check('100 in a row, in order', got.every((m, i) => m === `m${i}`));
  ws.close();
}

async function closeCodes() {
  for (const [code, reason] of [[1000, ''], [1001, 'going'], [4000, 'app'], [3999, 'x'.repeat(123)]]) {
    const ws = await open();
    const closed = new Promise((resolve) => ws.once('close', (c, r) => resolve([c, r.toString()])));
    ws.close(code, reason);
    const [c, r] = await closed;
    // The server echoes the code (RFC 6455 section 5.5.1); echoing the reason is optional.
    check(`close ${code} echoed`, c === code, `got ${c} ${JSON.stringify(r)}`);
  }
}

// A connection that must fail the certificate check, with a verification error.
async function refused(name, tls) {
  try {
    (await open(tls)).terminate();
    check(name, false, 'it connected');
  } catch (e) {
    const verification = /CERT|VERIFY|SIGNATURE|ALTNAME|ISSUER/.test(String(e.code));
    check(name, verification, `${e.code}: ${e.message}`);
    console.log(`     (${e.code})`);
  }
}

async function concurrent(n = 200) {
  const one = async (i) => {
    const ws = await open();
    for (let j = 0; j < 5; j++) {
      const msg = `client ${i} message ${j}`;
      const r = await roundTrip(ws, msg);
      if (r.data.toString() !== msg) return false;
    }
    ws.close();
    return true;
  };
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => one(i)));
  const ok = results.filter((r) => r.status === 'fulfilled' && r.value === true).length;
  check(`${n} concurrent connections`, ok === n, `${ok}/${n}`);
}

(async () => {
  const timer = setTimeout(() => { console.log('FAIL timeout'); process.exit(1); }, 120000);
  try {
    if (ca) {
      await refused('a client without the test CA refuses the certificate', {});
      await refused('a client with the test CA refuses it for another name', { ca, servername: 'other.test' });
    }
    await echo();
    await closeCodes();
    await concurrent();
  } catch (e) {
    failures.push(String(e));
    console.log(`FAIL ${e}`);
  }
  clearTimeout(timer);
  if (failures.length) { console.log(`${failures.length} failures`); process.exit(1); }
  console.log('all passed');
  process.exit(0);
})();
