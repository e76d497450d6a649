import { findChannel, rememberChannel, type ChannelRow } from '../../channels/channels.repo.js';
import { findActivePlanByPrice } from '../../channels/plans.repo.js';
import { decideLegacyOrder, decideRoute, legacyRootPaymentId, matchOrder, reasons, usdPriceOf, type Rejection } from '../../domain/routing.js';
import type { NpFacts, PaymentEvent } from '../../machines/payment.events.js';
import type { PaymentView } from '../../machines/payment.view.js';
import type { PaymentSnapshot } from '../../machines/payment.step.js';
import type { InlineEffect, TransitionScope } from '../../persistence/apply-event.js';
import type { Queryable } from '../../persistence/transaction.js';
import { isLegacyOrderId, legacyOrderKey, parseLegacyOrderId } from '../../orders/legacy-order-id.js';
import { claimOrder, findOrder, findOrderWithChannelClaiming, insertOrderIfAbsent, releaseOrderClaim, type ClaimResult, type OrderRow } from '../../orders/orders.repo.js';
import type { EffectActor } from '../effect-actor.js';

// Effect "route": decides who gets access to which channel and how the owner is paid, and grants the
// order to this payment. The rules (price, repeat deposits, legacy orders, the owner's share, the
// wording of every rejection) are pure, in src/domain/routing.ts; this file only reads what they need,
// claims the order atomically and inserts a legacy order. A rejection parks the payment in
// needs_review with its reason.
//
// It needs nothing but our own tables, so it is not a job: the engine runs it inside the transaction
// that makes the payment confirmed (routeInline), and np.finished, route.done and the invite and
// payout jobs commit together — one hop, no queue wait. Database trouble fails that whole transition,
// which its sender retries (an IPN is stored first and re-applied; an operator sees the error).
//
// Re-running it for the same payment gives the same answer: the legacy order is insert-if-absent, and
// the claim succeeds again for the payment that already holds the order. A rejected payment never
// holds an order: an order named by the payment is claimed by the statement that reads it (one round
// trip), and a check that refuses the payment takes that claim back in the same transaction, before
// anyone can see it; a legacy order is claimed after the checks. A retry by an operator (after adding
// the missing channel or plan) routes with the configuration as it is then.

interface PaymentFacts {
  paymentId: string;
  orderId: string | null;
  np: NpFacts;
}

type Resolved = { order: OrderRow; channel: ChannelRow } | Rejection;

/** The order claimed while it was read (an order named by the payment), or null: claimed after the checks (a legacy order). */
type EarlyClaim = (ClaimResult & { took: boolean; orderId: string }) | null;

const reject = (reason: string): PaymentEvent => ({ type: 'route.rejected', reason });

async function readPayment(db: Queryable, paymentId: string): Promise<PaymentFacts> {
  const { rows } = await db.query<{ view: PaymentView }>({ name: 'route-read-view', text: 'SELECT view FROM payments WHERE payment_id = $1', values: [paymentId] });
  const view = rows[0]?.view;
  // A route job is enqueued in the transaction that writes the payment, so a missing row is not a state to decide on.
  if (!view) throw new Error(`payment ${paymentId} not found`);
  return { paymentId, orderId: view.orderId, np: view.np };
}

/** A repeat deposit may arrive without order_id; it belongs to its parent's order. */
async function orderIdOf(db: Queryable, payment: PaymentFacts): Promise<string | null> {
  if (payment.orderId) return payment.orderId;
  if (!payment.np.parentPaymentId) return null;
  const { rows } = await db.query<{ order_id: string | null }>('SELECT order_id FROM payments WHERE payment_id = $1', [payment.np.parentPaymentId]);
  return rows[0]?.order_id ?? null;
}

async function resolveLegacy(db: Queryable, payment: PaymentFacts, legacyId: string): Promise<Resolved> {
  const ref = parseLegacyOrderId(legacyId);
  const orderKey = legacyOrderKey(legacyId, legacyRootPaymentId(payment.paymentId, payment.np.parentPaymentId));
  const existing = ref ? await findOrder(db, orderKey) : null;
  const channel = ref ? await findChannel(db, ref.openChannelId) : null;
  const price = channel && !existing ? usdPriceOf(payment.np) : null;
  const plan = channel && price ? await findActivePlanByPrice(db, channel.openChannelId, price) : null;
  const decision = decideLegacyOrder({ legacyId, ref, orderKey, existing, channel, plan, money: payment.np });
  if (!('insert' in decision)) return decision;
  return { order: await insertOrderIfAbsent(db, decision.insert), channel: decision.channel };
}

async function resolve(db: Queryable, payment: PaymentFacts): Promise<{ resolved: Resolved; claim: EarlyClaim }> {
  const orderId = await orderIdOf(db, payment);
  if (orderId && isLegacyOrderId(orderId)) return { resolved: await resolveLegacy(db, payment, orderId), claim: null };
  if (!orderId) return { resolved: matchOrder<OrderRow, ChannelRow>({ orderId, order: null, channel: null }), claim: null };
  // The order, its channel and the claim in one statement: two round trips less inside the confirming
  // transaction. The claim is kept only if every check below passes (else released in this transaction).
  const { order, channel, claim } = await findOrderWithChannelClaiming(db, orderId, payment.paymentId);
  return { resolved: matchOrder({ orderId, order, channel }), claim: claim && { ...claim, orderId } };
}

/** Routes the payment as it is stored (a route job queued before routing ran inline, and tests). */
export async function route(db: Queryable, paymentId: string): Promise<PaymentEvent> {
  return decide(db, await readPayment(db, paymentId));
}

/**
 * Routing inside the transaction that makes the payment confirmed (the engine's inline effect): the
 * facts come from the snapshot being written, so nothing is read back, and the claim commits or rolls
 * back with the transition itself.
 */
export const routeInline: InlineEffect = {
  // Nothing after routing can run without a route: its failure fails the transition, which its sender retries.
  onError: 'fail',
  perform: (tx, snapshot: PaymentSnapshot, { reads }) => decide(tx, { paymentId: snapshot.context.paymentId, orderId: snapshot.context.orderId, np: snapshot.context.np }, reads),
};

async function decide(db: Queryable, payment: PaymentFacts, reads?: TransitionScope['reads']): Promise<PaymentEvent> {
  const { resolved, claim: early } = await resolve(db, payment);
  // A rejected payment never holds an order: a claim made with the read is taken back.
  const refuse = async (reason: string) => {
    if (early?.took) await releaseOrderClaim(db, early.orderId, payment.paymentId);
    return reject(reason);
  };
  if ('reject' in resolved) return refuse(resolved.reject);
  const { order, channel } = resolved;
  // The owner's credit, decided next in the same transition, needs the same channel row.
  if (reads) rememberChannel(reads, channel);

  const decision = decideRoute({ paymentId: payment.paymentId, order, channel, money: payment.np });
  if ('reject' in decision) return refuse(decision.reject);

  const claim = early ?? (await claimOrder(db, order.orderId, payment.paymentId));
  if (!claim.claimed) return reject(reasons.repeatDeposit(order.orderId, claim.grantedPaymentId));
  return { type: 'route.done', route: decision.route };
}

// Routing runs inline (routeInline, wired in src/service.ts); this worker only drains route jobs queued
// by a version that still routed in a job.
export function createRouteActor(deps: { pool: Queryable }): EffectActor {
  return {
    effect: 'route',
    perform: (job) => route(deps.pool, job.paymentId),
  };
}
