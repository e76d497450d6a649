import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from './support/service.js';
import { chromiumAvailable, launchChromium } from './support/chromium.js';

// The buyer's pages in a real headless Chromium, against the whole sandbox service (the route and
// invite actors run; payouts do not): the success page in each state, in English and Russian, the
// cancel page, and the sandbox checkout page standing in for NowPayments' hosted invoice, whose "pay"
// button plays the buyer. With SCREENSHOTS=1 each state is saved under docs/screenshots at 1280 and
// 390 px wide.

const haveChromium = chromiumAvailable('buyer-pages.chromium.test.ts');
const SHOTS = process.env.SCREENSHOTS === '1' ? fileURLToPath(new URL('../docs/screenshots/', import.meta.url)) : null;
const ADMIN = 'buyer-pages-admin-token-0123456789';

let t: TestService;
let browser: Browser;
beforeAll(async () => {
  if (!haveChromium) return;
  t = await startTestService({ ADMIN_TOKEN: ADMIN, SUPPORT_CONTACT: '@telepay_help', STATUS_RATE_LIMIT: '100000' }, { effects: ['route', 'invite'] });
  const res = await fetch(`${t.url}/admin/channels`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify({
      open_channel_id: '-1001', closed_channel_id: '-2001', title: 'Crypto Signals Pro', wallet_address: '0x52908400098527886E0F7030069857D2E4169EE7',
      currency: 'usdt', network: 'eth', strategy: 'instant', platform_fee_percent: '10',
      plans: [{ plan_id: 'month', title: '1 month', price_usd: '9.99', duration_days: 30 }],
    }),
  });
  expect(res.status).toBe(201);
  browser = await launchChromium();
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
  await t?.close();
});

let buyer = 700;
async function order(lang?: string) {
  const res = await fetch(`${t.url}/api/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ telegram_user_id: String(++buyer), open_channel_id: '-1001', plan_id: 'month' }) });
  expect(res.status).toBe(201);
  const body = (await res.json()) as { order_id: string; invoice_url: string; status_url: string };
  return { ...body, status_url: lang ? `${body.status_url}&lang=${lang}` : body.status_url };
}

const pay = (orderId: string, body: object = {}) =>
  fetch(`${t.url}/sandbox/orders/${orderId}/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

interface Opened {
  page: Page;
  context: BrowserContext;
  problems: string[];
}

async function open(url: string, width = 1280, locale = 'en-US'): Promise<Opened> {
  const context = await browser.newContext({ viewport: { width, height: width > 600 ? 900 : 844 }, locale, timezoneId: 'UTC', deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems: string[] = [];
  // A failed request is reported by its response (the browser's own favicon request is not the page's).
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text());
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) problems.push(`${r.status()} ${r.url()}`);
  });
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(url);
  return { page, context, problems };
}

/** Both widths of one page state, when SCREENSHOTS=1. */
async function shoot(name: string, url: string, ready: (page: Page) => Promise<unknown>, locale = 'en-US') {
  if (!SHOTS) return;
  for (const width of [1280, 390]) {
    const o = await open(url, width, locale);
    await ready(o.page);
    await o.page.screenshot({ path: `${SHOTS}${name}-${width}.png`, fullPage: true });
    expect(o.problems).toEqual([]);
    await o.context.close();
  }
}

const text = async (page: Page, selector: string) => (await page.textContent(selector))?.replace(/\s+/g, ' ').trim();

describe.skipIf(!haveChromium)('buyer pages in Chromium', () => {
  it('waiting: names the channel, the plan and the price, and how to get help', async () => {
    const o = await order();
    const { page, context, problems } = await open(o.status_url);
    await page.waitForSelector('body[data-step="waiting_for_payment"]');
    await page.waitForSelector('#facts:not([hidden])');
    expect(await text(page, '#f-channel dd')).toBe('Crypto Signals Pro');
    expect(await text(page, '#f-plan dd')).toBe('1 month, 30 days');
    expect(await text(page, '#f-price dd')).toBe('9.99 USD');
    expect(await page.isVisible('#f-paid')).toBe(false);
    expect(await page.getAttribute('#pay-invoice', 'href')).toBe(o.invoice_url);
    expect(await text(page, '#help')).toBe('Need help? Write to @telepay_help and quote your order id.');
    expect(await page.getAttribute('#help a', 'href')).toBe('https://t.me/telepay_help');
    expect(problems).toEqual([]);
    await context.close();
    await shoot('success-waiting', o.status_url, (p) => p.waitForSelector('#facts:not([hidden])'));
  });

  it('checkout (sandbox): amount, address, QR code and countdown; "pay" plays the buyer and lands on the success page, which reaches done', async () => {
    const o = await order();
    expect(o.invoice_url).toMatch(new RegExp(`^${t.url}/sandbox/checkout/\\d+$`));
    await shoot('checkout', o.invoice_url, (p) => p.waitForFunction(() => /\d\d:\d\d/.test(document.getElementById('left')?.textContent ?? '')));
    const { page, context, problems } = await open(o.invoice_url);
    expect(await text(page, '#amount')).toBe('0.00333 ETH');
    expect(await text(page, '#address')).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(await page.$$('#qr svg path')).not.toHaveLength(0);
    await page.waitForFunction(() => /^(59|60):\d\d$/.test(document.getElementById('left')?.textContent ?? ''));

    await page.click('#pay');
    await page.waitForURL(/\/pay\/success\?/);
    const button = await page.waitForSelector('#open:not([hidden])', { timeout: 25_000 });
    expect(await button.getAttribute('href')).toMatch(/^https:\/\/t\.me\/\+/);
    expect(await text(page, '#f-paid dd')).toBe('0.00333 ETH');
    expect(await text(page, '#f-access dd')).toMatch(/\d{4}/);
    expect(await text(page, '#invite-once')).toMatch(/^The link is yours alone: it works once, until .+\d{4}/);
    expect(await page.$$eval('#steps li', (items) => items.map((li) => li.className))).toEqual(['done', 'done', 'done', 'done', 'done']);
    expect(problems).toEqual([]);
    await context.close();
    await shoot('success-done', page.url(), (p) => p.waitForSelector('#open:not([hidden])'));
    await shoot('success-done-ru', `${page.url()}&lang=ru`, (p) => p.waitForSelector('#open:not([hidden])'), 'ru-RU');

    // The invoice page now says it is paid and offers no second payment.
    const again = await open(o.invoice_url);
    expect(await text(again.page, '#paid-note')).toBe('This invoice is paid.');
    expect(await again.page.$('#pay')).toBeNull();
    await again.context.close();
  });

  it('underpaid: what arrived, what is missing, and the way to pay the rest', async () => {
    const o = await order();
    expect((await pay(o.order_id, { actually_paid: '5' })).status).toBe(200);
    const { page, context, problems } = await open(o.status_url);
    await page.waitForSelector('body[data-step="underpaid"]');
    expect(await text(page, '#badge')).toBe('Paid in part');
    expect(await page.isVisible('#steps')).toBe(false);
    expect(await text(page, '#description')).toBe('We received less than the price, so access is on hold. Nothing is lost.');
    expect(await text(page, '#underpaid-amounts')).toBe('Received 0.00166667 of 0.00333 ETH. Missing: 0.00166333 ETH.');
    expect(await page.getAttribute('#pay-rest', 'href')).toBe(o.invoice_url);
    expect(problems).toEqual([]);
    await context.close();
    await shoot('success-underpaid', o.status_url, (p) => p.waitForSelector('body[data-step="underpaid"]'));

    // Paying the rest on the checkout page completes the order.
    const checkout = await open(o.invoice_url);
    expect(await text(checkout.page, '#paid-note')).toBe('Received 0.00166667 of 0.00333 ETH.');
    await checkout.page.click('#pay');
    await checkout.page.waitForURL(/\/pay\/success\?/);
    await checkout.page.waitForSelector('#open:not([hidden])', { timeout: 25_000 });
    await checkout.context.close();
  });

  it('failed (expired): what happened and what to do, in English and in Russian', async () => {
    const o = await order();
    const np = t.service.sandbox.nowPayments!.fake;
    await np.sendIpn(np.pay(o.order_id, { status: 'expired' }));
    const { page, context, problems } = await open(o.status_url);
    await page.waitForSelector('body[data-step="failed"]');
    expect(await text(page, '#badge')).toBe('Not paid');
    expect(await text(page, '#description')).toBe('The payment window expired before a payment arrived. If you did send money, contact support and quote your order id; otherwise start a new order in the bot.');
    expect(problems).toEqual([]);
    await context.close();
    await shoot('success-failed', o.status_url, (p) => p.waitForSelector('body[data-step="failed"]'));

    const ru = await open(`${o.status_url}&lang=ru`);
    await ru.page.waitForSelector('body[data-step="failed"]');
    expect(await ru.page.getAttribute('html', 'lang')).toBe('ru');
    expect(await text(ru.page, '#description')).toMatch(/^Время на оплату истекло/);
    expect(await text(ru.page, '#f-plan dd')).toBe('1 month, 30 дней');
    await ru.context.close();
  });

  it('speaks the browser\'s language without ?lang=, and links to every language', async () => {
    const o = await order();
    const { page, context } = await open(o.status_url, 390, 'ru-RU');
    await page.waitForSelector('#facts:not([hidden])');
    expect(await text(page, 'h1')).toBe('Ваш платёж');
    expect(await text(page, '#description')).toMatch(/^Ждём вашу оплату/);
    expect(await page.$$eval('.langs a', (links) => links.map((a) => a.textContent))).toEqual(['EN', 'RU']);
    await context.close();
  });

  it('the cancel page shows the order and that nothing was charged', async () => {
    const o = await order('ru');
    const cancel = `${t.url}/pay/cancel?order_id=${o.order_id}`;
    const { page, context, problems } = await open(cancel);
    expect(await text(page, 'h1')).toBe('Payment cancelled');
    expect(await text(page, 'main')).toMatch(/nothing was charged.*Crypto Signals Pro.*1 month.*9\.99 USD/);
    expect(problems).toEqual([]);
    await context.close();
  });
});
