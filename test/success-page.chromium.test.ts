import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { paymentIdOf, seedOrder, startIntake, type IntakeHarness } from './support/intake.js';
import { chromiumAvailable, launchChromium } from './support/chromium.js';

// The buyer's success page in a real headless Chromium (Debian package `chromium`; .ci/run installs it).
const haveChromium = chromiumAvailable('success-page.chromium.test.ts');

let h: IntakeHarness;
let browser: Browser;
beforeAll(async () => {
  if (!haveChromium) return;
  h = await startIntake();
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await h?.close();
});

/** A page that records console errors and script errors (a CSP violation shows up as a console error). */
async function openPage(url: string): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().includes('404')) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  await page.goto(url);
  return { page, problems };
}

describe.skipIf(!haveChromium)('success page in Chromium', () => {
  it('shows "waiting for payment", follows the payment, and offers the invite once it exists', async () => {
    const { orderId, token } = await seedOrder(h);
    const { page, problems } = await openPage(`${h.t.url}/pay/success?order_id=${orderId}&token=${encodeURIComponent(token)}`);
    await page.waitForSelector('body[data-step="waiting_for_payment"]');
    expect(await page.textContent('#description')).toMatch(/waiting for your payment/);
    expect(await page.textContent('#order')).toBe(`Order ${orderId}`);
    expect(await page.isVisible('#open')).toBe(false);
    expect(await page.getAttribute('li[data-step="waiting_for_payment"]', 'class')).toBe('current');

    // NowPayments reports the payment; the route and invite actors (other modules) record their results.
    const p = h.np.pay(orderId, { status: 'waiting' });
    for (const status of ['waiting', 'confirming', 'finished'] as const) await h.np.sendIpn(h.np.pay(orderId, { status }));
    const paymentId = paymentIdOf(p);
    const engine = h.t.service.engine;
    await engine.applyEvent(paymentId, {
      type: 'route.done',
      route: { orderId, channelId: '-1001', planId: 'p', buyerTelegramId: '4242', strategy: 'threshold', ownerShareUsd: '11', feeUsd: '1.5' },
    }, { source: 'test' });
    await engine.applyEvent(paymentId, { type: 'invite.sent', inviteLink: 'https://t.me/+BrowserInvite' }, { source: 'test' });

    const button = await page.waitForSelector('#open:not([hidden])', { timeout: 25_000 });
    expect(await button.getAttribute('href')).toBe('https://t.me/+BrowserInvite');
    expect(await button.textContent()).toBe('Open the channel');
    expect(await page.getAttribute('body', 'data-step')).toBe('done');
    expect(await page.textContent('#description')).toMatch(/^Done: the bot has sent you an invite link/);
    expect(await page.$$eval('#steps li', (items) => items.map((li) => li.className))).toEqual(['done', 'done', 'done', 'done', 'done']);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('polls with backoff (1 s, x1.5, at most 10 s) and stops once the answer is final', async () => {
    const { orderId, token } = await seedOrder(h);
    const page = await browser.newPage();
    // The page's clock is frozen and moved only by the test: exact gaps, no sleeping.
    await page.clock.install({ time: new Date('2030-01-01T00:00:00Z') });
    await page.clock.pauseAt(new Date('2030-01-01T00:00:01Z'));
    await page.goto(`${h.t.url}/pay/success?order_id=${orderId}&token=${encodeURIComponent(token)}`);
    // Playwright's own waits run on the page's timers, which are frozen here; ask from the outside instead.
    const polled = (n: number) => vi.waitFor(async () => expect(await page.getAttribute('body', 'data-polls')).toBe(String(n)), { timeout: 10_000, interval: 20 });
    await polled(1);

    let n = 1;
    for (const gap of [1000, 1500, 2250, 3375, 5063, 7594, 10000, 10000]) {
      await page.clock.runFor(gap - 5);
      expect(await page.getAttribute('body', 'data-polls'), `no poll before ${gap} ms`).toBe(String(n));
      await page.clock.runFor(5);
      await polled(++n);
    }

    const p = h.np.pay(orderId, { status: 'expired' });
    await h.np.sendIpn(p);
    await page.clock.runFor(10_000);
    await polled(++n);
    expect(await page.getAttribute('body', 'data-step')).toBe('failed');
    await page.clock.runFor(10 * 60_000);
    expect(await page.getAttribute('body', 'data-polls')).toBe(String(n)); // final: no more requests
    await page.close();
  });

  it('renders a hostile order_id as text, under a CSP that allows only its own script', async () => {
    const hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>';
    const { page, problems } = await openPage(`${h.t.url}/pay/success?order_id=${encodeURIComponent(hostile)}`);
    await page.waitForFunction(() => document.getElementById('description')?.className === 'problem');
    expect(await page.textContent('#order')).toBe(`Order ${hostile}`);
    expect(await page.$$('main img')).toHaveLength(0);
    expect(await page.textContent('#description')).toMatch(/cannot find this order/);
    expect(problems).toEqual([]);

    const res = await fetch(`${h.t.url}/pay/success?order_id=x`);
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'nonce-[^']+'/);
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    await page.close();
  });

  it('the cancel page explains that nothing was charged', async () => {
    const { page, problems } = await openPage(`${h.t.url}/pay/cancel?order_id=abc`);
    expect(await page.textContent('h1')).toBe('Payment cancelled');
    expect(await page.textContent('main')).toMatch(/nothing was charged/);
    expect(problems).toEqual([]);
    await page.close();
  });
});
