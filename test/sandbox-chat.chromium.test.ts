import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from './support/service.js';
import { chromiumAvailable, launchChromium } from './support/chromium.js';

// The sandbox chat in a real headless Chromium: a newcomer on a fresh machine walks the whole buyer
// journey in a browser. /start (a channel chip), a plan button, Pay (the sandbox checkout page), the
// success page reaching done, and the invite message back in the chat. With SCREENSHOTS=1 the chat
// with its plan buttons is saved under docs/screenshots at 1280 and 390 px wide.

const haveChromium = chromiumAvailable('sandbox-chat.chromium.test.ts');
const SHOTS = process.env.SCREENSHOTS === '1' ? fileURLToPath(new URL('../docs/screenshots/', import.meta.url)) : null;
const ADMIN = 'sandbox-chat-admin-token-0123456789';

let t: TestService;
let browser: Browser;
beforeAll(async () => {
  if (!haveChromium) return;
  t = await startTestService({ ADMIN_TOKEN: ADMIN, SUPPORT_CONTACT: 'help@example.com', STATUS_RATE_LIMIT: '100000' }, { effects: ['route', 'invite'] });
  const res = await fetch(`${t.url}/admin/channels`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify({
      open_channel_id: '-1001', closed_channel_id: '-2001', title: 'Crypto Signals Pro', wallet_address: '0x52908400098527886E0F7030069857D2E4169EE7',
      currency: 'usdt', network: 'eth', strategy: 'instant', platform_fee_percent: '10',
      plans: [
        { plan_id: 'week', title: '1 week', price_usd: '3.99', duration_days: 7 },
        { plan_id: 'month', title: '1 month', price_usd: '9.99', duration_days: 30 },
      ],
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

const botMessages = (page: Page) => page.$$eval('#log .msg.bot', (items) => items.map((m) => m.firstChild?.textContent ?? ''));

async function chatWithPlans(width: number, user: string) {
  const context = await browser.newContext({ viewport: { width, height: width > 600 ? 900 : 844 }, locale: 'en-US', timezoneId: 'UTC' });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('response', (r) => {
    if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) problems.push(`${r.status()} ${r.url()}`);
  });
  await page.goto(`${t.url}/sandbox/chat?user=${user}`);
  await page.click('#chips button:has-text("/start Crypto Signals Pro")');
  await page.waitForSelector('#log .msg.bot .kb button');
  return { page, context, problems };
}

describe.skipIf(!haveChromium)('sandbox chat in Chromium', () => {
  it('walks the buyer journey: /start, a plan, Pay on the checkout page, done, and the invite in the chat', async () => {
    const { page, context, problems } = await chatWithPlans(1280, '424242');
    expect(await botMessages(page)).toEqual(['Crypto Signals Pro: choose a plan.']);
    expect(await page.$$eval('#log .msg.bot .kb button', (bs) => bs.map((b) => b.textContent))).toEqual(['1 week: 3.99 USD / 7 days', '1 month: 9.99 USD / 30 days']);
    expect(await page.$$eval('#log .msg.you', (ms) => ms.map((m) => m.textContent))).toEqual(['/start -1001']);
    if (SHOTS) {
      await page.screenshot({ path: `${SHOTS}chat-1280.png` });
      const narrow = await chatWithPlans(390, '434343');
      await narrow.page.screenshot({ path: `${SHOTS}chat-390.png` });
      await narrow.context.close();
    }

    await page.click('#log .msg.bot .kb button:has-text("1 month")');
    const pay = await page.waitForSelector('#log .msg.bot .kb a:has-text("Pay")');
    expect(await botMessages(page)).toContain('Order created: 1 month, 9.99 USD for 30 days. Pay with crypto below; your invite arrives here once the payment is confirmed.');
    expect(await pay.getAttribute('href')).toMatch(/\/sandbox\/checkout\/\d+$/);

    const [checkout] = await Promise.all([context.waitForEvent('page'), pay.click()]);
    await checkout.waitForSelector('#pay');
    await checkout.click('#pay');
    await checkout.waitForURL(/\/pay\/success\?/);
    await checkout.waitForSelector('#open:not([hidden])', { timeout: 25_000 });

    // The invite the bot sent arrives in the chat, with its button.
    const invite = await page.waitForSelector('#log .msg.bot .kb a[href^="https://t.me/+"]', { timeout: 25_000 });
    expect(await invite.textContent()).toBe('Open the channel');
    await page.fill('#text', '/status');
    await page.press('#text', 'Enter');
    await page.waitForFunction(() => /Crypto Signals Pro: active until/.test(document.getElementById('log')?.textContent ?? ''));
    await page.click('#chips button:has-text("/help")');
    await page.waitForFunction(() => /E-mail help@example\.com/.test(document.getElementById('log')?.textContent ?? ''));
    expect(problems).toEqual([]);
    await context.close();
  });
});
