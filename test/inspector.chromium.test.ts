import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Browser, type Frame, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PaymentEvent } from '../src/machines/payment.events.js';
import { inlineNotRun } from './support/intake.js';
import { startTestService, type TestService } from './support/service.js';
import { chromiumAvailable, launchChromium } from './support/chromium.js';

// The operators' inspector page in a real headless Chromium (Debian package `chromium`), pointed at a
// stub of the Stately inspector served here (INSPECTOR_URL): the stub says "connected" the way the real
// one does and records every inspection event the page's @statelyai/inspect posts to it.
// Screenshots for docs/screenshots: UPDATE_SCREENSHOTS=1 npx vitest run test/inspector.chromium.test.ts
const haveChromium = chromiumAvailable('inspector.chromium.test.ts');
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? new URL('../docs/screenshots/', import.meta.url) : null;

const TOKEN = 'inspector-browser-token-'.padEnd(32, 'x');

/** What the stub inspector receives (the Stately inspection protocol, as @statelyai/inspect posts it). */
interface Inspection {
  type: string;
  name?: string;
  definition?: string;
  sessionId: string;
  event?: { type: string } & Record<string, unknown>;
  snapshot?: { value: unknown; context?: Record<string, unknown> };
}

// Writes what it received as a list, so a screenshot shows the page working (the real UI is stately.ai's).
const STUB_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Stub inspector</title><link rel="icon" href="data:,">
<style>body{font:13px/1.4 system-ui,sans-serif;margin:0;padding:.75rem;background:#f8fafc;color:#1d2330}h1{font-size:1rem;margin:0 0 .5rem}
li{margin:.15rem 0}code{font-size:.8rem}.ev{color:#1d4ed8}.snap{color:#4b5563}</style></head><body>
<h1>Stub inspector (test double of stately.ai/inspect)</h1><ol id="log"></ol>
<script>
  window.received = [];
  window.addEventListener('message', function (e) {
    var d = e.data;
    if (!d || typeof d._version !== 'string') return;
    window.received.push(d);
    var li = document.createElement('li');
    var text = d.type === '@xstate.actor' ? 'actor ' + d.name : d.type === '@xstate.event' ? 'event ' + d.event.type : 'snapshot ' + JSON.stringify(d.snapshot && d.snapshot.value);
    li.className = d.type === '@xstate.event' ? 'ev' : 'snap';
    li.innerHTML = '<code></code>'; li.firstChild.textContent = text;
    document.getElementById('log').appendChild(li);
  });
  (window.opener || window.parent).postMessage({ type: '@statelyai.connected' }, '*');
</script></body></html>`;

let t: TestService;
let stub: Server;
let stubUrl: string;
let browser: Browser;

beforeAll(async () => {
  if (!haveChromium) return;
  stub = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(STUB_PAGE));
  await new Promise<void>((resolve) => stub.listen(0, '127.0.0.1', resolve));
  stubUrl = `http://127.0.0.1:${(stub.address() as AddressInfo).port}/inspect`;
  // Payments are driven by hand, event by event: routing is a job nobody works here.
  t = await startTestService({ ADMIN_TOKEN: TOKEN, INSPECTOR_URL: stubUrl }, { effects: [], actors: inlineNotRun });
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await t?.close();
  await new Promise((resolve) => stub?.close(resolve));
});

const ROUTE = { channelId: '-1001', planId: 'month', buyerTelegramId: '4242', strategy: 'threshold' as const, ownerShareUsd: '9', feeUsd: '1' };

/** received → confirmed → routed (inviting, accumulating) → invited: four events through the engine. */
async function drive(paymentId: string): Promise<PaymentEvent[]> {
  const events: PaymentEvent[] = [
    { type: 'np.waiting', facts: { orderId: `o-${paymentId}`, payAmount: '0.0034', payCurrency: 'eth' } },
    { type: 'np.finished', facts: { payAmount: '0.0034', actuallyPaid: '0.0034', outcomeAmount: '0.0033', outcomeCurrency: 'eth' } },
    { type: 'route.done', route: { ...ROUTE, orderId: `o-${paymentId}` } },
    { type: 'invite.sent', inviteLink: 'https://t.me/+InspectorTest' },
  ];
  for (const event of events) expect((await t.service.engine.applyEvent(paymentId, event, { source: 'test' })).outcome).toBe('applied');
  return events;
}

/** What the third-party inspector may see: the same events with invite links hidden. */
const asInspected = (events: PaymentEvent[]) => JSON.parse(JSON.stringify(events).replace(/https:\/\/t\.me\/\+[A-Za-z0-9_-]+/g, 'https://t.me/+(hidden)')) as PaymentEvent[];

async function journalStates(paymentId: string): Promise<unknown[]> {
  const { rows } = await t.db.pool.query<{ to_state: unknown }>('SELECT to_state FROM payment_journal WHERE payment_id = $1 ORDER BY seq', [paymentId]);
  return rows.map((r) => r.to_state);
}

/** A page that records console errors, script errors (a CSP violation is a console error) and every request it makes. */
async function openPage(width: number): Promise<{ page: Page; problems: string[]; requests: string[] }> {
  const page = await browser.newPage({ viewport: { width, height: 860 } });
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('request', (r) => requests.push(`${r.method()} ${r.url()}`));
  return { page, problems, requests };
}

const stubFrame = (page: Page): Frame => {
  const frame = page.frames().find((f) => f.url().startsWith(stubUrl));
  if (!frame) throw new Error('the inspector frame is not loaded');
  return frame;
};
const received = (frame: Frame) => frame.evaluate(() => (window as unknown as { received: Inspection[] }).received);
/** The machine's own events (xstate.init and other internal ones left out). */
const journalEvents = (list: Inspection[]) => list.filter((i) => i.type === '@xstate.event' && !i.event!.type.startsWith('xstate.'));
const sorted = (value: unknown): unknown =>
  value && typeof value === 'object' && !Array.isArray(value) ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, sorted(v)])) : value;

describe.skipIf(!haveChromium)('inspector page in Chromium', () => {
  it('replays the journal into the inspector (actor, every event with its payload, snapshots), then follows it live', async () => {
    const paymentId = `insp-browser-${Date.now()}`;
    const events = await drive(paymentId);
    const { page, problems, requests } = await openPage(1280);
    await page.goto(`${t.url}/admin/payments/${paymentId}/inspect`);
    // No token yet: the page asks for it, like the dashboard.
    await page.fill('#token', TOKEN);
    await page.click('#auth button');
    await page.waitForSelector('body[data-replayed="4"][data-live="yes"][data-match="yes"]');
    expect(await page.textContent('#payment')).toBe(paymentId);
    expect(await page.$$eval('#journal li', (items) => items.map((li) => li.querySelector('.event')?.textContent))).toEqual(events.map((e) => e.type));

    await page.waitForFunction(() => document.querySelector<HTMLIFrameElement>('#inspector')?.dataset.loaded === 'yes');
    const frame = stubFrame(page);
    await frame.waitForFunction((n) => (window as unknown as { received: Inspection[] }).received.filter((i) => i.type === '@xstate.event' && !i.event!.type.startsWith('xstate.')).length >= n, 4);
    let list = await received(frame);
    // First the actor, with the machine's definition (the inspector draws the statechart from it).
    expect(list[0]).toMatchObject({ type: '@xstate.actor', name: 'payment' });
    expect(JSON.parse(list[0]!.definition!)).toMatchObject({ id: 'payment', initial: 'received' });
    // Then every journal event in order with its payload, each followed by the snapshot it led to.
    expect(journalEvents(list).map((i) => i.event)).toEqual(asInspected(events));
    const states = await journalStates(paymentId);
    const snapshotsAfter = (l: Inspection[]) =>
      l.flatMap((inspection, index) => {
        if (inspection.type !== '@xstate.event' || inspection.event!.type.startsWith('xstate.')) return [];
        const snapshot = l.slice(index + 1).find((x) => x.type === '@xstate.snapshot');
        return [sorted(snapshot?.snapshot?.value)];
      });
    expect(snapshotsAfter(list)).toEqual(states.map(sorted));
    const lastSnapshot = list.filter((i) => i.type === '@xstate.snapshot').at(-1)!;
    // The buyer's invite link admits whoever holds it: it never reaches the inspector's (third-party) page.
    expect(lastSnapshot.snapshot!.context).toMatchObject({ paymentId, access: { inviteLink: 'https://t.me/+(hidden)' } });
    expect(new Set(list.map((i) => i.sessionId)).size).toBe(1); // one actor

    // One more event while the page is open: it reaches the inspector live.
    const failed: PaymentEvent = { type: 'payout.failed', reason: 'ChangeNow refused the pair' };
    await t.service.engine.applyEvent(paymentId, failed, { source: 'actor:accumulate' });
    await page.waitForSelector('body[data-replayed="5"][data-match="yes"]');
    await frame.waitForFunction((n) => (window as unknown as { received: Inspection[] }).received.filter((i) => i.type === '@xstate.event' && !i.event!.type.startsWith('xstate.')).length >= n, 5);
    list = await received(frame);
    expect(journalEvents(list).map((i) => i.event)).toEqual(asInspected([...events, failed]));
    expect(snapshotsAfter(list).at(-1)).toEqual(sorted({ routed: { access: 'invited', payout: 'review' } }));
    expect(await page.textContent('#journal li:last-child .event')).toBe('payout.failed');
    expect(await page.textContent('#summary')).toBe('routed: access invited, payout review');

    // A replay decides again and never acts: the page only ever read (GET), from this service and the inspector.
    expect(requests.filter((r) => !r.startsWith('GET '))).toEqual([]);
    expect(requests.filter((r) => !r.startsWith(`GET ${t.url}/`) && !r.startsWith(`GET ${stubUrl}`))).toEqual([]);
    const { rows } = await t.db.pool.query('SELECT count(*)::int AS n FROM payment_journal WHERE payment_id = $1', [paymentId]);
    expect(rows[0].n).toBe(5);
    expect(problems).toEqual([]);

    if (SCREENSHOTS) {
      mkdirSync(SCREENSHOTS, { recursive: true });
      await page.screenshot({ path: new URL('inspector-1280.png', SCREENSHOTS).pathname });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: new URL('inspector-390.png', SCREENSHOTS).pathname, fullPage: true });
    }
    await page.close();
  });

  it('moves the inspector to a window of its own: the window gets the whole history, then the live rows', async () => {
    const paymentId = `insp-window-${Date.now()}`;
    const events = await drive(paymentId);
    const { page, problems } = await openPage(1280);
    await page.addInitScript((token) => sessionStorage.setItem('telepay-admin', token), TOKEN);
    await page.goto(`${t.url}/admin/payments/${paymentId}/inspect`);
    await page.waitForSelector('body[data-replayed="4"][data-live="yes"]');
    const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#popup')]);
    expect(popup.url()).toBe(stubUrl);
    expect(await page.$('#inspector')).toBeNull();
    const count = (n: number) =>
      popup.waitForFunction((m) => (window as unknown as { received: Inspection[] }).received.filter((i) => i.type === '@xstate.event' && !i.event!.type.startsWith('xstate.')).length >= m, n);
    await count(4);
    const failed: PaymentEvent = { type: 'payout.failed', reason: 'swap refused' };
    await t.service.engine.applyEvent(paymentId, failed, { source: 'test' });
    await count(5);
    const list = await popup.evaluate(() => (window as unknown as { received: Inspection[] }).received);
    expect(list.filter((i) => i.type === '@xstate.actor')).toHaveLength(1);
    expect(journalEvents(list).map((i) => i.event)).toEqual(asInspected([...events, failed]));
    expect(problems).toEqual([]);
    await popup.close();
    await page.close();
  });

  it('the offline statechart page: the server\'s SVG with the current states, beside the journal; nothing from elsewhere', async () => {
    const paymentId = `insp-chart-${Date.now()}`;
    const events = await drive(paymentId);
    await t.service.engine.applyEvent(paymentId, { type: 'payout.failed', reason: 'ChangeNow refused the pair' }, { source: 'actor:accumulate' });
    const { page, problems, requests } = await openPage(1280);
    await page.addInitScript((token) => sessionStorage.setItem('telepay-admin', token), TOKEN);
    await page.goto(`${t.url}/admin/payments/${paymentId}/statechart`);
    await page.waitForSelector('#chart svg');
    await page.waitForSelector('body[data-live="yes"]');
    expect(await page.$$eval('#chart g.node.current title', (titles) => titles.map((x) => x.textContent).sort())).toEqual(['payment.routed.access.invited', 'payment.routed.payout.review']);
    expect(await page.$$eval('#journal li .event', (items) => items.map((x) => x.textContent))).toEqual([...events.map((e) => e.type), 'payout.failed']);
    expect(await page.textContent('#summary')).toBe('routed: access invited, payout review (payout: ChangeNow refused the pair)');

    // Live here too: an operator retry redraws the chart.
    await t.service.engine.applyEvent(paymentId, { type: 'operator.retry', by: 'alice' }, { source: 'operator:alice' });
    await page.waitForSelector('body[data-drawn-at="6"]');
    expect(await page.$$eval('#chart g.node.current title', (titles) => titles.map((x) => x.textContent).sort())).toEqual(['payment.routed.access.invited', 'payment.routed.payout.accumulating']);
    expect(requests.filter((r) => !r.startsWith(`GET ${t.url}/`))).toEqual([]);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('screenshots of the statechart of a payment parked for review (UPDATE_SCREENSHOTS=1)', async () => {
    if (!SCREENSHOTS) return;
    const paymentId = `insp-review-${Date.now()}`;
    await drive(paymentId);
    await t.service.engine.applyEvent(paymentId, { type: 'payout.failed', reason: 'ChangeNow refused the pair' }, { source: 'actor:accumulate' });
    for (const [name, width] of [['statechart-1280.png', 1280], ['statechart-390.png', 390]] as const) {
      const { page } = await openPage(width);
      await page.addInitScript((token) => sessionStorage.setItem('telepay-admin', token), TOKEN);
      await page.goto(`${t.url}/admin/payments/${paymentId}/statechart`);
      await page.waitForSelector('#chart svg');
      await page.screenshot({ path: new URL(name, SCREENSHOTS).pathname, fullPage: width < 500 });
      if (width > 1000) {
        // The whole chart at once: the path the payment took.
        await page.click('#zoom');
        await page.screenshot({ path: new URL('statechart-1280-fit.png', SCREENSHOTS).pathname });
      }
      await page.close();
    }
  });
});
