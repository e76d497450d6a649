import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPaymentStatusReader, STATUS_STATEMENT, type PaymentStatusReader, type PaymentStatusView } from '../src/intake/payment-status.js';
import { createStatusCache } from '../src/intake/status-cache.js';
import { createLogger } from '../src/logger.js';
import type { PaymentEvent } from '../src/machines/payment.events.js';
import { startJournalFeed, type FeedConnection, type JournalFeed } from '../src/operator/journal-feed.js';
import { paymentIdOf, routeNotRun, seedOrder, startIntake, STATUS_SECRET, type IntakeHarness } from './support/intake.js';

// The status cache against real Postgres: the service (fake NowPayments, no effect workers, routing not
// run) commits the transitions; this file's own journal feed and reader read them, with a pool that
// counts (and, for the race, holds) the reader's statements. Every wait is on a notification heard by
// this feed or on its connection state, never on a timer.

let h: IntakeHarness;
let feed: JournalFeed;
beforeAll(async () => {
  h = await startIntake({ RECONCILE_EVERY: '0 0 1 1 *' }, { effects: [], actors: { route: routeNotRun } });
  feed = startJournalFeed({ connectionString: h.t.db.url, log: createLogger('silent'), retryDelayMs: 10, maxRetryDelayMs: 50 });
  await feed.ready();
});
afterAll(async () => {
  await feed.close();
  await h.close();
});

interface Call {
  name?: string;
  text: string;
  values: unknown[];
}

/** The reader's pool: records every statement; `hold` keeps a status SELECT's answer back (its rows already read) until released. */
function countingPool() {
  const calls: Call[] = [];
  let hold: { answered: () => void; release: Promise<void> } | null = null;
  const pool = {
    async query(config: Call) {
      calls.push(config);
      const result = await h.t.db.pool.query(config);
      if (config.name === STATUS_STATEMENT && hold) {
        const held = hold;
        hold = null;
        held.answered();
        await held.release;
      }
      return result;
    },
    connect: () => Promise.reject(new Error('the status read must not check out a client')),
  } as unknown as pg.Pool;
  return {
    pool,
    calls,
    statusCalls: () => calls.filter((c) => c.name === STATUS_STATEMENT).length,
    /** The next status SELECT runs, then waits: resolves `answered` once its rows are in; `release` lets it return. */
    holdNext() {
      let release!: () => void;
      let answered!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const answeredP = new Promise<void>((r) => (answered = r));
      hold = { answered, release: released };
      return { answered: answeredP, release };
    },
  };
}

const readers: PaymentStatusReader[] = [];
afterEach(() => {
  for (const r of readers.splice(0)) r.close();
});

function reader(maxAgeMs = 60_000) {
  const counted = countingPool();
  const r = createPaymentStatusReader({ pool: counted.pool, statusTokenSecret: STATUS_SECRET, journalFeed: feed, maxAgeMs });
  readers.push(r);
  return { ...counted, read: (orderId: string, token?: string) => r.read({ orderId, token }), cache: r.cache! };
}

/**
 * Listens for `paymentId` from now on; `all()`, called after the write, resolves once this file's feed has
 * heard every journal row of it committed so far (the reader's cache, tapped earlier, heard each first).
 * Notifications of one payment arrive in commit order: hearing its newest seq means all were heard.
 */
function listenFor(paymentId: string) {
  let newest = 0;
  let wanted = Infinity;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  const untap = feed.tap({
    committed: (id, seq) => {
      if (id !== paymentId) return;
      newest = Math.max(newest, seq);
      if (newest >= wanted) resolve();
    },
    connection: () => {},
  });
  return {
    async all() {
      const { rows } = await h.t.db.pool.query<{ seq: number }>('SELECT max(seq)::int AS seq FROM payment_journal WHERE payment_id = $1', [paymentId]);
      wanted = rows[0]!.seq;
      if (newest >= wanted) resolve();
      await done;
      untap();
    },
  };
}

/** Resolves when the feed's connection reaches `want` (tap() reports the current state at once, then every change). */
function connection(want: (c: FeedConnection) => boolean): Promise<FeedConnection> {
  return new Promise((resolve) => {
    let reached: FeedConnection | null = null;
    let untap: (() => void) | null = null;
    untap = feed.tap({
      committed: () => {},
      connection: (c) => {
        if (reached || !want(c)) return;
        reached = c;
        untap?.();
        resolve(c);
      },
    });
    if (reached) untap();
  });
}

/** An order as the order service leaves it: with its invoice stored (seedOrder writes the order row alone). */
async function order() {
  const seeded = await seedOrder(h);
  await h.t.db.pool.query('UPDATE orders SET invoice_url = $2 WHERE order_id = $1', [seeded.orderId, `${h.np.url}/payment/?iid=${seeded.invoiceId}`]);
  return seeded;
}

const routeDone = (orderId: string): PaymentEvent => ({
  type: 'route.done',
  route: { orderId, channelId: '-1001', planId: 'p', buyerTelegramId: '4242', strategy: 'threshold', ownerShareUsd: '11', feeUsd: '1.5' },
});
const apply = (paymentId: string, event: PaymentEvent) => h.t.service.engine.applyEvent(paymentId, event, { source: 'test' });

/** An order whose payment is `confirming` (cacheable), the feed having heard all of it. */
async function confirmingOrder() {
  const seeded = await order();
  const payment = h.np.pay(seeded.orderId, { status: 'confirming' });
  const heard = listenFor(paymentIdOf(payment));
  await h.np.sendIpn(payment);
  await heard.all();
  return { ...seeded, payment, paymentId: paymentIdOf(payment) };
}

const NO_WRITES = /\b(INSERT|UPDATE|DELETE|MERGE|FOR SHARE|FOR UPDATE|nextval|pg_advisory\w*)\b/i;

describe('payment status cache', () => {
  it('a miss is the one named SELECT; a hit reads nothing; the token is checked on every hit', async () => {
    const r = reader();
    const o = await confirmingOrder();
    await r.cache.settled(); // the notification of the new payment was looked up: no statement is pending
    r.calls.length = 0;
    const first = (await r.read(o.orderId, o.token))!;
    expect(first).toMatchObject({ step: 'confirming', state: 'received' });
    expect(r.calls).toHaveLength(1);
    expect(r.calls[0]).toMatchObject({ name: STATUS_STATEMENT, values: [o.orderId] });
    expect(r.calls[0]!.text.trim()).toMatch(/^SELECT\b/);
    expect(r.calls[0]!.text).not.toMatch(NO_WRITES);

    const again = await r.read(o.orderId, o.token);
    expect(again).toEqual(first);
    const anonymous = (await r.read(o.orderId))!;
    const guessed = (await r.read(o.orderId, 'x'.repeat(43)))!;
    const someoneElses = (await r.read(o.orderId, (await order()).token))!;
    expect(r.calls).toHaveLength(1);
    expect(r.cache.stats.hits).toBe(4);
    // Amounts and the invoice only with this order's token, from the same cached row.
    expect(first.invoice_url).toMatch(/^http/);
    for (const view of [anonymous, guessed, someoneElses]) expect(view).toMatchObject({ step: 'confirming', invoice_url: null, paid: null, access_ends_at: null });
  });

  it('shows the invite link of a cached "done" answer only with the token', async () => {
    const r = reader();
    const { orderId, token } = await order();
    const p = h.np.pay(orderId, { status: 'finished' });
    await h.np.sendIpn(p);
    await apply(paymentIdOf(p), routeDone(orderId));
    const heard = listenFor(paymentIdOf(p));
    await apply(paymentIdOf(p), { type: 'invite.sent', inviteLink: 'https://t.me/+CachedSecret' });
    await heard.all();
    await r.cache.settled();
    expect(await r.read(orderId, token)).toMatchObject({ step: 'done', invite: { url: 'https://t.me/+CachedSecret' } });
    expect(await r.read(orderId)).toMatchObject({ step: 'done', invite: null });
    expect(JSON.stringify(await r.read(orderId, 'y'.repeat(43)))).not.toContain('CachedSecret');
    expect(await r.read(orderId, token)).toMatchObject({ invite: { url: 'https://t.me/+CachedSecret' } });
    expect(r.statusCalls()).toBe(1);
  });

  it('a transition committed elsewhere is answered as soon as its notification has arrived', async () => {
    const r = reader();
    const o = await confirmingOrder();
    await r.cache.settled();
    expect(await r.read(o.orderId, o.token)).toMatchObject({ step: 'confirming' });
    expect(await r.read(o.orderId, o.token)).toMatchObject({ step: 'confirming' });
    expect(r.statusCalls()).toBe(1);

    const heard = listenFor(o.paymentId);
    await h.np.sendIpn(h.np.pay(o.orderId, { status: 'partially_paid', actuallyPaid: '5' }));
    await heard.all();
    expect(await r.read(o.orderId, o.token)).toMatchObject({ step: 'underpaid', paid: { amount: '5' } });
    expect(r.statusCalls()).toBe(2);
    expect(await r.read(o.orderId, o.token)).toMatchObject({ step: 'underpaid' }); // cached again
    expect(r.statusCalls()).toBe(2);
  });

  it("an order's first payment (a payment id the cache has never seen) outdates the order's answer", async () => {
    const r = reader();
    const { orderId, token } = await order();
    expect(await r.read(orderId, token)).toMatchObject({ state: null, step: 'waiting_for_payment' });
    expect(await r.read(orderId, token)).toMatchObject({ state: null });
    expect(r.statusCalls()).toBe(1);

    const p = h.np.pay(orderId, { status: 'waiting' });
    const heard = listenFor(paymentIdOf(p));
    await h.np.sendIpn(p);
    await heard.all();
    // The notification named a payment, not the order: until its order is looked up, nothing is served from memory.
    expect(await r.read(orderId, token)).toMatchObject({ state: 'received', step: 'waiting_for_payment' });
    await r.cache.settled();
    expect(await r.read(orderId, token)).toMatchObject({ state: 'received' });
    expect(r.calls.some((c) => c.name !== STATUS_STATEMENT && /\bpayment_id = ANY\b/.test(c.text))).toBe(true);

    // A second payment of the same order (a repeat deposit) is a new id again, and outdates it again.
    await r.read(orderId, token);
    const calls = r.statusCalls();
    const child = h.np.pay(orderId, { status: 'waiting', child: true });
    const heardChild = listenFor(paymentIdOf(child));
    await h.np.sendIpn(child);
    await heardChild.all();
    await r.read(orderId, token);
    expect(r.statusCalls()).toBe(calls + 1);
  });

  it('a notification that arrives while a miss is in flight keeps that answer out of the cache', async () => {
    const r = reader();
    const o = await confirmingOrder();
    await r.cache.settled();
    const held = r.holdNext();
    const inFlight = r.read(o.orderId, o.token);
    await held.answered; // the SELECT has read "confirming"

    const heard = listenFor(o.paymentId);
    await h.np.sendIpn(h.np.pay(o.orderId, { status: 'partially_paid', actuallyPaid: '5' }));
    await heard.all();
    held.release();
    expect(await inFlight).toMatchObject({ step: 'confirming' }); // what it read, returned to its caller only
    expect(r.cache.stats.staleFlights).toBe(1);
    expect(r.cache.size).toBe(0);

    expect(await r.read(o.orderId, o.token)).toMatchObject({ step: 'underpaid' });
    expect(r.statusCalls()).toBe(2);
  });

  it("the same race on an order's first payment (not known to belong to it yet)", async () => {
    const r = reader();
    const { orderId, token } = await order();
    const held = r.holdNext();
    const inFlight = r.read(orderId, token);
    await held.answered;
    const p = h.np.pay(orderId, { status: 'waiting' });
    const heard = listenFor(paymentIdOf(p));
    await h.np.sendIpn(p);
    await heard.all();
    held.release();
    expect(await inFlight).toMatchObject({ state: null });
    expect(r.cache.size).toBe(0);
    await r.cache.settled();
    expect(await r.read(orderId, token)).toMatchObject({ state: 'received' });
  });

  it('the LISTEN connection lost: everything is dropped, nothing is cached until it listens again', async () => {
    const r = reader();
    const o = await confirmingOrder();
    await r.cache.settled();
    await r.read(o.orderId, o.token);
    await r.read(o.orderId, o.token);
    expect(r.cache.size).toBe(1);
    const before = feed.store.getSnapshot().context.generation;

    const lost = connection((c) => !c.listening);
    const back = connection((c) => c.listening && c.generation > before);
    const admin = new pg.Client({ connectionString: h.t.db.url });
    await admin.connect();
    try {
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'telepay-journal-feed' AND datname = current_database()`);
    } finally {
      await admin.end();
    }
    await lost;
    expect(r.cache.size).toBe(0);
    // While it is down every read is the SELECT (a reconnect may already be under way: then it was stored once after it).
    const calls = r.statusCalls();
    await r.read(o.orderId, o.token);
    expect(r.statusCalls()).toBe(calls + 1);

    await back;
    await r.read(o.orderId, o.token);
    const afterReconnect = r.statusCalls();
    await r.read(o.orderId, o.token);
    expect(r.statusCalls()).toBe(afterReconnect); // cached again in the new generation
  });

  it('steps in which the actors write without a journal row are always read', async () => {
    const r = reader();
    const { orderId, token } = await order();
    const p = h.np.pay(orderId, { status: 'finished' });
    const heard = listenFor(paymentIdOf(p));
    await h.np.sendIpn(p); // no effect workers here: the payment waits in "confirmed" (its route queued) or "invite_sent" (routed inline)
    await heard.all();
    await r.cache.settled();
    const first = (await r.read(orderId, token))!;
    expect(['confirmed', 'invite_sent']).toContain(first.step);
    expect((await r.read(orderId, token))!.step).toBe(first.step);
    expect(r.statusCalls()).toBe(2);
    expect(r.cache.size).toBe(0);
  });

  it('an unknown order is never cached (orders are created without a notification)', async () => {
    const r = reader();
    expect(await r.read('ord_status_cache_nobody')).toBeNull();
    expect(await r.read('ord_status_cache_nobody')).toBeNull();
    expect(r.statusCalls()).toBe(2);
  });

  it('serves the same frozen answer to every poll, so its JSON can be made once', async () => {
    const r = reader();
    const o = await confirmingOrder();
    await r.cache.settled();
    const a = (await r.read(o.orderId, o.token)) as PaymentStatusView;
    const b = (await r.read(o.orderId, o.token)) as PaymentStatusView;
    expect(b).toBe(a);
    expect(Object.isFrozen(a) && Object.isFrozen(a.order)).toBe(true);
  });
});

describe('status cache bounds (no database)', () => {
  const listening = { listening: true, generation: 1 };
  const loaded = (value: string, paymentId: string | null = null) => async () => ({ value, paymentId, cacheable: true });

  it('keeps at most maxEntries answers, least recently used dropped first', async () => {
    const cache = createStatusCache<string>({ ordersOf: async () => new Map(), maxEntries: 2 });
    cache.connection(listening);
    await cache.read('a', loaded('A'));
    await cache.read('b', loaded('B'));
    cache.peek('a'); // a is now the most recently used
    await cache.read('c', loaded('C'));
    expect(cache.size).toBe(2);
    expect(cache.peek('a')).toBe('A');
    expect(cache.peek('b')).toBeUndefined();
  });

  it('serves an answer for at most maxAgeMs', async () => {
    let t = 1_000;
    const cache = createStatusCache<string>({ ordersOf: async () => new Map(), maxAgeMs: 3_000, now: () => t });
    cache.connection(listening);
    await cache.read('a', loaded('A'));
    t += 3_000;
    expect(cache.peek('a')).toBe('A');
    t += 1;
    expect(cache.peek('a')).toBeUndefined();
  });

  it('a failed lookup of a notified payment drops every answer', async () => {
    let fail!: (e: Error) => void;
    const cache = createStatusCache<string>({ ordersOf: () => new Promise((_, reject) => (fail = reject)), onError: () => {} });
    cache.connection(listening);
    await cache.read('a', loaded('A'));
    cache.committed('p-unknown', 1);
    expect(cache.peek('a')).toBeUndefined(); // not served while its order is being looked up
    fail(new Error('database down'));
    await cache.settled();
    expect(cache.size).toBe(0);
  });

  it('with nothing cached, new payments cost no lookup; a read in flight is still kept out of the cache', async () => {
    let lookups = 0;
    const cache = createStatusCache<string>({ ordersOf: async () => (lookups++, new Map()) });
    cache.connection(listening);
    let answer!: (v: { value: string; paymentId: null; cacheable: true }) => void;
    const inFlight = cache.read('a', () => new Promise((resolve) => (answer = resolve)));
    for (let i = 0; i < 100; i++) cache.committed(`p-new-${i}`, 1);
    answer({ value: 'A (maybe outdated)', paymentId: null, cacheable: true });
    expect(await inFlight).toBe('A (maybe outdated)');
    await cache.settled();
    expect(lookups).toBe(0);
    expect(cache.size).toBe(0);
    // Once something is cached, an unknown payment is looked up again (it may be that order's).
    await cache.read('a', loaded('A'));
    cache.committed('p-new-101', 1);
    await cache.settled();
    expect(lookups).toBe(1);
  });

  it('a known payment outdates only its own order', async () => {
    const cache = createStatusCache<string>({ ordersOf: async () => new Map() });
    cache.connection(listening);
    await cache.read('a', loaded('A', 'pa'));
    await cache.read('b', loaded('B', 'pb'));
    cache.committed('pa', 2);
    expect(cache.peek('a')).toBeUndefined();
    expect(cache.peek('b')).toBe('B');
  });

  it('stores nothing while not listening, and a new generation drops what an old one stored', async () => {
    const cache = createStatusCache<string>({ ordersOf: async () => new Map() });
    await cache.read('a', loaded('A'));
    expect(cache.size).toBe(0);
    cache.connection(listening);
    await cache.read('a', loaded('A'));
    expect(cache.size).toBe(1);
    cache.connection({ listening: true, generation: 2 });
    expect(cache.size).toBe(0);
  });
});
