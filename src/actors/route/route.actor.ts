import type pg from 'pg';
import { findChannel, type ChannelRow } from '../../channels/channels.repo.js';
import { findActivePlanByPrice } from '../../channels/plans.repo.js';
import { gte, percentOf, sub, toDecimalString } from '../../domain/money.js';
import type { NpFacts, PaymentEvent } from '../../machines/payment.events.js';
import type { PaymentView } from '../../machines/payment.view.js';
import { isLegacyOrderId, legacyOrderKey, parseLegacyOrderId } from '../../orders/legacy-order-id.js';
import { claimOrder, findOrder, insertOrderIfAbsent, type OrderRow } from '../../orders/orders.repo.js';
import type { EffectActor } from '../effect-actor.js';

// Effect "route": decides who gets access to which channel and how the owner is paid, and grants the
// order to this payment. Anything we cannot act on is a rejection with a readable reason (the machine
// parks the payment in needs_review); database trouble throws and the job retries.
//
// Re-running it for the same payment gives the same answer: the legacy order is insert-if-absent, and
// the claim succeeds again for the payment that already holds the order. Checks come before the claim,
// so a rejected payment never holds an order. A retry by an operator (after adding the missing channel
// or plan) routes with the configuration as it is then.

interface PaymentFacts {
  paymentId: string;
  orderId: string | null;
  np: NpFacts;
}

type Resolved = { order: OrderRow; channel: ChannelRow } | { reject: string };

const reject = (reason: string): PaymentEvent => ({ type: 'route.rejected', reason });

async function readPayment(pool: pg.Pool, paymentId: string): Promise<PaymentFacts> {
  const { rows } = await pool.query<{ view: PaymentView }>({ name: 'route-read-view', text: 'SELECT view FROM payments WHERE payment_id = $1', values: [paymentId] });
  const view = rows[0]?.view;
  // A route job is enqueued in the transaction that writes the payment, so a missing row is not a state to decide on.
  if (!view) throw new Error(`payment ${paymentId} not found`);
  return { paymentId, orderId: view.orderId, np: view.np };
}

/** A repeat deposit may arrive without order_id; it belongs to its parent's order. */
async function orderIdOf(pool: pg.Pool, payment: PaymentFacts): Promise<string | null> {
  if (payment.orderId) return payment.orderId;
  if (!payment.np.parentPaymentId) return null;
  const { rows } = await pool.query<{ order_id: string | null }>('SELECT order_id FROM payments WHERE payment_id = $1', [payment.np.parentPaymentId]);
  return rows[0]?.order_id ?? null;
}

const isUsd = (currency: string | null | undefined) => currency?.toLowerCase() === 'usd';

async function resolveLegacy(pool: pg.Pool, payment: PaymentFacts, legacyId: string): Promise<Resolved> {
  const ref = parseLegacyOrderId(legacyId);
  if (!ref) return { reject: `unparseable order id "${legacyId}": expected PGP-{user_id}|{open_channel_id}` };
  const rootPaymentId = payment.np.parentPaymentId ?? payment.paymentId;
  const key = legacyOrderKey(legacyId, rootPaymentId);
  const existing = await findOrder(pool, key);
  const channel = await findChannel(pool, ref.openChannelId);
  if (!channel) return { reject: `unknown channel ${ref.openChannelId} (legacy order ${legacyId}): add it with POST /admin/channels, then retry` };
  if (existing) return { order: existing, channel };

  const { priceAmount, priceCurrency } = payment.np;
  if (!priceAmount) return { reject: `legacy order ${legacyId}: NowPayments did not report the price, so no plan can be matched` };
  if (!isUsd(priceCurrency)) return { reject: `legacy order ${legacyId}: priced in ${priceCurrency ?? 'an unknown currency'}, plans are priced in USD` };
  const plan = await findActivePlanByPrice(pool, channel.openChannelId, priceAmount);
  if (!plan) {
    return { reject: `legacy order ${legacyId}: no active plan of channel ${channel.openChannelId} costs ${toDecimalString(priceAmount)} USD` };
  }
  const order = await insertOrderIfAbsent(pool, {
    orderId: key,
    buyerTelegramId: ref.buyerTelegramId,
    openChannelId: channel.openChannelId,
    planId: plan.planId,
    priceUsd: plan.priceUsd,
    source: 'legacy-ipn',
  });
  return { order, channel };
}

async function resolve(pool: pg.Pool, payment: PaymentFacts): Promise<Resolved> {
  const orderId = await orderIdOf(pool, payment);
  if (!orderId) return { reject: 'the payment carries no order_id, so it cannot be matched to an order' };
  if (isLegacyOrderId(orderId)) return resolveLegacy(pool, payment, orderId);
  const order = await findOrder(pool, orderId);
  if (!order) return { reject: `unknown order "${orderId}": no such order here, and not a legacy PGP-{user_id}|{open_channel_id} id` };
  const channel = await findChannel(pool, order.openChannelId);
  // Orders reference channels, so this only happens if a channel row was removed by hand.
  if (!channel) return { reject: `unknown channel ${order.openChannelId} of order ${order.orderId}` };
  return { order, channel };
}

export async function route(pool: pg.Pool, paymentId: string): Promise<PaymentEvent> {
  const payment = await readPayment(pool, paymentId);
  const resolved = await resolve(pool, payment);
  if ('reject' in resolved) return reject(resolved.reject);
  const { order, channel } = resolved;

  const repeat = (holder: string) => reject(`repeat deposit: order ${order.orderId} was already granted by payment ${holder}`);
  // Checked before the amount so a repeat deposit is reported as what it is.
  if (order.grantedPaymentId !== null && order.grantedPaymentId !== paymentId) return repeat(order.grantedPaymentId);
  if (!order.planId) return reject(`order ${order.orderId} has no plan`);

  const { priceAmount, priceCurrency } = payment.np;
  if (!priceAmount || !isUsd(priceCurrency)) {
    return reject(`order ${order.orderId}: NowPayments reported a price of ${priceAmount ?? '?'} ${priceCurrency ?? '?'}, expected ${toDecimalString(order.priceUsd)} USD`);
  }
  if (!gte(priceAmount, order.priceUsd)) {
    return reject(`price ${toDecimalString(priceAmount)} USD is below the plan price ${toDecimalString(order.priceUsd)} USD of order ${order.orderId}`);
  }

  const claim = await claimOrder(pool, order.orderId, paymentId);
  if (!claim.claimed) return repeat(claim.grantedPaymentId);

  const price = toDecimalString(order.priceUsd);
  const feeUsd = percentOf(price, channel.platformFeePercent);
  return {
    type: 'route.done',
    route: {
      orderId: order.orderId,
      channelId: channel.openChannelId,
      planId: order.planId,
      buyerTelegramId: order.buyerTelegramId,
      strategy: channel.strategy,
      ownerShareUsd: sub(price, feeUsd),
      feeUsd,
    },
  };
}

export function createRouteActor(deps: { pool: pg.Pool }): EffectActor {
  return {
    effect: 'route',
    perform: (job) => route(deps.pool, job.paymentId),
  };
}
