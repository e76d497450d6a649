import { gte, toDecimalString, type DecimalString } from './money.js';
import { splitUsd } from './payout-split.js';

// The rules of routing a paid payment: which order it pays for, whether that order may be granted to
// it, and how the owner is paid. Pure: the route actor (src/actors/route/route.actor.ts) does the
// reads, the atomic claim of the order and the legacy order insert, and asks this module what to do
// with what it read. Every "no" is a readable reason an operator acts on (the payment parks in
// needs_review with it); the wording is asserted by test/route-actor.test.ts.

export type Rejection = { reject: string };

/** What NowPayments reported about the money (the payment's read model, np.*). */
export interface PaymentMoney {
  priceAmount?: DecimalString | null;
  priceCurrency?: string | null;
  payAmount?: DecimalString | null;
  actuallyPaid?: DecimalString | null;
}

/** The order fields routing decides on (a subset of orders.repo's OrderRow). */
export interface OrderFacts {
  orderId: string;
  buyerTelegramId: string;
  openChannelId: string;
  planId: string | null;
  /** The price when ordered, USD. */
  priceUsd: DecimalString;
  grantedPaymentId: string | null;
}

/** The channel fields routing decides on (a subset of channels.repo's ChannelRow). */
export interface ChannelFacts {
  openChannelId: string;
  strategy: 'instant' | 'threshold';
  platformFeePercent: DecimalString;
}

/** The legacy order id's parts (orders/legacy-order-id.ts parses them). */
export interface LegacyRef {
  buyerTelegramId: string;
  openChannelId: string;
}

/** What route.done carries (structurally the machine's Route). */
export interface RouteDecision {
  orderId: string;
  channelId: string;
  planId: string;
  buyerTelegramId: string;
  strategy: 'instant' | 'threshold';
  /** The owner's share of the USD value received, after the platform fee. */
  ownerShareUsd: DecimalString;
  feeUsd: DecimalString;
}

const LEGACY_SHAPE = 'PGP-{user_id}|{open_channel_id}';

export const reasons = {
  noOrderId: () => 'the payment carries no order_id, so it cannot be matched to an order',
  unknownOrder: (orderId: string) => `unknown order "${orderId}": no such order here, and not a legacy ${LEGACY_SHAPE} id`,
  // Orders reference channels, so this only happens if a channel row was removed by hand.
  unknownChannelOfOrder: (channelId: string, orderId: string) => `unknown channel ${channelId} of order ${orderId}`,
  unparseableLegacy: (legacyId: string) => `unparseable order id "${legacyId}": expected ${LEGACY_SHAPE}`,
  unknownLegacyChannel: (channelId: string, legacyId: string) =>
    `unknown channel ${channelId} (legacy order ${legacyId}): add it with POST /admin/channels, then retry`,
  legacyWithoutPrice: (legacyId: string) => `legacy order ${legacyId}: NowPayments did not report the price, so no plan can be matched`,
  legacyNotUsd: (legacyId: string, currency: string | null | undefined) =>
    `legacy order ${legacyId}: priced in ${currency ?? 'an unknown currency'}, plans are priced in USD`,
  legacyNoPlan: (legacyId: string, channelId: string, price: DecimalString) =>
    `legacy order ${legacyId}: no active plan of channel ${channelId} costs ${toDecimalString(price)} USD`,
  repeatDeposit: (orderId: string, holder: string) => `repeat deposit: order ${orderId} was already granted by payment ${holder}`,
  orderWithoutPlan: (orderId: string) => `order ${orderId} has no plan`,
  priceNotUsd: (orderId: string, money: PaymentMoney, orderPriceUsd: DecimalString) =>
    `order ${orderId}: NowPayments reported a price of ${money.priceAmount ?? '?'} ${money.priceCurrency ?? '?'}, expected ${toDecimalString(orderPriceUsd)} USD`,
  priceBelowPlan: (orderId: string, price: DecimalString, orderPriceUsd: DecimalString) =>
    `price ${toDecimalString(price)} USD is below the plan price ${toDecimalString(orderPriceUsd)} USD of order ${orderId}`,
  unsplittable: (orderId: string, message: string) => `order ${orderId}: the reported amounts cannot be split: ${message}`,
};

export const isUsd = (currency: string | null | undefined): boolean => currency?.toLowerCase() === 'usd';

/** The price NowPayments reported, when it is a USD price (the only kind plans and orders are in). */
export function usdPriceOf(money: PaymentMoney): DecimalString | null {
  return money.priceAmount && isUsd(money.priceCurrency) ? money.priceAmount : null;
}

/**
 * A repeat deposit (a child payment, parent_payment_id set) belongs to its parent's order; a legacy
 * order is keyed by the root payment, so parent and child share one order and only one is granted.
 */
export function legacyRootPaymentId(paymentId: string, parentPaymentId: string | null | undefined): string {
  return parentPaymentId ?? paymentId;
}

/** An order id of ours: it must name an order, and that order a channel. */
export function matchOrder<O extends OrderFacts, C extends ChannelFacts>(found: {
  orderId: string | null;
  order: O | null;
  channel: C | null;
}): { order: O; channel: C } | Rejection {
  if (!found.orderId) return { reject: reasons.noOrderId() };
  if (!found.order) return { reject: reasons.unknownOrder(found.orderId) };
  if (!found.channel) return { reject: reasons.unknownChannelOfOrder(found.order.openChannelId, found.order.orderId) };
  return { order: found.order, channel: found.channel };
}

/** The fields of an order created from a legacy IPN. */
export interface LegacyOrderToInsert {
  orderId: string;
  buyerTelegramId: string;
  openChannelId: string;
  planId: string;
  priceUsd: DecimalString;
  source: 'legacy-ipn';
}

/**
 * A legacy PGP-{user_id}|{open_channel_id} order: the channel must exist; an order already made for
 * this root payment is reused (a retry); otherwise the plan is the channel's active plan at the USD
 * price NowPayments reported, and the order is to be created. `plan` is what the actor found for
 * usdPriceOf(money) (it looks only when there is such a price and no order yet).
 */
export function decideLegacyOrder<O extends OrderFacts, C extends ChannelFacts>(found: {
  legacyId: string;
  ref: LegacyRef | null;
  orderKey: string;
  existing: O | null;
  channel: C | null;
  plan: { planId: string; priceUsd: DecimalString } | null;
  money: PaymentMoney;
}): { order: O; channel: C } | { insert: LegacyOrderToInsert; channel: C } | Rejection {
  const { legacyId, ref, channel, money } = found;
  if (!ref) return { reject: reasons.unparseableLegacy(legacyId) };
  if (!channel) return { reject: reasons.unknownLegacyChannel(ref.openChannelId, legacyId) };
  if (found.existing) return { order: found.existing, channel };
  if (!money.priceAmount) return { reject: reasons.legacyWithoutPrice(legacyId) };
  if (!isUsd(money.priceCurrency)) return { reject: reasons.legacyNotUsd(legacyId, money.priceCurrency) };
  if (!found.plan) return { reject: reasons.legacyNoPlan(legacyId, channel.openChannelId, money.priceAmount) };
  return {
    insert: {
      orderId: found.orderKey,
      buyerTelegramId: ref.buyerTelegramId,
      openChannelId: channel.openChannelId,
      planId: found.plan.planId,
      priceUsd: found.plan.priceUsd,
      source: 'legacy-ipn',
    },
    channel,
  };
}

/**
 * Whether this payment may be granted the order, and the route if so. A repeat deposit is checked
 * before the amount so it is reported as what it is. The owner's share and the fee are the split of
 * the USD value that actually arrived (an accepted 5-of-9.99 underpayment is worth ~5, not 9.99),
 * by the rule of domain/payout-split.ts. The actor still has to win the order's claim.
 */
export function decideRoute(input: { paymentId: string; order: OrderFacts; channel: ChannelFacts; money: PaymentMoney }): { route: RouteDecision } | Rejection {
  const { paymentId, order, channel, money } = input;
  if (order.grantedPaymentId !== null && order.grantedPaymentId !== paymentId) return { reject: reasons.repeatDeposit(order.orderId, order.grantedPaymentId) };
  if (!order.planId) return { reject: reasons.orderWithoutPlan(order.orderId) };
  const price = usdPriceOf(money);
  if (!price) return { reject: reasons.priceNotUsd(order.orderId, money, order.priceUsd) };
  if (!gte(price, order.priceUsd)) return { reject: reasons.priceBelowPlan(order.orderId, price, order.priceUsd) };
  let split: { ownerUsd: DecimalString; feeUsd: DecimalString };
  try {
    split = splitUsd({ feePercent: channel.platformFeePercent, priceAmount: price, payAmount: money.payAmount, actuallyPaid: money.actuallyPaid });
  } catch (error) {
    return { reject: reasons.unsplittable(order.orderId, (error as Error).message) };
  }
  return {
    route: {
      orderId: order.orderId,
      channelId: channel.openChannelId,
      planId: order.planId,
      buyerTelegramId: order.buyerTelegramId,
      strategy: channel.strategy,
      ownerShareUsd: split.ownerUsd,
      feeUsd: split.feeUsd,
    },
  };
}
