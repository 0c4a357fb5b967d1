// Browser check of the wall-screen board (src/serve/board.html) against a
// running jiancha (e.g. `jiancha demo`), in Debian's Chromium.
//
//   node board.mjs <base_url> <screenshot_path>
//
// Loads the board; waits for the red/yellow counts and the live stream;
// waits (up to 60 s, without reloading) for an alert that arrives through
// the stream; clicks it and waits for the case view and its timeline; saves
// a full-page screenshot; prints a one-line JSON summary and exits 0. On any
// failure it prints the reason, tries to save a screenshot, and exits 1.
// The whole run is bounded by 120 s.
//
// CHROMIUM overrides the browser binary (default /usr/bin/chromium).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const TOTAL_MS = 120_000;
const STREAM_WAIT_MS = 60_000;
const started = Date.now();

const [baseArg, shotArg] = process.argv.slice(2);
if (!baseArg || !shotArg) {
  console.error('usage: node board.mjs <base_url> <screenshot_path>');
  process.exit(1);
}
const base = baseArg.endsWith('/') ? baseArg : baseArg + '/';
const shotPath = resolve(shotArg);

let browser = null;
let page = null;
let finished = false;
const pageErrors = [];
const consoleErrors = [];
const failedRequests = [];

const left = () => Math.max(1000, TOTAL_MS - (Date.now() - started));
const within = (ms) => Math.max(1000, Math.min(ms, left() - 5000));

async function screenshot() {
  if (!page) return false;
  try {
    mkdirSync(dirname(shotPath), { recursive: true });
    await page.screenshot({ path: shotPath, fullPage: true, timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

async function fail(reason) {
  if (finished) return;
  finished = true;
  const saved = await screenshot();
  const summary = {
    ok: false,
    reason: String(reason),
    url: base,
    elapsed_ms: Date.now() - started,
    screenshot: saved ? shotPath : null,
    page_errors: pageErrors.slice(0, 5),
    console_errors: consoleErrors.slice(0, 5),
    failed_requests: failedRequests.slice(0, 5),
  };
  console.error(`board check failed: ${reason}`);
  console.log(JSON.stringify(summary));
  try { if (browser) await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 5000))]); } catch {}
  process.exit(1);
}

const overall = setTimeout(() => { fail(`total timeout of ${TOTAL_MS / 1000} s reached`); }, TOTAL_MS);
overall.unref();

async function main() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30_000,
  });
  const context = await browser.newContext({ viewport: { width: 1920, height: 1080 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e && e.message ? e.message : e)));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('requestfailed', (r) => {
    // The event stream is cut when the page closes; that is not a failure.
    if (!r.url().includes('/api/alerts/stream')) failedRequests.push(`${r.url()}: ${r.failure()?.errorText}`);
  });
  let navigations = 0;
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++; });

  // 1. Load the board.
  const resp = await page.goto(base, { waitUntil: 'domcontentloaded', timeout: within(30_000) });
  if (!resp) throw new Error(`no response for ${base}`);
  if (!resp.ok()) throw new Error(`GET ${base} answered HTTP ${resp.status()}`);
  const type = resp.headers()['content-type'] || '';
  if (!type.includes('text/html')) throw new Error(`GET ${base} is ${type || 'untyped'}, not text/html`);

  // 2. Counts are numbers and the stream is connected.
  try {
    await page.waitForFunction(() => {
      const num = (id) => /^\d+$/.test((document.getElementById(id)?.textContent || '').trim());
      const st = document.getElementById('stream-status')?.textContent || '';
      return num('count-red') && num('count-yellow') && st.includes('实时');
    }, null, { timeout: within(30_000), polling: 250 });
  } catch {
    const state = await page.evaluate(() => ({
      red: document.getElementById('count-red')?.textContent ?? null,
      yellow: document.getElementById('count-yellow')?.textContent ?? null,
      status: document.getElementById('stream-status')?.textContent ?? null,
      error: document.getElementById('error')?.textContent ?? null,
    })).catch(() => ({}));
    throw new Error(`counts or stream status not ready within 30 s: ${JSON.stringify(state)}`);
  }
  const readCounts = () => page.evaluate(() => ({
    red: Number(document.getElementById('count-red').textContent.trim()),
    yellow: Number(document.getElementById('count-yellow').textContent.trim()),
  }));
  const countsAtLoad = await readCounts();
  for (const id of ['by-department', 'feed', 'case-view', 'case-timeline']) {
    if (!(await page.$(`#${id}`))) throw new Error(`the board has no #${id}`);
  }
  const feedAtLoad = await page.$$eval('#feed [data-alert-id]', (els) => els.map((e) => ({
    alert_id: e.getAttribute('data-alert-id'), case_id: e.getAttribute('data-case-id'), via: e.getAttribute('data-via'),
  })));
  const badItems = feedAtLoad.filter((x) => !x.alert_id || !x.case_id);
  if (badItems.length) throw new Error(`feed items without data-alert-id/data-case-id: ${JSON.stringify(badItems.slice(0, 3))}`);

  // 2b. Department names come from the reference data (GET
  // /api/departments), not from a table of the page's own: the department
  // table shows, for a code the API names, exactly that name.
  const names = await page.evaluate(async () => {
    const r = await fetch('/api/departments', { headers: { Accept: 'application/json' } });
    return r.ok ? r.json() : null;
  });
  if (!Array.isArray(names) || !names.length) throw new Error(`GET /api/departments gave ${JSON.stringify(names)}`);
  const nameOf = new Map(names.map((d) => [d.code, d.name]));
  let deptCells = [];
  try {
    await page.waitForFunction((known) => {
      const cells = [...document.querySelectorAll('#by-department tbody td.dept')];
      return cells.some((c) => known.includes(c.getAttribute('title')) && c.textContent !== c.getAttribute('title'));
    }, [...nameOf.keys()], { timeout: within(20_000), polling: 250 });
    deptCells = await page.$$eval('#by-department tbody td.dept', (els) => els.map((e) => ({ code: e.getAttribute('title'), text: e.textContent })));
  } catch {
    deptCells = await page.$$eval('#by-department tbody td.dept', (els) => els.map((e) => ({ code: e.getAttribute('title'), text: e.textContent }))).catch(() => []);
    throw new Error(`the department table shows no name from /api/departments: ${JSON.stringify(deptCells.slice(0, 5))}`);
  }
  const wrongName = deptCells.find((c) => nameOf.has(c.code) && c.text !== nameOf.get(c.code));
  if (wrongName) throw new Error(`department ${wrongName.code} shows ${wrongName.text}, /api/departments says ${nameOf.get(wrongName.code)}`);

  // 3. A record arrives through the stream, with no reload.
  await page.evaluate(() => { window.__boardCheckMarker = 'unchanged'; });
  const navBefore = navigations;
  const t0 = Date.now();
  try {
    await page.waitForSelector('#feed [data-via="stream"][data-alert-id]', { state: 'attached', timeout: within(STREAM_WAIT_MS) });
  } catch {
    const st = await page.evaluate(() => document.getElementById('stream-status')?.textContent).catch(() => null);
    throw new Error(`no alert arrived through the stream within ${STREAM_WAIT_MS / 1000} s (stream status: ${st})`);
  }
  const streamWaitMs = Date.now() - t0;
  const marker = await page.evaluate(() => window.__boardCheckMarker);
  if (marker !== 'unchanged' || navigations !== navBefore) throw new Error('the page reloaded while waiting for the stream');

  // 4. Open the case of that item (or, failing that, of any item).
  // A locator is found again at each use: `.first()` may be a newer item
  // by the time of the click (records keep arriving), so the item is pinned
  // by the case read from it.
  const newest = page.locator('#feed [data-via="stream"][data-alert-id]').first();
  let caseId = await newest.getAttribute('data-case-id', { timeout: 5000 }).catch(() => null);
  let alertId = await newest.getAttribute('data-alert-id', { timeout: 5000 }).catch(() => null);
  let clicked = false;
  try {
    const streamed = page.locator(`#feed [data-via="stream"][data-case-id="${caseId}"]`).first();
    await streamed.scrollIntoViewIfNeeded({ timeout: 5000 });
    await streamed.click({ timeout: 10_000 });
    clicked = true;
  } catch {
    const any = page.locator('#feed [data-alert-id]').first();
    caseId = await any.getAttribute('data-case-id', { timeout: 5000 });
    alertId = await any.getAttribute('data-alert-id', { timeout: 5000 });
    const target = page.locator(`#feed [data-case-id="${caseId}"]`).first();
    await target.click({ timeout: 10_000 });
    clicked = true;
  }
  if (!clicked) throw new Error('could not click a feed item');
  try {
    await page.waitForSelector('#case-view', { state: 'visible', timeout: within(15_000) });
  } catch {
    throw new Error(`#case-view did not become visible after clicking case ${caseId}`);
  }
  try {
    await page.waitForFunction(() => (document.getElementById('case-timeline')?.children.length || 0) > 0,
      null, { timeout: within(20_000), polling: 250 });
  } catch {
    const msg = await page.evaluate(() => document.getElementById('case-view')?.innerText?.slice(0, 300)).catch(() => null);
    throw new Error(`#case-timeline stayed empty for case ${caseId}: ${JSON.stringify(msg)}`);
  }
  const caseView = await page.evaluate(() => ({
    case_id: document.getElementById('case-view').getAttribute('data-case-id'),
    timeline: document.getElementById('case-timeline').children.length,
  }));
  if (caseView.case_id && caseId && caseView.case_id !== caseId) {
    throw new Error(`clicked case ${caseId} but the case view shows ${caseView.case_id}`);
  }

  // 5. Screenshot and summary.
  const countsNow = await readCounts();
  const feedNow = await page.$$eval('#feed [data-alert-id]', (els) => ({
    items: els.length, stream: els.filter((e) => e.getAttribute('data-via') === 'stream').length,
  }));
  if (pageErrors.length) throw new Error(`uncaught page error: ${pageErrors[0]}`);
  mkdirSync(dirname(shotPath), { recursive: true });
  await page.screenshot({ path: shotPath, fullPage: true, timeout: within(20_000) });

  finished = true;
  console.log(JSON.stringify({
    ok: true,
    url: base,
    counts_at_load: countsAtLoad,
    counts: countsNow,
    feed_items_at_load: feedAtLoad.length,
    feed_items: feedNow.items,
    stream_items: feedNow.stream,
    stream_wait_ms: streamWaitMs,
    departments_named: deptCells.filter((c) => nameOf.has(c.code)).length,
    case_opened: caseId,
    alert_clicked: alertId,
    timeline_entries: caseView.timeline,
    screenshot: shotPath,
    console_errors: consoleErrors.length,
    elapsed_ms: Date.now() - started,
  }));
  await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 5000))]);
  process.exit(0);
}

main().catch((e) => fail(e && e.message ? e.message.split('\n')[0] : e));
