import type pg from 'pg';
import { isDirect } from '../../domain/payout-plan.js';
import type { PaymentEvent } from '../../machines/payment.events.js';
import { creditShare, shareOfPayment } from '../../payouts/payment-facts.repo.js';
import type { PayoutExecutor } from '../../payouts/payout-executor.js';
import { findPayout, instantPayoutId, planPayout, resumeFromReview } from '../../payouts/payouts.repo.js';
import { inTransaction } from '../../persistence/transaction.js';
import type { EffectActor } from '../effect-actor.js';

// Effect "split" (instant payouts): book the payment's share in the ledger and plan the owner's payout
// (one transaction, once per payment: payout id 'payment:<payment_id>'), then create the exchange and
// send the owner's share from the host wallet (src/payouts/payout-executor.ts). Reports split.done with
// the transaction hash, or payout.failed with the reason when a person must look.

const failed = (reason: string): PaymentEvent => ({ type: 'payout.failed', reason });

export function createSplitActor(deps: { pool: pg.Pool; payouts: PayoutExecutor }): EffectActor {
  const { pool } = deps;
  return {
    effect: 'split',
    async perform(job) {
      const payoutId = instantPayoutId(job.paymentId);
      let payout = await findPayout(pool, payoutId);
      if (!payout) {
        const share = await shareOfPayment(pool, job.paymentId);
        if ('problem' in share) return failed(share.problem);
        const { channel, split } = share;
        if (split.ownerUnits === 0n) return failed(`the owner's share of ${split.outcomeUnits} wei rounds to 0 wei`);
        payout = await inTransaction(pool, async (tx) => {
          await creditShare(tx, job.paymentId, channel, split, payoutId);
          return planPayout(tx, {
            payoutId,
            kind: 'instant',
            openChannelId: channel.openChannelId,
            paymentId: job.paymentId,
            batchId: null,
            clearedUnits: split.ownerUnits,
            amountUnits: split.ownerUnits,
            owedUsd: split.ownerUsd,
            toAddress: channel.walletAddress,
            toCurrency: channel.currency,
            toNetwork: channel.network,
            direct: isDirect(channel.currency, channel.network),
          });
        });
      }
      // Only an operator's retry brings a parked payout's payment back to this step.
      if (payout.status === 'review') await resumeFromReview(pool, payoutId);
      const result = await deps.payouts.send(payoutId);
      if (result.outcome === 'review') return failed(result.reason);
      return { type: 'split.done', exchangeId: result.payout.exchangeId, txHash: result.payout.txHash! };
    },
  };
}
