import type { DecimalString } from '../domain/money.js';

// Every NowPayments status becomes its own event type, so the statechart says in one place which
// status is meaningful in which state; anything not listed there is ignored (a replay or a stale status).
export const NP_STATUSES = [
  'waiting',
  'confirming',
  'confirmed',
  'sending',
  'partially_paid',
  'finished',
  'failed',
  'refunded',
  'expired',
] as const;
export type NpStatus = (typeof NP_STATUSES)[number];

/** Progress order of NowPayments statuses; a lower rank arriving later is stale and never applied. */
export const NP_RANK: Record<NpStatus, number> = {
  waiting: 1,
  confirming: 2,
  confirmed: 3,
  sending: 4,
  partially_paid: 5,
  finished: 6,
  failed: 6,
  expired: 6,
  refunded: 7,
};

/** What an IPN (or a reconciliation answer) told us about the payment; amounts are exact decimals. */
export interface NpFacts {
  orderId?: string | null;
  invoiceId?: string | null;
  parentPaymentId?: string | null;
  payAmount?: DecimalString | null;
  actuallyPaid?: DecimalString | null;
  payCurrency?: string | null;
  priceAmount?: DecimalString | null;
  priceCurrency?: string | null;
  outcomeAmount?: DecimalString | null;
  outcomeCurrency?: string | null;
  updatedAt?: string | null;
}

export type NpEvent = { [S in NpStatus]: { type: `np.${S}`; facts: NpFacts } }[NpStatus];

export const EFFECTS = ['route', 'invite', 'split', 'settle', 'accumulate'] as const;
export type EffectName = (typeof EFFECTS)[number];

export type PayoutStrategy = 'instant' | 'threshold';

/** What routing decided: who gets access to which channel and how the owner is paid. */
export interface Route {
  orderId: string;
  channelId: string;
  planId: string;
  buyerTelegramId: string;
  strategy: PayoutStrategy;
  /** Owner's share in USD after the platform fee. */
  ownerShareUsd: DecimalString;
  feeUsd: DecimalString;
}

export type ActorEvent =
  | { type: 'route.done'; route: Route }
  | { type: 'route.rejected'; reason: string }
  | { type: 'invite.sent'; inviteLink: string }
  | { type: 'invite.undeliverable'; inviteLink: string; reason: string }
  | { type: 'invite.failed'; reason: string }
  /** The owner's share left the host wallet: to the exchange's pay-in address, or straight to the owner (exchangeId null). */
  | { type: 'split.done'; exchangeId: string | null; txHash: string }
  | { type: 'payout.settled'; txHash?: string; payoutId?: string }
  | { type: 'payout.failed'; reason: string }
  | { type: 'accumulate.done'; ledgerEntryId: string }
  | { type: 'batch.paid'; batchId: string }
  /** A job that used up its retries: the region that waited for it parks for review. */
  | { type: 'effect.exhausted'; effect: EffectName; error: string };

/**
 * What an operator may do to a payment. `by` (who) and `reason` (why) are kept in the journal row's event;
 * the admin API requires both (optional here only so engine-level tests and scripts stay short).
 *   operator.retry            run the parked step again (route, invite, or the payout step that parked) under a new attempt
 *   operator.reinvite         a new invite link for the buyer (access invited, undeliverable or parked; also after paid,
 *                             e.g. when a stranger used the link): access goes back to inviting under a new invite attempt
 *   operator.accept_underpaid take an underpayment as paid
 *   operator.cancel           give up on an underpaid or parked payment
 */
export const OPERATOR_EVENTS = ['operator.retry', 'operator.reinvite', 'operator.accept_underpaid', 'operator.cancel'] as const;
export type OperatorEventType = (typeof OPERATOR_EVENTS)[number];

export type OperatorEvent = { [T in OperatorEventType]: { type: T; by: string; reason?: string; note?: string } }[OperatorEventType];

export type PaymentEvent = NpEvent | ActorEvent | OperatorEvent;

export function isNpEventType(type: string): type is NpEvent['type'] {
  return type.startsWith('np.') && (NP_STATUSES as readonly string[]).includes(type.slice(3));
}
