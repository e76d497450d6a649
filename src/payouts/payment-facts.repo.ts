import { channelOf, type ChannelRow } from '../channels/channels.repo.js';
import { shareOf } from '../domain/payout-plan.js';
import type { Split } from '../domain/payout-split.js';
import type { PaymentView } from '../machines/payment.view.js';
import type { Queryable } from '../persistence/transaction.js';
import { creditPayment } from './ledger.repo.js';

/** What a payout step reads of a payment: the route it took and what NowPayments reported. */
export type PayoutFacts = Pick<PaymentView, 'route' | 'np'>;

/** The stored payment's route and NowPayments facts (its read model). */
export async function readPayoutFacts(db: Queryable, paymentId: string): Promise<PayoutFacts> {
  const { rows } = await db.query<{ view: PaymentView | null }>({
    name: 'payout-read-view',
    text: 'SELECT view FROM payments WHERE payment_id = $1',
    values: [paymentId],
  });
  const view = rows[0]?.view;
  // Payout jobs are enqueued in the transaction that writes the payment: a missing row is a bug, not a state.
  if (!view?.route) throw new Error(`payment ${paymentId} has no route`);
  return view;
}

/**
 * What a payout step needs to know about a payment: the channel its route names and the split of what
 * NowPayments says arrived — or, in words for the operator, why that cannot be known.
 */
export async function shareOfPayment(db: Queryable, paymentId: string): Promise<{ channel: ChannelRow; split: Split } | { problem: string }> {
  return shareOfFacts(db, paymentId, await readPayoutFacts(db, paymentId));
}

/**
 * The same from facts in hand (an inline effect has the snapshot being written: nothing to read back),
 * and the channel row routing read in the same transition when there is one (`reads`).
 */
export async function shareOfFacts(db: Queryable, paymentId: string, facts: PayoutFacts, reads?: Map<string, unknown>): Promise<{ channel: ChannelRow; split: Split } | { problem: string }> {
  if (!facts.route) throw new Error(`payment ${paymentId} has no route`);
  const channel = await channelOf(db, facts.route.channelId, reads);
  if (!channel) return { problem: `channel ${facts.route.channelId} is not configured: add it, then retry` };
  const share = shareOf(facts.np, channel.platformFeePercent);
  return 'problem' in share ? share : { channel, split: share.split };
}

/** Books the payment's owner credit and platform fee (once per payment, whatever the retries). */
export function creditShare(db: Queryable, paymentId: string, channel: ChannelRow, split: Split, payoutId: string | null) {
  return creditPayment(db, {
    paymentId,
    openChannelId: channel.openChannelId,
    ownerUnits: split.ownerUnits,
    feeUnits: split.feeUnits,
    ownerUsd: split.ownerUsd,
    feeUsd: split.feeUsd,
    payoutId,
  });
}
