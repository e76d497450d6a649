import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PaymentEvent } from '../src/machines/payment.events.js';
import { parseNotification, startJournalFeed, type JournalFeed } from '../src/operator/journal-feed.js';
import { createLogger } from '../src/logger.js';
import { inlineNotRun } from './support/intake.js';
import { startTestService, type TestService } from './support/service.js';

// The operators' inspector and statechart surface, server side: the journal with payloads, the live
// journal stream (Postgres NOTIFY → one LISTEN connection → SSE), the statechart SVG, and who may see them.

const token = 'inspector-token-'.padEnd(32, 'x');
const auth = { authorization: `Bearer ${token}` };
let t: TestService;

beforeAll(async () => {
  // Payments are driven by hand, event by event: routing is a job nobody works here.
  t = await startTestService({ ADMIN_TOKEN: token }, { effects: [], actors: inlineNotRun });
});
afterAll(async () => {
  await t?.close();
});

let counter = 0;
const newPaymentId = () => `insp-${process.pid}-${++counter}`;
const ROUTE = { orderId: 'o-insp', channelId: '-1001', planId: 'month', buyerTelegramId: '4242', strategy: 'threshold' as const, ownerShareUsd: '9', feeUsd: '1' };

/** A payment driven through received → confirmed → routed → invited (payout accumulating); the events applied, in order. */
async function drive(paymentId: string): Promise<PaymentEvent[]> {
  const events: PaymentEvent[] = [
    { type: 'np.waiting', facts: { orderId: `o-${paymentId}`, payAmount: '0.0034', payCurrency: 'eth' } },
    { type: 'np.finished', facts: { payAmount: '0.0034', actuallyPaid: '0.0034' } },
    { type: 'route.done', route: { ...ROUTE, orderId: `o-${paymentId}` } },
    { type: 'invite.sent', inviteLink: `https://t.me/+inspect${paymentId}` },
  ];
  for (const event of events) expect((await t.service.engine.applyEvent(paymentId, event, { source: 'test' })).outcome).toBe('applied');
  return events;
}

interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

/** A client of the journal stream, reading it as a browser would (fetch, the token in a header). */
async function openStream(paymentId: string, query = '', headers: Record<string, string> = {}) {
  const res = await fetch(`${t.url}/admin/payments/${encodeURIComponent(paymentId)}/journal/stream${query}`, { headers: { ...auth, ...headers } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  return {
    /** The next event (comments and the retry hint skipped); null when the stream ended. */
    async next(): Promise<SseEvent | null> {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const lines = block.split('\n');
          const field = (name: string) => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
          if (!field('event')) continue;
          return { id: field('id'), event: field('event'), data: lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n') };
        }
        const { value, done } = await reader.read();
        if (done) return null;
        buffer += value;
      }
    },
    close: () => reader.cancel(),
  };
}

describe('operators inspector surface', () => {
  it('data needs the admin token; the page shells and their scripts do not', async () => {
    const paymentId = newPaymentId();
    await drive(paymentId);
    for (const path of [`/admin/payments/${paymentId}/journal`, `/admin/payments/${paymentId}/journal/stream`, `/admin/payments/${paymentId}/statechart.svg`, '/admin/machine.svg']) {
      const res = await t.service.app.inject({ url: path });
      expect(res.statusCode, path).toBe(401);
      expect(res.body).not.toContain('np.finished');
      expect((await t.service.app.inject({ url: path, headers: { authorization: 'Bearer wrong' } })).statusCode, path).toBe(401);
    }
    const inspect = await t.service.app.inject({ url: `/admin/payments/${paymentId}/inspect` });
    expect(inspect.statusCode).toBe(200);
    expect(inspect.body).toContain('data-inspector-url="https://stately.ai/inspect"');
    expect(inspect.body).not.toContain(paymentId); // the shell reads the id from its URL
    expect(inspect.headers['content-security-policy']).toMatch(/script-src 'self'.*frame-src https:\/\/stately\.ai/);
    expect(inspect.headers['referrer-policy']).toBe('no-referrer');
    const chart = await t.service.app.inject({ url: `/admin/payments/${paymentId}/statechart` });
    expect(chart.statusCode).toBe(200);
    expect(chart.headers['content-security-policy']).not.toMatch(/frame-src|https:/); // offline: nothing from elsewhere
    for (const asset of ['inspector', 'statechart']) {
      const res = await t.service.app.inject({ url: `/admin/assets/${asset}.js` });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/javascript/);
      const again = await t.service.app.inject({ url: `/admin/assets/${asset}.js`, headers: { 'if-none-match': String(res.headers.etag) } });
      expect(again.statusCode).toBe(304);
    }
    expect([400, 414]).toContain((await t.service.app.inject({ url: `/admin/payments/${'x'.repeat(101)}/journal`, headers: auth })).statusCode);
  });

  it('GET …/journal: the payment as stored and every event with its payload, in order, ending where the stored state is', async () => {
    const paymentId = newPaymentId();
    const events = await drive(paymentId);
    const res = await t.service.app.inject({ url: `/admin/payments/${paymentId}/journal`, headers: auth });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.payment).toMatchObject({ payment_id: paymentId, state: 'invited', version: 4, state_value: { routed: { access: 'invited', payout: 'accumulating' } } });
    expect(body.journal.map((r: { seq: number }) => r.seq)).toEqual([1, 2, 3, 4]);
    expect(body.journal.map((r: { event: unknown }) => r.event)).toEqual(events);
    expect(body.journal[0]).toMatchObject({ event_type: 'np.waiting', source: 'test', from_state: null, to_state: 'received' });
    expect((await t.service.app.inject({ url: '/admin/payments/nope/journal', headers: auth })).statusCode).toBe(404);
  });

  it('the stream sends the rows after ?after= at once, then each row as it commits', async () => {
    const paymentId = newPaymentId();
    const events = await drive(paymentId);
    const stream = await openStream(paymentId, '?after=1');
    for (const seq of [2, 3, 4]) {
      const message = await stream.next();
      expect(message).toMatchObject({ id: String(seq), event: 'journal' });
      expect(JSON.parse(message!.data)).toMatchObject({ seq, event: events[seq - 1] });
    }
    // Committed while the client is connected: NOTIFY at commit → the LISTEN connection → this stream.
    const failed: PaymentEvent = { type: 'payout.failed', reason: 'ChangeNow refused the pair' };
    await t.service.engine.applyEvent(paymentId, failed, { source: 'test' });
    const live = await stream.next();
    expect(live).toMatchObject({ id: '5', event: 'journal' });
    expect(JSON.parse(live!.data)).toMatchObject({ seq: 5, event_type: 'payout.failed', event: failed, to_state: { routed: { access: 'invited', payout: 'review' } } });
    await stream.close();
  });

  it('a reconnecting client resumes after Last-Event-ID; a stream for another payment hears nothing of this one', async () => {
    const paymentId = newPaymentId();
    const other = newPaymentId();
    await drive(paymentId);
    const resumed = await openStream(paymentId, '', { 'last-event-id': '3' });
    expect((await resumed.next())?.id).toBe('4');
    const quiet = await openStream(other);
    await t.service.engine.applyEvent(paymentId, { type: 'batch.paid', batchId: 'b-1' }, { source: 'test' }); // not applicable: no row
    await t.service.engine.applyEvent(paymentId, { type: 'accumulate.done', ledgerEntryId: '77' }, { source: 'test' });
    expect((await resumed.next())?.id).toBe('5');
    await t.service.engine.applyEvent(other, { type: 'np.waiting', facts: { orderId: `o-${other}` } }, { source: 'test' });
    expect((await quiet.next())?.id).toBe('1'); // the first thing it hears is its own payment's first row
    await resumed.close();
    await quiet.close();
  });

  it('GET …/statechart.svg: the machine drawn on the server, the payment\'s current states and path highlighted', async () => {
    const paymentId = newPaymentId();
    await drive(paymentId);
    await t.service.engine.applyEvent(paymentId, { type: 'payout.failed', reason: 'swap refused' }, { source: 'test' });
    const res = await t.service.app.inject({ url: `/admin/payments/${paymentId}/statechart.svg`, headers: auth });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^image\/svg\+xml/);
    const svg = res.body;
    expect(svg).toContain('<svg');
    /** The class of the group drawing a state (Graphviz writes the node's title first). */
    const classOf = (id: string) => new RegExp(`<g id="[^"]+" class="([^"]+)">\\s*<title>${id.replace(/\./g, '\\.')}</title>`).exec(svg)?.[1];
    expect(classOf('payment.routed.payout.review')).toMatch(/\bcurrent\b/);
    expect(classOf('payment.routed.access.invited')).toMatch(/\bcurrent\b/);
    expect(classOf('payment.routed.payout.accumulating')).toMatch(/\bvisited\b/);
    expect(classOf('payment.routed.payout.deciding')).toMatch(/\bvisited\b/); // passed through by its eventless exit
    expect(classOf('payment.underpaid')).not.toMatch(/current|visited/);
    expect(svg.match(/class="node state regular current"/g)).toHaveLength(2);
    expect(svg).toMatch(/class="edge transition taken"/);
    const plain = await t.service.app.inject({ url: '/admin/machine.svg', headers: auth });
    expect(plain.statusCode).toBe(200);
    expect(plain.body).toContain('<title>payment.routed.payout.deciding</title>');
    expect(plain.body).not.toMatch(/current|visited|taken/);
    expect(plain.body).toContain('always [isInstant]');
  });
});

describe('journal feed (LISTEN payment_journal)', () => {
  it('reads notifications as <payment_id>:<seq>', () => {
    expect(parseNotification('123:4')).toEqual({ paymentId: '123', seq: 4 });
    expect(parseNotification('a:b:12')).toEqual({ paymentId: 'a:b', seq: 12 });
    for (const bad of [undefined, '', '123', ':4', '123:', '123:x', '123:0', '123:-1']) expect(parseNotification(bad), String(bad)).toBeNull();
  });

  it('tells a watcher of its payment\'s rows, and everyone after it reconnects a lost connection', async () => {
    const log = createLogger('silent');
    const feed: JournalFeed = startJournalFeed({ connectionString: t.db.url, log, retryDelayMs: 20 });
    try {
      await feed.ready();
      const paymentId = newPaymentId();
      const calls: string[] = [];
      let wake: () => void = () => {};
      const called = () => new Promise<void>((resolve) => (wake = resolve));
      const unwatch = feed.watch(paymentId, () => {
        calls.push(`${feed.store.getSnapshot().context.generation}:${feed.store.getSnapshot().context.latest[paymentId] ?? 0}`);
        wake();
      });
      let next = called();
      await t.service.engine.applyEvent(paymentId, { type: 'np.waiting', facts: { orderId: 'o' } }, { source: 'test' });
      await next;
      expect(calls).toEqual(['1:1']);

      // The server drops the LISTEN connection: the feed reconnects and every watcher is asked to read again.
      next = called();
      const admin = new pg.Client({ connectionString: t.db.url });
      await admin.connect();
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'telepay-journal-feed' AND datname = current_database() AND pid <> pg_backend_pid()`);
      await admin.end();
      await next;
      expect(calls.at(-1)).toBe('2:1');

      unwatch();
      expect(feed.store.getSnapshot().context.watchers).toEqual({});
      expect(feed.store.getSnapshot().context.latest).toEqual({});
    } finally {
      await feed.close();
    }
  });
});

describe('shutdown', () => {
  it('ends open streams when the service closes, instead of waiting for the clients', async () => {
    const own = await startTestService({ ADMIN_TOKEN: token }, { effects: [] });
    const res = await fetch(`${own.url}/admin/payments/any/journal/stream`, { headers: auth });
    const reader = res.body!.getReader();
    await reader.read(); // the retry hint: the stream is open
    await own.close();
    for (;;) if ((await reader.read()).done) break;
  });
});
