import type pg from 'pg';
import type { PayoutExecutor } from '../../payouts/payout-executor.js';
import { findPayout, instantPayoutId, resumeFromReview } from '../../payouts/payouts.repo.js';
import type { EffectActor } from '../effect-actor.js';

// Effect "settle" (instant payouts): wait for the host wallet's transaction to be confirmed and the
// exchange to finish, then book the payout. "Not yet" is a retry with backoff (bounded by the settle
// queue's retry limit, then the payment parks for review), never a hot loop.

export function createSettleActor(deps: { pool: pg.Pool; payouts: PayoutExecutor }): EffectActor {
  return {
    effect: 'settle',
    async perform(job) {
      const payoutId = instantPayoutId(job.paymentId);
      const payout = await findPayout(deps.pool, payoutId);
      if (!payout) return { type: 'payout.failed', reason: `payout ${payoutId} was never planned` };
      if (payout.status === 'review') await resumeFromReview(deps.pool, payoutId);
      const result = await deps.payouts.settle(payoutId);
      if (result.outcome === 'review') return { type: 'payout.failed', reason: result.reason };
      return { type: 'payout.settled', txHash: result.payout.ownerPayoutHash ?? result.payout.txHash ?? undefined, payoutId };
    },
  };
}
