import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusView } from '../src/http/routes/payment-status.route.js';
import type { PaymentEvent } from '../src/machines/payment.events.js';
import { createPaymentStatusReader, readPaymentStatus, STATUS_STATEMENT, type PaymentStatusView } from '../src/intake/payment-status.js';
import type { JournalTapListener } from '../src/operator/journal-feed.js';
import { signStatusToken } from '../src/orders/status-token.js';
import { footprint, inlineNotRun, paymentIdOf, seedOrder, startIntake, type IntakeHarness } from './support/intake.js';

let h: IntakeHarness;
beforeAll(async () => {
  // The reconcile schedule would add a pgboss.job row mid-count; once a year keeps it out of the footprint.
  // Routing runs inline in the confirming transition; a route actor of its own makes it a queued job
  // again, which nobody works here (no effect workers), so a paid order stays "confirmed" with its job
  // waiting: the state in which the replaced system's polling re-ran processing.
  // The same for accumulating the owner's share, where it is inline too: this file moves payments by hand.
  h = await startIntake({ STATUS_RATE_LIMIT: '1500', RECONCILE_EVERY: '0 0 1 1 *' }, { effects: [], actors: inlineNotRun });
});
afterAll(async () => {
  await h.close();
});

const routeDone = (orderId: string): PaymentEvent => ({
  type: 'route.done',
  route: { orderId, channelId: '-1001', planId: 'p', buyerTelegramId: '4242', strategy: 'threshold', ownerShareUsd: '11', feeUsd: '1.5' },
});

async function status(orderId: string, token?: string): Promise<{ code: number; body: PaymentStatusView & { message?: string } }> {
  const query = new URLSearchParams({ order_id: orderId, ...(token !== undefined ? { token } : {}) });
  const res = await fetch(`${h.t.url}/api/payment-status?${query}`);
  return { code: res.status, body: (await res.json()) as PaymentStatusView & { message?: string } };
}

const apply = (paymentId: string, event: PaymentEvent) => h.t.service.engine.applyEvent(paymentId, event, { source: 'test' });

/**
 * The answer once it shows `expected`. The service answers repeated polls from memory until its journal
 * feed hears the commit that outdates them: right after a write, a poll can come before that
 * notification, so this polls (bounded) until the new step appears.
 */
async function statusShowing(orderId: string, token: string | undefined, expected: Partial<Record<keyof PaymentStatusView, unknown>>) {
  await expect.poll(async () => (await status(orderId, token)).body, { timeout: 2_000, interval: 10 }).toMatchObject(expected);
  return (await status(orderId, token)).body;
}

describe('GET /api/payment-status', () => {
  it('an unknown order is a 404 that says what to check', async () => {
    const { code, body } = await status('ord_does_not_exist');
    expect(code).toBe(404);
    expect(body.message).toMatch(/No order or payment is known under order_id "ord_does_not_exist"/);
  });

  it('follows the payment in plain words, and shows the invite link only with the order token', async () => {
    const { orderId, token } = await seedOrder(h);
    expect((await status(orderId, token)).body).toMatchObject({ order_id: orderId, state: null, step: 'waiting_for_payment', final: false, invite: null });

    const waiting = h.np.pay(orderId, { status: 'waiting' });
    await h.np.sendIpn(waiting);
    await statusShowing(orderId, token, { state: 'received', step: 'waiting_for_payment' });

    await h.np.sendIpn(h.np.pay(orderId, { status: 'confirming' }));
    const confirming = await statusShowing(orderId, token, { state: 'received', step: 'confirming', final: false });
    expect(confirming.description).toMatch(/being confirmed/);

    await h.np.sendIpn(h.np.pay(orderId, { status: 'finished' }));
    await statusShowing(orderId, token, { state: 'confirmed', step: 'confirmed', final: false });

    const paymentId = paymentIdOf(waiting);
    await apply(paymentId, routeDone(orderId));
    await statusShowing(orderId, token, { state: 'routed', step: 'invite_sent', invite: null });

    await apply(paymentId, { type: 'invite.sent', inviteLink: 'https://t.me/+SecretInvite123' });
    const done = await statusShowing(orderId, token, { step: 'done', final: true, invite: { url: 'https://t.me/+SecretInvite123' }, invite_undeliverable: false });
    expect(Date.parse(done.state_entered_at)).toBeLessThanOrEqual(Date.parse(done.updated_at));

    // Without the token, or with someone else's, the state is visible but the link is not.
    expect((await status(orderId)).body).toMatchObject({ step: 'done', invite: null });
    expect((await status(orderId, 'x'.repeat(43))).body).toMatchObject({ step: 'done', invite: null });
    const other = await seedOrder(h);
    expect((await status(orderId, other.token)).body).toMatchObject({ step: 'done', invite: null });
    expect(JSON.stringify((await status(orderId)).body)).not.toContain('SecretInvite123');
    // The answer is serialised without zod: it still is exactly the documented schema, no field more.
    const anonymous = (await status(orderId)).body;
    expect(() => statusView.strict().parse(done)).not.toThrow();
    expect(() => statusView.strict().parse(anonymous)).not.toThrow();
  });

  it('an invite the bot could not deliver is still "done", with the link on the page', async () => {
    const { orderId, token } = await seedOrder(h);
    const p = h.np.pay(orderId, { status: 'finished' });
    await h.np.sendIpn(p);
    await apply(paymentIdOf(p), routeDone(orderId));
    await apply(paymentIdOf(p), { type: 'invite.undeliverable', inviteLink: 'https://t.me/+Undelivered', reason: 'bot was blocked by the user' });
    const body = (await status(orderId, token)).body;
    expect(body).toMatchObject({ step: 'done', final: true, invite: { url: 'https://t.me/+Undelivered' }, invite_undeliverable: true });
    expect(body.description).toMatch(/could not message you/);
  });

  it('underpaid, failed and review steps say what happened and what to do', async () => {
    const under = await seedOrder(h);
    await h.np.sendIpn(h.np.pay(under.orderId, { status: 'partially_paid', actuallyPaid: '5' }));
    const u = (await status(under.orderId, under.token)).body;
    expect(u).toMatchObject({ state: 'underpaid', step: 'underpaid', final: false });
    expect(u.description).toMatch(/received 5 of 12\.5 usdttrc20.*contact support/);
    expect((await status(under.orderId)).body.description).not.toMatch(/12\.5/); // amounts only with the token

    const expired = await seedOrder(h);
    await h.np.sendIpn(h.np.pay(expired.orderId, { status: 'expired' }));
    const e = (await status(expired.orderId, expired.token)).body;
    expect(e).toMatchObject({ state: 'failed', step: 'failed', final: true, invite: null });
    expect(e.description).toMatch(/expired/);

    const review = await seedOrder(h);
    const p = h.np.pay(review.orderId, { status: 'finished' });
    await h.np.sendIpn(p);
    await apply(paymentIdOf(p), { type: 'route.rejected', reason: 'channel is not configured' });
    const r = (await status(review.orderId, review.token)).body;
    expect(r).toMatchObject({ state: 'needs_review', step: 'needs_review', final: false });
    expect(r.description).not.toContain('channel is not configured'); // internal reasons stay internal
  });

  it('a repeat deposit parked for review does not hide the access the first payment granted', async () => {
    const { orderId, token } = await seedOrder(h);
    const first = h.np.pay(orderId, { status: 'finished' });
    await h.np.sendIpn(first);
    await apply(paymentIdOf(first), routeDone(orderId));
    await apply(paymentIdOf(first), { type: 'invite.sent', inviteLink: 'https://t.me/+First' });
    const child = h.np.pay(orderId, { status: 'finished', child: true });
    await h.np.sendIpn(child);
    await apply(paymentIdOf(child), { type: 'route.rejected', reason: 'repeat deposit: access already granted' });
    expect((await status(orderId, token)).body).toMatchObject({ step: 'done', invite: { url: 'https://t.me/+First' } });
  });

  it('1,000 polls while payments are in flight change nothing: no journal rows, versions, jobs or deliveries', async () => {
    // One payment confirming on chain, one confirmed with its route job queued: exactly when the replaced
    // system's polling re-ran processing.
    const a = await seedOrder(h);
    await h.np.sendIpn(h.np.pay(a.orderId, { status: 'confirming' }));
    const b = await seedOrder(h);
    await h.np.sendIpn(h.np.pay(b.orderId, { status: 'finished' }));
    const before = await footprint(h.t.db);

    const targets = [a, b];
    let sent = 0;
    const answers: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (sent < 1000) {
          const i = sent++;
          const o = targets[i % 2]!;
          answers.push((await status(o.orderId, i % 3 === 0 ? undefined : o.token)).code);
        }
      }),
    );
    expect(answers).toHaveLength(1000);
    expect(answers.every((c) => c === 200)).toBe(true);
    expect(await footprint(h.t.db)).toEqual(before);
    expect((await status(a.orderId, a.token)).body.step).toBe('confirming');
    expect((await status(b.orderId, b.token)).body.step).toBe('confirmed');
  });

  /** A pool that answers every query with `row` and records what it was asked; checking out a client fails. */
  const recordingPool = (row: object, calls: unknown[]) =>
    ({
      query: async (config: unknown, values?: unknown) => {
        calls.push(values === undefined ? config : { config, values });
        return { rows: [row] };
      },
      connect: () => Promise.reject(new Error('the status read must not check out a client (no transaction)')),
    }) as unknown as pg.Pool;

  it('answers from one named (prepared) SELECT and nothing else: no transaction, no second statement', async () => {
    const calls: unknown[] = [];
    const row = {
      order_created_at: new Date('2026-01-02T03:04:05.678Z'), price_usd: '12.50', invoice_url: 'https://np.example/inv', channel_title: 'C', plan_title: 'P',
      duration_days: 30, access_ends_at: null, invite_expires_at: null, payment_id: '1', state: 'received', view: null,
      updated_at: new Date('2026-01-02T03:04:06Z'), state_entered_at: new Date('2026-01-02T03:04:06Z'),
    };
    const pool = recordingPool(row, calls);
    const token = signStatusToken('s', 'ord_1');
    for (const t of [token, undefined, 'wrong']) await readPaymentStatus(pool, 's', { orderId: 'ord_1', token: t });
    expect(calls).toHaveLength(3);
    for (const call of calls) {
      expect(call).toMatchObject({ name: STATUS_STATEMENT, values: ['ord_1'] });
      const text = (call as { text: string }).text;
      expect(text.trim()).toMatch(/^SELECT\b/);
      expect(text).not.toMatch(/\b(INSERT|UPDATE|DELETE|MERGE|FOR SHARE|nextval|pg_advisory\w*)\b/i);
    }
  });

  it('the cached reader: a miss is that one named SELECT, a hit no statement at all', async () => {
    const calls: unknown[] = [];
    const row = {
      order_created_at: new Date('2026-01-02T03:04:05.678Z'), price_usd: '12.50', invoice_url: 'https://np.example/inv', channel_title: 'C', plan_title: 'P',
      duration_days: 30, access_ends_at: null, invite_expires_at: null, payment_id: '1', state: 'received',
      view: { step: 'confirming', failure: null, access: { state: null, inviteLink: null, undeliverableReason: null }, np: { actuallyPaid: null, payAmount: null, payCurrency: null } },
      updated_at: new Date('2026-01-02T03:04:06Z'), state_entered_at: new Date('2026-01-02T03:04:06Z'),
    };
    const pool = recordingPool(row, calls);
    // A feed that is listening and never notifies: everything cacheable stays cached.
    const feed = { watch: () => () => {}, tap: (listener: JournalTapListener) => (listener.connection({ listening: true, generation: 1 }), () => {}) };
    const reader = createPaymentStatusReader({ pool, statusTokenSecret: 's', journalFeed: feed });
    const token = signStatusToken('s', 'ord_1');
    const answers = [];
    for (const t of [token, undefined, 'wrong', token]) answers.push(await reader.read({ orderId: 'ord_1', token: t }));
    reader.close();
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ name: STATUS_STATEMENT, values: ['ord_1'] });
    expect((calls[0] as { text: string }).text.trim()).toMatch(/^SELECT\b/);
    expect((calls[0] as { text: string }).text).not.toMatch(/\b(INSERT|UPDATE|DELETE|MERGE|FOR SHARE|nextval|pg_advisory\w*)\b/i);
    expect(answers.map((a) => a?.invoice_url)).toEqual(['https://np.example/inv', null, null, 'https://np.example/inv']);
  });

  it('is rate-limited per client: 429 once a client exceeds the limit, other clients unaffected', async () => {
    const { orderId } = await seedOrder(h);
    const from = (ip: string) => h.t.service.app.inject({ method: 'GET', url: `/api/payment-status?order_id=${orderId}`, remoteAddress: ip });
    let last = 0;
    for (let i = 0; i < 1501; i++) last = (await from('10.9.9.9')).statusCode;
    expect(last).toBe(429);
    const limited = await from('10.9.9.9');
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({ error: 'Too Many Requests' });
    expect((await from('10.9.9.10')).statusCode).toBe(200);
  });
});
