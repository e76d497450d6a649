import { mkdirSync } from 'node:fs';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PaymentEvent } from '../src/machines/payment.events.js';
import { effectJobId } from '../src/persistence/job-id.js';
import { queueOf } from '../src/persistence/queues.js';
import { paymentRow } from './support/engine.js';
import { paymentIdOf, inlineNotRun, seedOrder, startIntake, uniqueId, type IntakeHarness } from './support/intake.js';
import { chromiumAvailable, launchChromium } from './support/chromium.js';

// The operator dashboard in a real headless Chromium (Debian package `chromium`; .ci/run installs it):
// a payment parked for review shows in the stuck list, the operator's click and reason move it on, and
// the page shows the new state, under its hash-only CSP, at desktop and phone widths.
// DASHBOARD_SCREENSHOTS=1 also writes docs/screenshots/dashboard-1280.png and dashboard-390.png.
const haveChromium = chromiumAvailable('dashboard.chromium.test.ts');
const SCREENSHOTS = process.env.DASHBOARD_SCREENSHOTS === '1';

const token = 'dashboard-token-'.padEnd(32, 'x');
let h: IntakeHarness;
let browser: Browser;

const apply = (paymentId: string, event: PaymentEvent) => h.t.service.engine.applyEvent(paymentId, event, { source: 'test' });
const paid = (orderId: string) => ({ payAmount: '0.0034', actuallyPaid: '0.0034', payCurrency: 'eth', orderId });
const route = (orderId: string, strategy: 'instant' | 'threshold'): PaymentEvent => ({
  type: 'route.done',
  route: { orderId, channelId: '-1001', planId: 'month', buyerTelegramId: '5077125051', strategy, ownerShareUsd: '8.99', feeUsd: '1' },
});

/** What an operator typically finds: parked payments of every kind, an IPN log, a dead letter, payouts in review. */
async function seedAFewProblems(): Promise<void> {
  const { orderId } = await seedOrder(h);
  for (const status of ['waiting', 'confirming'] as const) await h.np.sendIpn(h.np.pay(orderId, { status }));
  const p = h.np.pay(orderId, { status: 'partially_paid', actuallyPaid: '0.002' });
  await h.np.sendIpn(p);
  // A verified IPN we cannot use: parked for an operator.
  await h.np.sendIpn({ ...p, payment_status: 'mystery' as never });

  const invite = uniqueId('pay');
  await apply(invite, { type: 'np.finished', facts: paid(uniqueId('ord')) });
  await apply(invite, route('ord-invite', 'threshold'));
  await h.t.service.boss.fail(queueOf('invite'), effectJobId(invite, 'invite', 0), { message: 'Telegram 400: Bad Request: chat not found' });
  await apply(invite, { type: 'invite.failed', reason: 'cannot create an invite link in channel -2001 (Telegram 400: Bad Request: not enough rights)' });

  const payout = uniqueId('pay');
  await apply(payout, { type: 'np.finished', facts: paid(uniqueId('ord')) });
  await apply(payout, route('ord-payout', 'instant'));
  await apply(payout, { type: 'invite.sent', inviteLink: 'https://t.me/+AbCdEf' });
  await apply(payout, { type: 'payout.failed', reason: 'ChangeNow did not create the exchange: pair usdt/trx not available' });

  const dead = uniqueId('pay');
  await apply(dead, { type: 'np.finished', facts: paid(uniqueId('ord')) });
  const job = effectJobId(dead, 'route', 0);
  await h.t.db.pool.query('UPDATE pgboss.job SET retry_limit = 0 WHERE name = $1 AND id = $2', [queueOf('route'), job]);
  await h.t.service.boss.fail(queueOf('route'), job, { message: 'connect ECONNREFUSED 10.0.0.7:5432' });
  await vi.waitFor(async () => expect((await paymentRow(h.t.db, dead))?.state).toBe('needs_review'), { timeout: 20_000, interval: 50 });

  const { rows } = await h.t.db.pool.query<{ open_channel_id: string }>('SELECT open_channel_id::text FROM orders WHERE order_id = $1', [orderId]);
  const channel = rows[0]!.open_channel_id;
  await h.t.db.pool.query(
    `INSERT INTO payout_batches (batch_id, open_channel_id, total_units, usd_value, entry_count, status, review_reason)
     VALUES (gen_random_uuid()::text, $1, 3000000000000000, 9.5, 2, 'review', 'the batch job used up its retries (provider down or not settling); resume it after checking the payout')`,
    [channel],
  );
  await h.t.db.pool.query(
    `INSERT INTO payouts (payout_id, kind, open_channel_id, payment_id, cleared_units, amount_units, to_address, to_currency, to_network, direct, status, problem)
     VALUES ($1, 'instant', $2, $3, 1000, 1000, '0x52908400098527886E0F7030069857D2E4169EE7', 'usdt', 'trx', false, 'review', 'ChangeNow did not create the exchange: pair usdt/trx not available')`,
    [uniqueId('payout'), channel, payout],
  );
}

beforeAll(async () => {
  if (!haveChromium) return;
  h = await startIntake({ ADMIN_TOKEN: token, STUCK_AFTER: '1h', STUCK_AFTER_STATES: 'needs_review=0s,underpaid=0s' }, { effects: [], actors: inlineNotRun });
  browser = await launchChromium();
  await seedAFewProblems();
});
afterAll(async () => {
  await browser?.close();
  await h?.close();
});

/** The dashboard signed in, recording console and script errors (a CSP violation is a console error). */
async function openDashboard(width: number): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(`${h.t.url}/admin/dashboard`);
  await page.fill('#token', token);
  await page.click('#auth button');
  await page.waitForSelector('body[data-refreshed]');
  return { page, problems };
}

describe.skipIf(!haveChromium)('operator dashboard in Chromium', () => {
  it('a payment parked for review is in the stuck list; retry with a reason moves it on and the page shows the new state', async () => {
    const paymentId = uniqueId('pay');
    const orderId = uniqueId('ord');
    await apply(paymentId, { type: 'np.finished', facts: paid(orderId) });
    await apply(paymentId, { type: 'route.rejected', reason: 'channel -1009 is not configured: add it, then retry' });

    const { page, problems } = await openDashboard(1280);
    const card = page.locator(`#stuck .card[data-payment="${paymentId}"]`);
    await card.waitFor();
    expect(await card.getAttribute('data-state')).toBe('needs_review');
    expect(await card.textContent()).toContain('channel -1009 is not configured');
    expect(await card.locator('a', { hasText: 'Inspect' }).getAttribute('href')).toBe(`/admin/payments/${paymentId}/inspect`);
    expect(await card.locator('a', { hasText: 'Statechart' }).getAttribute('href')).toBe(`/admin/payments/${paymentId}/statechart`);
    expect(await page.textContent('#stuck-by-state')).toContain('needs_review');

    await card.locator('button[data-action="operator.retry"]').click();
    await page.waitForSelector('#act[open]');
    // Without a reason the browser refuses to submit: nothing is sent.
    await page.fill('#act-by', 'alice');
    await page.click('#act-confirm');
    expect(await page.isVisible('#act')).toBe(true);
    expect((await paymentRow(h.t.db, paymentId))?.state).toBe('needs_review');
    await page.fill('#act-reason', 'channel -1009 added in the admin API');
    await page.click('#act-confirm');

    await page.waitForSelector(`#detail[data-payment="${paymentId}"] #detail-state:text-is("confirmed")`);
    await page.waitForSelector(`#stuck .card[data-payment="${paymentId}"]`, { state: 'detached' });
    expect(await page.textContent('#toast')).toContain('now confirmed');
    expect(await page.textContent('#journal')).toContain('channel -1009 added in the admin API');
    const journal = await h.t.db.pool.query<{ source: string; by: string; reason: string }>(
      `SELECT source, event->>'by' AS by, event->>'reason' AS reason FROM payment_journal WHERE payment_id = $1 ORDER BY seq DESC LIMIT 1`,
      [paymentId],
    );
    expect(journal.rows[0]).toEqual({ source: 'operator:alice', by: 'alice', reason: 'channel -1009 added in the admin API' });
    expect(problems).toEqual([]);
    await page.close();
  });

  it('search, IPN log, dead letters and payouts in review are on the page; it fits a 390 px phone', async () => {
    const { page, problems } = await openDashboard(390);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.waitForSelector('#ipn td .state.parked');
    await page.waitForSelector('#dead td:has-text("ECONNREFUSED")');
    await page.waitForSelector('#batches .card .state.review');
    await page.waitForSelector('#payouts td:has-text("pair usdt/trx not available")');
    await page.fill('#q', '5077125051');
    await page.click('#search-form button');
    await page.waitForSelector('#search-results tr[data-payment]');
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    expect(problems).toEqual([]);
    await page.close();
  });

  it.runIf(SCREENSHOTS)('screenshots for docs/screenshots', async () => {
    mkdirSync('docs/screenshots', { recursive: true });
    for (const width of [1280, 390]) {
      const { page } = await openDashboard(width);
      await page.waitForSelector('#ipn table');
      const first = page.locator('#stuck .card').first();
      await first.locator('a.mono').click();
      await page.waitForSelector('#detail:not([hidden])');
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: `docs/screenshots/dashboard-${width}.png`, fullPage: true });
      await page.close();
    }
    expect(paymentIdOf).toBeTypeOf('function');
  });
});
