// Browser tests of the Parley web client (www/) against the real servers:
// one parley-broker and two parley-gateway processes on free loopback
// ports, driven through Debian's headless Chromium by playwright-core.
//
//   node --test --test-reporter=tap chat.test.mjs
//
// Environment: PARLEY_BUILDDIR (where parley-broker and parley-gateway are;
// default: the current directory if they are there, else PARLEY_SRCDIR),
// PARLEY_SRCDIR (the source tree, for www/; default ../.. from this file),
// CHROMIUM (default /usr/bin/chromium).  Screenshots and server logs go to
// $PARLEY_BUILDDIR/tests/browser/artifacts/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SRCDIR = path.resolve(process.env.PARLEY_SRCDIR || path.join(HERE, '..', '..'));
const BUILDDIR = path.resolve(process.env.PARLEY_BUILDDIR ||
  (fs.existsSync(path.join(process.cwd(), 'parley-gateway')) ? process.cwd() : SRCDIR));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BROKER_BIN = path.join(BUILDDIR, 'parley-broker');
const GATEWAY_BIN = path.join(BUILDDIR, 'parley-gateway');
const ARTIFACTS = path.join(BUILDDIR, 'tests', 'browser', 'artifacts');

const TEST_TIMEOUT = 90_000;   // one test case, all waits included
const WAIT = 15_000;           // one wait for the page or a server
const CHROME_ARGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync'];

const missing = [BROKER_BIN, GATEWAY_BIN, CHROMIUM].filter((f) => !fs.existsSync(f));
const SKIP = missing.length ? `not found: ${missing.join(', ')}` : false;

const procs = new Set();  // every server process we started
let chromium = null;
let browser = null;
let brokerArgs = [];
let broker = null;
let gateways = [];        // [{port, proc}]

/* ---------- servers ---------- */

// Last resort if the runner dies without after(): no server outlives us.
process.on('exit', () => {
  for (const p of procs) { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ } }
});

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function start(name, bin, args) {
  const log = fs.openSync(path.join(ARTIFACTS, `${name}.log`), 'a');
  const proc = spawn(bin, args, { detached: true, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  proc.exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve({ code, sig })));
  proc.on('error', () => {});
  procs.add(proc);
  proc.exited.then(() => procs.delete(proc));
  return proc;
}

async function stop(proc, graceMs = 5000) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const kill = (sig) => { try { process.kill(-proc.pid, sig); } catch { /* gone */ } };
  kill('SIGTERM');
  const done = await Promise.race([proc.exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!done) {
    kill('SIGKILL');
    await Promise.race([proc.exited, sleep(2000)]);
  }
}

async function waitHealthy(port, proc) {
  const deadline = Date.now() + WAIT;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`gateway on ${port} exited (${proc.exitCode ?? proc.signalCode})`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e.message;
    }
    await sleep(100);
  }
  throw new Error(`gateway on ${port} not healthy after ${WAIT} ms: ${last}`);
}

async function startGateway(i, port) {
  const proc = start(`gateway${i}`, GATEWAY_BIN, ['--workers', '1', '--listen', `127.0.0.1:${port}`,
    '--www', path.join(SRCDIR, 'www'), ...brokerArgs]);
  gateways[i] = { port, proc };
  await waitHealthy(port, proc);
  return gateways[i];
}

/* ---------- pages ---------- */

const roomName = (tag) => `${tag}-${Math.random().toString(36).slice(2, 8)}`;
const url = (gw, room) => `http://127.0.0.1:${gw.port}/${room ? `#room=${room}` : ''}`;

async function openChat(gw, nick, room, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
  await page.goto(url(gw, room));
  await page.locator('#nick-input').fill(nick);
  await page.locator('#nick-submit').click();
  await waitJoined(page, room || 'lobby');
  return page;
}

async function waitJoined(page, room) {
  await page.locator(`#conn-state[data-state="open"]`).waitFor();
  await page.locator(`ol.messages[data-room="${room}"][data-joined="true"]`).waitFor({ state: 'attached' });
}

async function say(page, text) {
  await page.locator('#input').fill(text);
  await page.locator('#input').press('Enter');
}

function lines(page, room) {
  return page.$$eval(`ol.messages[data-room="${room}"] li.msg`, (els) => els.map((e) => ({
    nick: e.dataset.nick,
    text: e.querySelector('.text').textContent,
    own: e.classList.contains('own'),
    seq: e.dataset.seq === undefined ? null : Number(e.dataset.seq),
    state: e.dataset.state || null
  })));
}

/* Waits until every text is shown (confirmed, with a seq) in room. */
async function waitLines(page, room, texts) {
  await page.waitForFunction(([r, want]) => {
    const have = [...document.querySelectorAll(`ol.messages[data-room="${r}"] li.msg[data-seq]`)]
      .map((e) => e.querySelector('.text').textContent);
    return want.every((t) => have.includes(t));
  }, [room, texts], { timeout: WAIT });
}

function assertOnce(all, texts, who) {
  for (const t of texts) {
    const n = all.filter((l) => l.text === t).length;
    assert.equal(n, 1, `${who}: "${t}" shown ${n} times`);
  }
}

function assertOrdered(all, who) {
  const seqs = all.map((l) => l.seq);
  assert.ok(seqs.every((s) => s !== null), `${who}: a line is still pending`);
  for (let i = 1; i < seqs.length; i++) {
    assert.ok(seqs[i] > seqs[i - 1], `${who}: seq ${seqs[i]} after ${seqs[i - 1]}`);
  }
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

/* ---------- setup ---------- */

before(async () => {
  if (SKIP) return;
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  ({ chromium } = await import('playwright-core'));
  const [router, pub, p1, p2] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const link = ['--heartbeat', '100ms', '--link-timeout', '600ms'];
  // Both programs refuse to run as root (CI) unless told: docs/security.md.
  const process_ = ['--allow-root', 'yes'];
  brokerArgs = ['--broker-router', `tcp://127.0.0.1:${router}`, '--broker-pub', `tcp://127.0.0.1:${pub}`, ...link,
    ...process_];
  for (const f of fs.readdirSync(ARTIFACTS)) if (f.endsWith('.log')) fs.rmSync(path.join(ARTIFACTS, f));
  broker = start('broker', BROKER_BIN, brokerArgs);
  await Promise.all([startGateway(0, p1), startGateway(1, p2)]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROME_ARGS, timeout: WAIT });
}, { timeout: 60_000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  await Promise.all([...procs].map((p) => stop(p)));
}, { timeout: 30_000 });

/* ---------- cases ---------- */

test('two people on two gateways chat with each other', { skip: SKIP, timeout: TEST_TIMEOUT }, async () => {
  // first test on a fresh broker: the default room, opened without a hash
  const room = 'lobby';
  const alice = await openChat(gateways[0], 'alice', null, { width: 1280, height: 720 });
  const bob = await openChat(gateways[1], 'bob', room, { width: 1280, height: 720 });
  const script = [
    [alice, 'Hi Bob! Is the new gateway build up yet?'],
    [bob, 'Yes, both gateways are running. Messages go through the broker 🎉'],
    [alice, 'Great. Restarts are invisible now: the page resumes with since + epoch.'],
    [bob, 'Unicode works too: 你好, مرحبا, Grüße 👋'],
    [alice, 'Perfect, shipping it.']
  ];
  for (const [page, text] of script) {
    await say(page, text);
    await waitLines(alice, room, [text]);
    await waitLines(bob, room, [text]);
  }
  const texts = script.map(([, t]) => t);
  for (const [page, me, who] of [[alice, 'alice', 'alice'], [bob, 'bob', 'bob']]) {
    const all = await lines(page, room);
    assertOnce(all, texts, who);
    assertOrdered(all, who);
    for (const l of all) assert.equal(l.own, l.nick === me, `${who}: own mark on "${l.text}"`);
    assert.equal(await page.locator('#conn-state').getAttribute('data-state'), 'open');
    assert.equal(await page.locator('#conn-state-text').textContent(), 'open');
    await page.waitForFunction(() => document.getElementById('members-count').textContent === '2');
    const members = await page.$$eval('#member-list .member-nick', (e) => e.map((x) => x.textContent));
    assert.deepEqual(members.sort(), ['alice', 'bob']);
    assert.deepEqual(page.errors, []);
  }
  await shot(alice, 'two-people-alice');
  await shot(bob, 'two-people-bob');
  await alice.context().close();
  await bob.context().close();
});

test('received text is never run as HTML', { skip: SKIP, timeout: TEST_TIMEOUT }, async () => {
  const room = roomName('xss');
  const mallory = await openChat(gateways[0], 'mallory', room);
  const bob = await openChat(gateways[1], '<b>bob</b>', room);
  const evil = ['<script>window.__xss=1</script>', '<img src=x onerror="window.__xss=1">'];
  for (const t of evil) await say(mallory, t);
  await waitLines(bob, room, evil);
  await waitLines(mallory, room, evil);
  await sleep(300);  // let any (wrongly) created image fail to load
  for (const [page, who] of [[mallory, 'mallory'], [bob, 'bob']]) {
    const all = await lines(page, room);
    assertOnce(all, evil, who);
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined', `${who}: script ran`);
    assert.equal(await page.locator('#scroller img, #scroller script').count(), 0, `${who}: markup parsed`);
  }
  // a nick with markup is shown literally in the member list and on lines
  await mallory.waitForFunction(() => [...document.querySelectorAll('#member-list .member-nick')]
    .some((e) => e.textContent === '<b>bob</b>'));
  assert.equal(await mallory.locator('#member-list b').count(), 0);
  await shot(bob, 'xss');
  await mallory.context().close();
  await bob.context().close();
});

test('a gateway restart loses and doubles nothing', { skip: SKIP, timeout: TEST_TIMEOUT }, async () => {
  const room = roomName('restart');
  const ann = await openChat(gateways[0], 'ann', room);
  const ben = await openChat(gateways[1], 'ben', room);
  await say(ann, 'before the restart');
  await waitLines(ben, room, ['before the restart']);
  await waitLines(ann, room, ['before the restart']);

  const { port } = gateways[0];
  await stop(gateways[0].proc, 10_000);
  await ann.waitForFunction(() => document.getElementById('conn-state').dataset.state !== 'open');
  const fromBen = ['ben during the outage 1', 'ben during the outage 2'];
  for (const t of fromBen) await say(ben, t);
  await waitLines(ben, room, fromBen);
  await say(ann, 'ann typed this offline');
  const queued = ann.locator(`ol.messages[data-room="${room}"] li.msg.own.pending`);
  await queued.waitFor();
  assert.equal(await queued.getAttribute('data-state'), 'queued');
  await shot(ann, 'restart-offline');

  await startGateway(0, port);
  await waitJoined(ann, room);
  await waitLines(ann, room, fromBen);
  await waitLines(ann, room, ['ann typed this offline']);
  await waitLines(ben, room, ['ann typed this offline']);
  await say(ben, 'ben after the restart');
  await say(ann, 'ann after the restart');
  const after = ['ben after the restart', 'ann after the restart'];
  await waitLines(ann, room, after);
  await waitLines(ben, room, after);

  const texts = ['before the restart', ...fromBen, 'ann typed this offline', ...after];
  const annLines = await lines(ann, room);
  const benLines = await lines(ben, room);
  for (const [all, who] of [[annLines, 'ann'], [benLines, 'ben']]) {
    assertOnce(all, texts, who);
    assertOrdered(all, who);
  }
  assert.deepEqual(annLines.map((l) => [l.seq, l.text]), benLines.map((l) => [l.seq, l.text]),
    'both pages show the same conversation');
  assert.equal(await ann.locator('#conn-state').getAttribute('data-state'), 'open');
  assert.deepEqual(ann.errors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED/.test(e)), []);
  await shot(ann, 'restart-after');
  await ann.context().close();
  await ben.context().close();
});

test('reload restores nickname and room; #name and room switcher work', { skip: SKIP, timeout: TEST_TIMEOUT }, async () => {
  const room = roomName('dev');
  const other = roomName('ops');
  const page = await openChat(gateways[1], 'carol 🌸', room);
  await say(page, 'remember me');
  await waitLines(page, room, ['remember me']);

  await page.reload();
  await waitJoined(page, room);
  assert.equal(await page.locator('#nick-modal').isHidden(), true, 'no nickname prompt after reload');
  assert.equal(await page.locator('#nick-display').textContent(), 'carol 🌸');
  assert.equal(await page.locator('#room-title-name').textContent(), room);
  await waitLines(page, room, ['remember me']);  // history replay
  const all = await lines(page, room);
  assertOnce(all, ['remember me'], 'carol');
  assert.equal(all.find((l) => l.text === 'remember me').own, true);

  // the short form #name joins that room, and both rooms stay in the switcher
  await page.goto(`http://127.0.0.1:${gateways[1].port}/#${other}`);
  await waitJoined(page, other);
  assert.equal(await page.locator('#room-title-name').textContent(), other);
  const rooms = await page.$$eval('#room-list .room-name', (e) => e.map((x) => x.textContent));
  assert.ok(rooms.includes(room) && rooms.includes(other), `rooms listed: ${rooms}`);

  // a line in the room not shown counts as unread, and switching shows it
  const dave = await openChat(gateways[0], 'dave', room);
  await say(dave, 'psst, carol');
  await page.locator(`#room-list button[data-room="${room}"] .unread`).waitFor();
  await page.locator(`#room-list button[data-room="${room}"]`).click();
  await waitLines(page, room, ['psst, carol']);
  assert.equal(await page.locator('#room-title-name').textContent(), room);

  // no hash: the last active room comes back
  await page.goto(`http://127.0.0.1:${gateways[1].port}/`);
  await waitJoined(page, room);
  assert.equal(await page.locator('#room-title-name').textContent(), room);
  assert.equal(await page.locator('#conn-state-text').textContent(), 'open');
  assert.deepEqual(page.errors, []);
  await page.context().close();
  await dave.context().close();
});

test('phone-sized screen: member list collapses, state stays visible', { skip: SKIP, timeout: TEST_TIMEOUT }, async () => {
  const room = roomName('phone');
  const page = await openChat(gateways[0], 'erin', room, { width: 390, height: 844 });
  await say(page, 'A long line without spaces: ' + 'x'.repeat(300));
  await waitLines(page, room, ['A long line without spaces: ' + 'x'.repeat(300)]);
  assert.equal(await page.locator('#members-panel').isVisible(), false);
  assert.equal(await page.locator('#rooms-panel').isVisible(), false);
  assert.equal(await page.locator('#conn-state').isVisible(), true);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  assert.equal(overflow, false, 'page scrolls sideways');
  await page.locator('#members-toggle').click();
  await page.locator('#members-panel').waitFor({ state: 'visible' });
  await shot(page, 'phone');
  await page.context().close();
});

// Last: it replaces the broker, whose history (no journal) is lost.
test('a broker restart resets history with a notice, and chat goes on', { skip: SKIP, timeout: TEST_TIMEOUT }, async () => {
  const room = roomName('reset');
  const gus = await openChat(gateways[0], 'gus', room);
  const hal = await openChat(gateways[1], 'hal', room);
  for (const t of ['one', 'two', 'three']) await say(hal, t);
  await waitLines(gus, room, ['one', 'two', 'three']);

  await stop(broker, 10_000);
  broker = start('broker', BROKER_BIN, brokerArgs);
  await Promise.all(gateways.map((g) => waitHealthy(g.port, g.proc)));
  const notice = `ol.messages[data-room="${room}"] li.sys.notice`;
  await gus.locator(notice).waitFor();
  await hal.locator(notice).waitFor();

  const fresh = ['gus after the reset', 'hal after the reset'];
  await say(gus, fresh[0]);
  await waitLines(hal, room, [fresh[0]]);
  await say(hal, fresh[1]);
  await waitLines(gus, room, fresh);
  await waitLines(hal, room, fresh);
  for (const [page, who] of [[gus, 'gus'], [hal, 'hal']]) {
    const all = await lines(page, room);
    assertOnce(all, ['one', 'two', 'three', ...fresh], who);
    assertOrdered(all.filter((l) => fresh.includes(l.text)), who);
    assert.equal(await page.locator('#conn-state').getAttribute('data-state'), 'open');
  }
  await shot(gus, 'broker-reset');
  await gus.context().close();
  await hal.context().close();
});
