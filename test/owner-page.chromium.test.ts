import { mkdirSync } from 'node:fs';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from './support/service.js';
import { chromiumAvailable, launchChromium } from './support/chromium.js';

// The owner's page in a real headless Chromium (Debian package `chromium`): it asks for the admin token,
// then shows the money per period and the subscribers, under its hash-only CSP, at 1280 and 390 px.
// OWNER_SCREENSHOTS=1 also writes docs/screenshots/owner-1280.png and owner-390.png.
const haveChromium = chromiumAvailable('owner-page.chromium.test.ts');
const SCREENSHOTS = process.env.OWNER_SCREENSHOTS === '1';

const ADMIN = 'owner-page-admin-token-'.padEnd(32, 'x');
const CHANNEL = '-1001987654321';
let t: TestService;
let browser: Browser;

async function seed(): Promise<void> {
  const admin = (method: string, url: string, body: object) =>
    fetch(`${t.url}${url}`, { method, headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` }, body: JSON.stringify(body) });
  const created = await admin('POST', '/admin/channels', {
    open_channel_id: CHANNEL, closed_channel_id: '-1002987654321', title: 'Crypto Signals Pro', wallet_address: '0x52908400098527886E0F7030069857D2E4169EE7',
    currency: 'usdt', network: 'eth', strategy: 'threshold', threshold_usd: '50', platform_fee_percent: '10',
    plans: [{ plan_id: 'month', title: '1 month', price_usd: '9.99', duration_days: 30 }],
  });
  expect(created.status).toBe(201);
  await admin('PATCH', `/admin/channels/${CHANNEL}`, { texts: { plans_prompt: 'Welcome to {channel}! Pick your plan:' } });

  const q = (sql: string, values: unknown[] = []) => t.db.pool.query(sql, values);
  // Subscribers: a dozen active, a few expired or removed.
  for (let n = 0; n < 16; n++) {
    const removed = n >= 14;
    const days = n < 12 ? 2 + n * 3 : -(n - 11);
    await q(
      `INSERT INTO subscriptions (buyer_telegram_id, open_channel_id, expires_at, removed_at, created_at)
       VALUES ($1, $2, now() + $3 * interval '1 day', CASE WHEN $4 THEN now() - interval '1 day' END, now() - interval '90 days')`,
      [String(5_077_125_000 + n), CHANNEL, days, removed],
    );
  }
  // Six months of payments and two threshold payouts: wei and USD at 3,000 USD per ETH.
  for (let month = 0; month < 6; month++) {
    for (let k = 0; k <= month + 1; k++) {
      const payment = `pay-${month}-${k}`;
      const at = `now() - interval '${5 - month} months' - interval '${k + 1} days'`;
      await q(
        `INSERT INTO ledger_entries (open_channel_id, account, kind, payment_id, payout_id, amount_units, usd_value, created_at)
         VALUES ($1, 'owner', 'payment_credit', $2, $3, 2997000000000000, 8.991, ${at}), ($1, 'platform', 'platform_fee', $2, NULL, 333000000000000, 0.999, ${at})`,
        [CHANNEL, payment, month < 4 ? `batch:b${month < 2 ? 1 : 2}` : null],
      );
    }
  }
  for (const [batch, monthsAgo, units] of [['b1', 3, '14985000000000000'], ['b2', 1, '26973000000000000']] as const) {
    await q(
      `INSERT INTO ledger_entries (open_channel_id, account, kind, payout_id, amount_units, created_at) VALUES ($1, 'owner', 'payout', $2, $3, now() - interval '${monthsAgo} months')`,
      [CHANNEL, `batch:${batch}`, `-${units}`],
    );
  }
  // Manual changes by an admin, through the API (the sandbox Bot API answers).
  await admin('POST', `/admin/channels/${CHANNEL}/subscribers/5077125003`, { action: 'extend', duration: '7d', by: 'alice', reason: 'outage compensation' });
  await admin('POST', `/admin/channels/${CHANNEL}/subscribers/5077125099`, { action: 'grant', duration: '30d', by: 'alice', reason: 'paid by bank transfer' });
  await admin('POST', `/admin/channels/${CHANNEL}/subscribers/5077125005`, { action: 'revoke', by: 'bob', reason: 'chargeback' });
}

beforeAll(async () => {
  if (!haveChromium) return;
  t = await startTestService({ ADMIN_TOKEN: ADMIN }, { effects: [] });
  browser = await launchChromium();
  await seed();
});
afterAll(async () => {
  await browser?.close();
  await t?.close();
});

/** The page at a width, signed in, everything loaded; console errors (a CSP violation is one) collected. */
async function open(width: number): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(`${t.url}/admin/channels/${CHANNEL}/owner`);
  await page.waitForSelector('#signin:not([hidden])');
  await page.fill('#token', ADMIN);
  await page.click('#auth button');
  await page.waitForSelector('body[data-loaded]');
  return { page, problems };
}

describe.skipIf(!haveChromium)('the owner page in Chromium', () => {
  it('asks for the token, then shows money per period and the subscribers, with no CSP or script errors', async () => {
    const res = await fetch(`${t.url}/admin/channels/${CHANNEL}/owner`);
    expect(res.headers.get('content-security-policy')).toMatch(/script-src 'sha256-[^']+'; style-src 'sha256-/);
    expect(await res.text()).not.toContain('Crypto Signals Pro'); // a shell: no data without the token

    const { page, problems } = await open(1280);
    expect(await page.textContent('#title')).toBe('Crypto Signals Pro');
    expect(await page.textContent('#counts')).toMatch(/Active\s*12/);
    expect(await page.locator('#report tbody tr').count()).toBe(13); // 12 months and the total
    expect(await page.textContent('#money')).toContain('Revenue');
    expect(await page.textContent('#adjustments')).toContain('chargeback');
    expect(await page.textContent('#texts')).toContain('Welcome to {channel}! Pick your plan:');

    await page.click('#periods button[data-period="week"]');
    await page.waitForSelector('#periods button[data-period="week"][aria-pressed="true"]');
    await page.click('#statuses button[data-status="removed"]');
    await page.waitForSelector('#statuses button[data-status="removed"][aria-pressed="true"]');
    expect(await page.locator('#subscribers tbody tr').count()).toBe(3);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('fits a 390 px phone: no horizontal scrolling', async () => {
    const { page, problems } = await open(390);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    expect(problems).toEqual([]);
    await page.close();
  });

  it.runIf(SCREENSHOTS)('screenshots for docs/screenshots', async () => {
    mkdirSync('docs/screenshots', { recursive: true });
    for (const width of [1280, 390]) {
      const { page } = await open(width);
      await page.screenshot({ path: `docs/screenshots/owner-${width}.png`, fullPage: true });
      await page.close();
    }
  });
});
