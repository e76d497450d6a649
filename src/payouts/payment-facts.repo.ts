import { findChannel, type ChannelRow } from '../channels/channels.repo.js';
import type { PaymentView } from '../machines/payment.view.js';
import type { Queryable } from '../persistence/transaction.js';

/** What a payout step reads about a payment: its read model and the channel its route names. */
export async function payoutFactsOf(db: Queryable, paymentId: string): Promise<{ view: PaymentView; channel: ChannelRow | null }> {
  const { rows } = await db.query<{ view: PaymentView | null }>({ name: 'payout-read-view', text: 'SELECT view FROM payments WHERE payment_id = $1', values: [paymentId] });
  const view = rows[0]?.view;
  // Payout jobs are enqueued in the transaction that writes the payment: a missing row is a bug, not a state.
  if (!view?.route) throw new Error(`payment ${paymentId} has no route`);
  return { view, channel: await findChannel(db, view.route.channelId) };
}
