import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { splitOutcome, splitUsd } from './payout-split.js';
import { decideLegacyOrder, decideRoute, legacyRootPaymentId, matchOrder, reasons, usdPriceOf, type ChannelFacts, type OrderFacts } from './routing.js';
import { fromBaseUnits } from './units.js';

// The routing rules without a database; test/route-actor.test.ts drives the same rules through the
// actor, Postgres and the order claim.

const channel: ChannelFacts = { openChannelId: '-1001', strategy: 'instant', platformFeePercent: '10.00' };
const order = (over: Partial<OrderFacts> = {}): OrderFacts => ({
  orderId: 'ord_1',
  buyerTelegramId: '42',
  openChannelId: '-1001',
  planId: 'month',
  priceUsd: '9.99',
  grantedPaymentId: null,
  ...over,
});
const paid = { priceAmount: '9.99', priceCurrency: 'usd', payAmount: '10', actuallyPaid: '10' };

describe('decideRoute', () => {
  it('routes a fully paid order: fee and owner share of the price', () => {
    expect(decideRoute({ paymentId: 'p1', order: order(), channel, money: paid })).toEqual({
      route: { orderId: 'ord_1', channelId: '-1001', planId: 'month', buyerTelegramId: '42', strategy: 'instant', feeUsd: '0.999', ownerShareUsd: '8.991' },
    });
  });

  it('splits what actually arrived: an accepted 5-of-9.99 underpayment is worth ~5, not 9.99', () => {
    const money = { ...paid, payAmount: '9.99', actuallyPaid: '5' };
    const decision = decideRoute({ paymentId: 'p1', order: order(), channel, money });
    expect(decision).toMatchObject({ route: { ownerShareUsd: '4.5', feeUsd: '0.5' } });
    const third = decideRoute({ paymentId: 'p1', order: order(), channel, money: { ...paid, payAmount: '3', actuallyPaid: '1' } });
    // 9.99 / 3 = 3.33 exactly; the owner's 90 % is rounded down to 1e-8 USD, the platform keeps the rest.
    expect(third).toMatchObject({ route: { ownerShareUsd: '2.997', feeUsd: '0.333' } });
  });

  it('an overpayment is worth the price, and without pay/paid amounts the price is the value', () => {
    expect(decideRoute({ paymentId: 'p1', order: order(), channel, money: { ...paid, actuallyPaid: '12' } })).toMatchObject({ route: { ownerShareUsd: '8.991' } });
    expect(decideRoute({ paymentId: 'p1', order: order(), channel, money: { priceAmount: '20', priceCurrency: 'USD' } })).toMatchObject({
      route: { ownerShareUsd: '18', feeUsd: '2' },
    });
  });

  it('refuses a price below the order, or not in USD, with the wording operators see', () => {
    expect(decideRoute({ paymentId: 'p1', order: order(), channel, money: { ...paid, priceAmount: '9.98' } })).toEqual({
      reject: 'price 9.98 USD is below the plan price 9.99 USD of order ord_1',
    });
    expect(decideRoute({ paymentId: 'p1', order: order(), channel, money: { ...paid, priceCurrency: 'eur' } })).toEqual({
      reject: 'order ord_1: NowPayments reported a price of 9.99 eur, expected 9.99 USD',
    });
    expect(decideRoute({ paymentId: 'p1', order: order(), channel, money: { priceCurrency: 'usd' } })).toEqual({
      reject: 'order ord_1: NowPayments reported a price of ? usd, expected 9.99 USD',
    });
    expect(decideRoute({ paymentId: 'p1', order: order(), channel, money: { ...paid, priceAmount: '10.00' } })).toHaveProperty('route');
  });

  it('a repeat deposit is reported as such, before the amount; the holder itself is routed again', () => {
    const held = order({ grantedPaymentId: 'p0' });
    expect(decideRoute({ paymentId: 'p1', order: held, channel, money: { ...paid, priceAmount: '1' } })).toEqual({
      reject: 'repeat deposit: order ord_1 was already granted by payment p0',
    });
    expect(decideRoute({ paymentId: 'p0', order: held, channel, money: paid })).toHaveProperty('route');
  });

  it('an order without a plan, and amounts that cannot be split, are refused', () => {
    expect(decideRoute({ paymentId: 'p1', order: order({ planId: null }), channel, money: paid })).toEqual({ reject: 'order ord_1 has no plan' });
    expect(decideRoute({ paymentId: 'p1', order: order(), channel, money: { ...paid, payAmount: '-1' } })).toMatchObject({
      reject: expect.stringMatching(/^order ord_1: the reported amounts cannot be split: payAmount is not a non-negative decimal/),
    });
    expect(decideRoute({ paymentId: 'p1', order: order(), channel: { ...channel, platformFeePercent: '2.555' }, money: paid })).toMatchObject({
      reject: expect.stringMatching(/cannot be split: fee percent/),
    });
  });
});

describe('matchOrder', () => {
  it('needs an order id, an order and its channel', () => {
    expect(matchOrder({ orderId: null, order: null, channel: null })).toEqual({ reject: 'the payment carries no order_id, so it cannot be matched to an order' });
    expect(matchOrder({ orderId: 'ord_x', order: null, channel: null })).toEqual({
      reject: 'unknown order "ord_x": no such order here, and not a legacy PGP-{user_id}|{open_channel_id} id',
    });
    expect(matchOrder({ orderId: 'ord_1', order: order(), channel: null })).toEqual({ reject: 'unknown channel -1001 of order ord_1' });
    expect(matchOrder({ orderId: 'ord_1', order: order(), channel })).toEqual({ order: order(), channel });
  });
});

describe('decideLegacyOrder', () => {
  const base = {
    legacyId: 'PGP-777|-1001',
    ref: { buyerTelegramId: '777', openChannelId: '-1001' },
    orderKey: 'PGP-777|-1001#p1',
    existing: null,
    channel,
    plan: { planId: 'year', priceUsd: '99.00' },
    money: { priceAmount: '99.00', priceCurrency: 'usd' },
  };

  it('creates the order for the plan at the reported USD price', () => {
    expect(decideLegacyOrder(base)).toEqual({
      insert: { orderId: 'PGP-777|-1001#p1', buyerTelegramId: '777', openChannelId: '-1001', planId: 'year', priceUsd: '99.00', source: 'legacy-ipn' },
      channel,
    });
  });

  it('reuses the order already made for this root payment (a retry), whatever the price says', () => {
    const existing = order({ orderId: 'PGP-777|-1001#p1' });
    expect(decideLegacyOrder({ ...base, existing, plan: null, money: {} })).toEqual({ order: existing, channel });
  });

  it('refuses with a reason for each thing missing, in order', () => {
    expect(decideLegacyOrder({ ...base, legacyId: 'PGP-abc|x', ref: null })).toEqual({ reject: 'unparseable order id "PGP-abc|x": expected PGP-{user_id}|{open_channel_id}' });
    expect(decideLegacyOrder({ ...base, channel: null })).toEqual({
      reject: 'unknown channel -1001 (legacy order PGP-777|-1001): add it with POST /admin/channels, then retry',
    });
    expect(decideLegacyOrder({ ...base, money: {} })).toEqual({ reject: 'legacy order PGP-777|-1001: NowPayments did not report the price, so no plan can be matched' });
    expect(decideLegacyOrder({ ...base, money: { priceAmount: '99', priceCurrency: 'eur' } })).toEqual({
      reject: 'legacy order PGP-777|-1001: priced in eur, plans are priced in USD',
    });
    expect(decideLegacyOrder({ ...base, money: { priceAmount: '99' } })).toEqual({ reject: 'legacy order PGP-777|-1001: priced in an unknown currency, plans are priced in USD' });
    expect(decideLegacyOrder({ ...base, plan: null, money: { priceAmount: '15.0', priceCurrency: 'USD' } })).toEqual({
      reject: 'legacy order PGP-777|-1001: no active plan of channel -1001 costs 15 USD',
    });
  });

  it('a repeat deposit is keyed by its parent, so parent and child share one order', () => {
    expect(legacyRootPaymentId('child', 'parent')).toBe('parent');
    expect(legacyRootPaymentId('p1', null)).toBe('p1');
    expect(legacyRootPaymentId('p1', undefined)).toBe('p1');
  });

  it('looks for a plan only at a reported USD price', () => {
    expect(usdPriceOf({ priceAmount: '9.99', priceCurrency: 'USD' })).toBe('9.99');
    expect(usdPriceOf({ priceAmount: '9.99', priceCurrency: 'btc' })).toBeNull();
    expect(usdPriceOf({ priceCurrency: 'usd' })).toBeNull();
  });
});

describe('reasons', () => {
  it('repeat deposit wording (the claim lost to another payment says the same)', () => {
    expect(reasons.repeatDeposit('ord_1', 'p0')).toBe('repeat deposit: order ord_1 was already granted by payment p0');
  });
});

describe('splitUsd', () => {
  const usd = fc.tuple(fc.bigInt({ min: 0n, max: 10n ** 12n }), fc.integer({ min: 0, max: 8 })).map(([u, d]) => fromBaseUnits(u, d));
  const maybe = fc.option(usd, { nil: null });
  const fee = fc.bigInt({ min: 0n, max: 9_999n }).map((bp) => fromBaseUnits(bp, 2));

  it("is exactly splitOutcome's USD part, for any amounts", () => {
    fc.assert(
      fc.property(fee, usd, maybe, maybe, (feePercent, priceAmount, payAmount, actuallyPaid) => {
        const full = splitOutcome({ outcomeAmount: '1', outcomeDecimals: 18, feePercent, priceAmount, payAmount, actuallyPaid });
        expect(splitUsd({ feePercent, priceAmount, payAmount, actuallyPaid })).toEqual({ usdValue: full.usdValue, ownerUsd: full.ownerUsd, feeUsd: full.feeUsd });
      }),
    );
  });
});
