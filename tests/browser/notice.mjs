// Browser check of supervision from the board (follow-up.md, "Interfaces"),
// against a running jiancha with users configured, in Debian's Chromium.
//
//   node notice.mjs <base_url> <supervisor user:password> <reader user:password> <screenshot_path>
//
// As the supervisor: opens a red card's case, issues a notice (督办) from
// its case view, and waits for the notice in the board's list of open
// notices with its deadline. As the reader: opens a case, finds no 督办
// action, and sees the API refuse a notice with 403. Prints a one-line JSON
// summary and exits 0; on failure prints the reason and exits 1. Bounded by
// 120 s. CHROMIUM overrides the browser binary (default /usr/bin/chromium).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

const started = Date.now();
const [baseArg, supArg, readerArg, shotArg] = process.argv.slice(2);
if (!baseArg || !supArg || !readerArg || !shotArg) {
  console.error('usage: node notice.mjs <base_url> <user:password> <user:password> <screenshot_path>');
  process.exit(1);
}
const base = baseArg.endsWith('/') ? baseArg : baseArg + '/';
const shotPath = resolve(shotArg);
const creds = (s) => { const i = s.indexOf(':'); return { username: s.slice(0, i), password: s.slice(i + 1) }; };
let browser = null;
const pageErrors = [];

setTimeout(() => { console.error('notice check failed: total timeout of 120 s reached'); process.exit(1); }, 120_000).unref();

async function board(user) {
  const context = await browser.newContext({
    viewport: { width: 1920, height: 1080 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai', httpCredentials: creds(user),
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e && e.message ? e.message : e)));
  const resp = await page.goto(base, { waitUntil: 'domcontentloaded', timeout: 30_000 });
  if (!resp || !resp.ok()) throw new Error(`GET ${base} as ${creds(user).username}: HTTP ${resp && resp.status()}`);
  return page;
}

// Opens the case of the first red card in the feed; returns its id.
async function openRedCase(page) {
  await page.waitForSelector('#feed li.lvl-red[data-case-id]', { state: 'attached', timeout: 60_000 });
  const item = page.locator('#feed li.lvl-red[data-case-id]').first();
  const caseId = await item.getAttribute('data-case-id', { timeout: 5000 });
  await page.locator(`#feed li.lvl-red[data-case-id="${caseId}"]`).first().click({ timeout: 10_000 });
  await page.waitForSelector('#case-view', { state: 'visible', timeout: 15_000 });
  return caseId;
}

async function main() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    timeout: 30_000,
  });

  // The supervisor issues a notice from a red card.
  const sup = await board(supArg);
  const caseId = await openRedCase(sup);
  await sup.waitForSelector('#notice-form', { state: 'visible', timeout: 10_000 })
    .catch(() => { throw new Error(`no 督办 form in the case view of ${caseId} for the supervisor`); });
  await sup.fill('#notice-days', '3');
  await sup.click('#notice-issue');
  await sup.waitForSelector('#notice-msg[data-notice-id]', { timeout: 20_000 }).catch(async () => {
    throw new Error(`the notice was not issued: ${await sup.textContent('#notice-msg')}`);
  });
  const noticeId = await sup.getAttribute('#notice-msg', 'data-notice-id');
  await sup.click('#case-close');
  const row = `#follow-up tbody tr[data-id="${noticeId}"]`;
  await sup.waitForSelector(row, { state: 'attached', timeout: 40_000 })
    .catch(() => { throw new Error(`notice ${noticeId} did not appear in the list of open notices`); });
  const cells = await sup.$$eval(`${row} td`, (tds) => tds.map((t) => t.textContent.trim()));
  if (cells[0] !== '督办' || cells[2] !== caseId || !/^\d{4}-\d{2}-\d{2}$/.test(cells[4])) {
    throw new Error(`the list row of ${noticeId} is ${JSON.stringify(cells)}`);
  }
  mkdirSync(dirname(shotPath), { recursive: true });
  await sup.screenshot({ path: shotPath, fullPage: true, timeout: 20_000 });

  // The reader has no such action, and the API refuses it.
  const reader = await board(readerArg);
  const readerCase = await openRedCase(reader);
  await reader.waitForFunction(() => (document.getElementById('case-timeline')?.children.length || 0) > 0,
    null, { timeout: 20_000, polling: 250 });
  if (await reader.isVisible('#notice-form')) throw new Error('the reader is offered the 督办 action');
  const status = await reader.evaluate(async (id) => {
    const r = await fetch('/api/notices', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ case_id: id, deadline_days: 3, reason: 'x' }),
    });
    return r.status;
  }, readerCase);
  if (status !== 403) throw new Error(`the API answered the reader's notice with ${status}, not 403`);
  if (pageErrors.length) throw new Error(`uncaught page error: ${pageErrors[0]}`);
  console.log(JSON.stringify({ ok: true, case: caseId, notice: noticeId, row: cells, reader_status: status,
    screenshot: shotPath, elapsed_ms: Date.now() - started }));
  await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 5000))]);
  process.exit(0);
}

main().catch((e) => {
  console.error(`notice check failed: ${e && e.message ? e.message.split('\n')[0] : e}`);
  process.exit(1);
});
