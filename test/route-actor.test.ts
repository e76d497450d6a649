import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { route as performRoute, routeInline } from '../src/actors/route/route.actor.js';
import { createChannel } from '../src/channels/channel-admin.service.js';
import { createChannelSchema } from '../src/channels/channel.schema.js';
import type { NpFacts, Route } from '../src/machines/payment.events.js';
import { findChannel } from '../src/channels/channels.repo.js';
import { findOrder, findOrderWithChannelClaiming, insertOrder, releaseOrderClaim } from '../src/orders/orders.repo.js';
import { createEngine } from '../src/persistence/apply-event.js';
import { paymentRow, startTestEngine, type TestEngine } from './support/engine.js';
import { recordingPool } from './support/statements.js';

let t: TestEngine;
let seq = 0;
const newPaymentId = () => `${Date.now()}${String(++seq).padStart(3, '0')}`;
const newOrderId = () => `ord_route_${++seq}`;

const WALLET = '0x52908400098527886E0F7030069857D2E4169EE7';

async function seedChannel(openChannelId: string, strategy: 'instant' | 'threshold', plans: { plan_id: string; price_usd: string }[]) {
  await createChannel(
    t.db.pool,
    createChannelSchema.parse({
      open_channel_id: openChannelId,
      closed_channel_id: `${openChannelId}0`,
      title: `channel ${openChannelId}`,
      wallet_address: WALLET,
      currency: 'usdt',
      network: 'eth',
      strategy,
      ...(strategy === 'threshold' ? { threshold_usd: '100' } : {}),
      platform_fee_percent: '10',
      plans: plans.map((p) => ({ ...p, title: p.plan_id, duration_days: 30 })),
    }),
  );
}

async function seedOrder(openChannelId: string, planId: string, priceUsd: string, buyer = '42') {
  const orderId = newOrderId();
  await insertOrder(t.db.pool, { orderId, buyerTelegramId: buyer, openChannelId, planId, priceUsd, source: 'api' });
  return orderId;
}

const paid = (facts: NpFacts): NpFacts => ({ payAmount: '10', actuallyPaid: '10', payCurrency: 'usdttrc20', priceCurrency: 'usd', ...facts });

/** A verified "finished" IPN for the payment; routing ran in the same transaction. */
async function pay(paymentId: string, facts: NpFacts) {
  await t.engine.applyEvent(paymentId, { type: 'np.finished', facts: paid(facts) }, { source: 'ipn' });
  return settled(paymentId);
}

async function settled(paymentId: string) {
  await vi.waitFor(async () => expect(['routed', 'needs_review']).toContain((await paymentRow(t.db, paymentId))?.state), { timeout: 20_000, interval: 25 });
  const row = (await paymentRow(t.db, paymentId))!;
  const { rows } = await t.db.pool.query<{ route: Route | null }>(`SELECT snapshot->'context'->'route' AS route FROM payments WHERE payment_id = $1`, [paymentId]);
  return { state: row.state, reason: row.review_reason, route: rows[0]!.route };
}

async function grantedTo(orderId: string) {
  const { rows } = await t.db.pool.query<{ granted_payment_id: string | null }>('SELECT granted_payment_id FROM orders WHERE order_id = $1', [orderId]);
  return rows[0]?.granted_payment_id ?? null;
}

beforeAll(async () => {
  // As the service runs it: routing inside the transaction that makes the payment confirmed (the
  // payout effects stay queued: routing is studied here, not the ledger).
  t = await startTestEngine({ inline: ['route'] });
  await seedChannel('-1001', 'instant', [{ plan_id: 'c1-month', price_usd: '9.99' }, { plan_id: 'c1-year', price_usd: '99' }]);
  await seedChannel('-1002', 'threshold', [{ plan_id: 'c2-month', price_usd: '20' }]);
});
afterAll(async () => {
  await t.close();
});

describe('route actor: orders', () => {
  it('routes a paid order: channel, plan, buyer, strategy, fee and owner share', async () => {
    const orderId = await seedOrder('-1001', 'c1-month', '9.99', '123456789');
    const paymentId = newPaymentId();
    const result = await pay(paymentId, { orderId, priceAmount: '9.99' });
    expect(result.state).toBe('routed');
    expect(result.route).toEqual({
      orderId,
      channelId: '-1001',
      planId: 'c1-month',
      buyerTelegramId: '123456789',
      strategy: 'instant',
      feeUsd: '0.999',
      ownerShareUsd: '8.991',
    });
    expect(await grantedTo(orderId)).toBe(paymentId);
  });

  it('routes a threshold channel with the threshold strategy', async () => {
    const orderId = await seedOrder('-1002', 'c2-month', '20');
    const result = await pay(newPaymentId(), { orderId, priceAmount: '20' });
    expect(result).toMatchObject({ state: 'routed', route: { strategy: 'threshold', feeUsd: '2', ownerShareUsd: '18' } });
  });

  it('gives the same answer when performed again for the same payment', async () => {
    const orderId = await seedOrder('-1001', 'c1-month', '9.99');
    const paymentId = newPaymentId();
    const first = await pay(paymentId, { orderId, priceAmount: '9.99' });
    expect(await performRoute(t.db.pool, paymentId)).toEqual({ type: 'route.done', route: first.route });
  });

  it('an accepted underpayment is split by what arrived (5 of 9.99 is worth 5), not by the price', async () => {
    const orderId = await seedOrder('-1001', 'c1-month', '9.99');
    const paymentId = newPaymentId();
    await t.engine.applyEvent(paymentId, { type: 'np.finished', facts: paid({ orderId, priceAmount: '9.99', payAmount: '9.99', actuallyPaid: '5' }) }, { source: 'ipn' });
    expect((await paymentRow(t.db, paymentId))?.state).toBe('underpaid');
    await t.engine.applyEvent(paymentId, { type: 'operator.accept_underpaid', by: 'test' }, { source: 'operator:test' });
    expect(await settled(paymentId)).toMatchObject({ state: 'routed', route: { orderId, ownerShareUsd: '4.5', feeUsd: '0.5' } });
  });

  it('parks a price below the plan in needs_review', async () => {
    const orderId = await seedOrder('-1001', 'c1-month', '9.99');
    const result = await pay(newPaymentId(), { orderId, priceAmount: '9.98' });
    expect(result.state).toBe('needs_review');
    expect(result.reason).toBe(`payment: price 9.98 USD is below the plan price 9.99 USD of order ${orderId}`);
    expect(await grantedTo(orderId)).toBeNull();
  });

  it('parks an unknown order id and a payment without order id', async () => {
    expect((await pay(newPaymentId(), { orderId: 'ord_never_created', priceAmount: '9.99' })).reason).toMatch(/^payment: unknown order "ord_never_created"/);
    expect((await pay(newPaymentId(), { priceAmount: '9.99' })).reason).toMatch(/carries no order_id/);
  });
});

describe('route actor: legacy PGP order ids', () => {
  it('creates the order from the IPN, matches the plan by price and routes it', async () => {
    const paymentId = newPaymentId();
    const result = await pay(paymentId, { orderId: 'PGP-777|-1001', priceAmount: '99.00' });
    expect(result.state).toBe('routed');
    expect(result.route).toMatchObject({ orderId: `PGP-777|-1001#${paymentId}`, channelId: '-1001', planId: 'c1-year', buyerTelegramId: '777', feeUsd: '9.9', ownerShareUsd: '89.1' });
    const { rows } = await t.db.pool.query(`SELECT source, plan_id, price_usd::text AS price, granted_payment_id FROM orders WHERE order_id = $1`, [`PGP-777|-1001#${paymentId}`]);
    expect(rows).toEqual([{ source: 'legacy-ipn', plan_id: 'c1-year', price: '99.00', granted_payment_id: paymentId }]);
    expect(await performRoute(t.db.pool, paymentId)).toEqual({ type: 'route.done', route: result.route });
  });

  it('treats a later purchase by the same buyer under the same legacy id as a new order (the old bot reused it)', async () => {
    const first = await pay(newPaymentId(), { orderId: 'PGP-778|-1001', priceAmount: '9.99' });
    const renewal = await pay(newPaymentId(), { orderId: 'PGP-778|-1001', priceAmount: '9.99' });
    expect([first.state, renewal.state]).toEqual(['routed', 'routed']);
    expect(first.route!.orderId).not.toBe(renewal.route!.orderId);
  });

  it('parks a legacy payment whose price matches no active plan, creating no order', async () => {
    const paymentId = newPaymentId();
    const result = await pay(paymentId, { orderId: 'PGP-779|-1001', priceAmount: '15' });
    expect(result.state).toBe('needs_review');
    expect(result.reason).toBe('payment: legacy order PGP-779|-1001: no active plan of channel -1001 costs 15 USD');
    expect(await grantedTo(`PGP-779|-1001#${paymentId}`)).toBeNull();
  });

  it('parks an unknown channel', async () => {
    const result = await pay(newPaymentId(), { orderId: 'PGP-780|-1009', priceAmount: '9.99' });
    expect(result.state).toBe('needs_review');
    expect(result.reason).toMatch(/^payment: unknown channel -1009/);
  });

  it('parks an unparseable legacy order id', async () => {
    const result = await pay(newPaymentId(), { orderId: 'PGP-abc|x', priceAmount: '9.99' });
    expect(result.state).toBe('needs_review');
    expect(result.reason).toMatch(/^payment: unparseable order id "PGP-abc\|x"/);
  });

  it('a legacy repeat deposit lands on its parent\'s order and is refused', async () => {
    const parent = newPaymentId();
    expect((await pay(parent, { orderId: 'PGP-781|-1001', priceAmount: '9.99' })).state).toBe('routed');
    const child = await pay(newPaymentId(), { orderId: 'PGP-781|-1001', parentPaymentId: parent, priceAmount: '9.99' });
    expect(child.reason).toBe(`payment: repeat deposit: order PGP-781|-1001#${parent} was already granted by payment ${parent}`);
  });
});

describe('route actor: repeat deposits', () => {
  it('a second payment for the same order is parked; the first keeps access', async () => {
    const orderId = await seedOrder('-1001', 'c1-month', '9.99');
    const first = newPaymentId();
    const second = newPaymentId();
    expect((await pay(first, { orderId, priceAmount: '9.99' })).state).toBe('routed');
    const repeat = await pay(second, { orderId, priceAmount: '9.99' });
    expect(repeat.state).toBe('needs_review');
    expect(repeat.reason).toBe(`payment: repeat deposit: order ${orderId} was already granted by payment ${first}`);
    expect(await grantedTo(orderId)).toBe(first);
    expect((await paymentRow(t.db, first))?.state).toBe('routed');
    // The first payment, routed again (a retried job), is still granted.
    expect((await performRoute(t.db.pool, first)).type).toBe('route.done');
  });

  it('a child payment (parent_payment_id) is parked, even without its own order_id', async () => {
    const orderId = await seedOrder('-1001', 'c1-month', '9.99');
    const parent = newPaymentId();
    expect((await pay(parent, { orderId, priceAmount: '9.99' })).state).toBe('routed');
    const withOrder = await pay(newPaymentId(), { orderId, parentPaymentId: parent, priceAmount: '9.99' });
    expect(withOrder.reason).toBe(`payment: repeat deposit: order ${orderId} was already granted by payment ${parent}`);
    const withoutOrder = await pay(newPaymentId(), { parentPaymentId: parent, priceAmount: '9.99' });
    expect(withoutOrder.reason).toBe(`payment: repeat deposit: order ${orderId} was already granted by payment ${parent}`);
    expect(await grantedTo(orderId)).toBe(parent);
  });

  it('20 concurrent route jobs for different payments of one order: exactly one is granted', async () => {
    const orderId = await seedOrder('-1001', 'c1-month', '9.99');
    const payments = Array.from({ length: 20 }, newPaymentId);
    await Promise.all(payments.map((id) => t.engine.applyEvent(id, { type: 'np.finished', facts: paid({ orderId, priceAmount: '9.99' }) }, { source: 'ipn' })));
    const results = await Promise.all(payments.map(settled));
    const routed = payments.filter((_, i) => results[i]!.state === 'routed');
    expect(routed).toHaveLength(1);
    expect(await grantedTo(orderId)).toBe(routed[0]);
    for (const r of results.filter((r) => r.state === 'needs_review')) {
      expect(r.reason).toBe(`payment: repeat deposit: order ${orderId} was already granted by payment ${routed[0]}`);
    }
  });

  it('20 overlapping performs of the claim itself: exactly one route.done', async () => {
    const orderId = await seedOrder('-1001', 'c1-month', '9.99');
    const payments = Array.from({ length: 20 }, newPaymentId);
    // The payment rows exist (as after an IPN) but no job runs for them: the performs below are the only claimants.
    for (const id of payments) {
      await t.engine.applyEvent(id, { type: 'np.waiting', facts: paid({ orderId, priceAmount: '9.99' }) }, { source: 'ipn' });
    }
    const events = await Promise.all(payments.map((id) => performRoute(t.db.pool, id)));
    expect(events.filter((e) => e.type === 'route.done')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'route.rejected' && e.reason.startsWith('repeat deposit'))).toHaveLength(19);
  });
});

describe('route actor: round trips', () => {
  it('the joined read answers what the order and channel reads answer, and claims as claimOrder does', async () => {
    for (const orderId of [await seedOrder('-1001', 'c1-month', '9.99'), await seedOrder('-1002', 'c2-month', '20')]) {
      const order = await findOrder(t.db.pool, orderId);
      const channel = await findChannel(t.db.pool, order!.openChannelId);
      const [first, second] = [newPaymentId(), newPaymentId()];
      // Free: granted to the first payment (the row as it was before the claim is answered).
      expect(await findOrderWithChannelClaiming(t.db.pool, orderId, first)).toEqual({ order, channel, claim: { claimed: true, took: true } });
      // Held: refused to another payment, naming the holder; granted again to the holder, which took nothing new.
      expect((await findOrderWithChannelClaiming(t.db.pool, orderId, second)).claim).toEqual({ claimed: false, grantedPaymentId: first, took: false });
      expect((await findOrderWithChannelClaiming(t.db.pool, orderId, first)).claim).toEqual({ claimed: true, took: false });
      // Taken back (a refused route), the order is free again.
      await releaseOrderClaim(t.db.pool, orderId, first);
      expect(await grantedTo(orderId)).toBeNull();
    }
    expect(await findOrderWithChannelClaiming(t.db.pool, 'ord_never_made', newPaymentId())).toEqual({ order: null, channel: null, claim: null });
  });

  it('routing inline reads the order and its channel and claims the order with one statement', async () => {
    const orderId = await seedOrder('-1001', 'c1-month', '9.99');
    const paymentId = newPaymentId();
    const { pool, sent } = recordingPool(t.db.pool);
    const engine = createEngine({ pool, inline: { route: routeInline } });
    expect(await engine.applyEvent(paymentId, { type: 'np.finished', facts: paid({ orderId, priceAmount: '9.99' }) }, { source: 'ipn' })).toMatchObject({ outcome: 'applied', state: 'routed' });
    // What routing sent inside the transition (the engine's own statements aside): no unnamed read.
    expect(sent.filter((s) => /^(order|channel|plan)-/.test(s) || s === 'SELECT')).toEqual(['order-with-channel+claim']);
    expect(await grantedTo(orderId)).toBe(paymentId);
  });

  it('a repeat deposit and an unknown order are refused from that one read, nothing claimed', async () => {
    const orderId = await seedOrder('-1001', 'c1-month', '9.99');
    const first = newPaymentId();
    expect((await pay(first, { orderId, priceAmount: '9.99' })).state).toBe('routed');
    const second = newPaymentId();
    await t.engine.applyEvent(second, { type: 'np.waiting', facts: paid({ orderId, priceAmount: '9.99' }) }, { source: 'ipn' });
    const { pool, sent } = recordingPool(t.db.pool);
    expect(await performRoute(pool, second)).toEqual({ type: 'route.rejected', reason: `repeat deposit: order ${orderId} was already granted by payment ${first}` });
    // The claim in the read fails and the read names the holder: nothing more is asked.
    expect(sent).toEqual(['route-read-view', 'order-with-channel+claim']);
    expect(await grantedTo(orderId)).toBe(first);

    const unknown = newPaymentId();
    await t.engine.applyEvent(unknown, { type: 'np.waiting', facts: paid({ orderId: 'ord_never_made', priceAmount: '9.99' }) }, { source: 'ipn' });
    sent.length = 0;
    expect(await performRoute(pool, unknown)).toMatchObject({ type: 'route.rejected', reason: expect.stringMatching(/^unknown order "ord_never_made"/) });
    expect(sent).toEqual(['route-read-view', 'order-with-channel+claim']);
  });

  it('a payment refused after the read (a price below the plan) releases the claim the read made, in the same transaction', async () => {
    const orderId = await seedOrder('-1001', 'c1-month', '9.99');
    const { pool, sent } = recordingPool(t.db.pool);
    const engine = createEngine({ pool, inline: { route: routeInline } });
    expect(await engine.applyEvent(newPaymentId(), { type: 'np.finished', facts: paid({ orderId, priceAmount: '9.98' }) }, { source: 'ipn' })).toMatchObject({ outcome: 'applied', state: 'needs_review' });
    expect(sent.filter((s) => /^order-/.test(s))).toEqual(['order-with-channel+claim', 'order-release-claim']);
    expect(await grantedTo(orderId)).toBeNull();
    // The order stays free for a payment of the right amount.
    const paymentId = newPaymentId();
    expect(await engine.applyEvent(paymentId, { type: 'np.finished', facts: paid({ orderId, priceAmount: '9.99' }) }, { source: 'ipn' })).toMatchObject({ outcome: 'applied', state: 'routed' });
    expect(await grantedTo(orderId)).toBe(paymentId);
  });
});
