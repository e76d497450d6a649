import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { PaymentEvent } from '../../machines/payment.events.js';
import { creditShare, shareOfPayment } from '../../payouts/payment-facts.repo.js';
import type { EffectActor } from '../effect-actor.js';
import { claimAndSchedule } from './batches.js';

// Effect "accumulate" (threshold payouts): book the payment's share in the channel's ledger (once per
// payment, whatever the retries), with its USD value locked at NowPayments' rate, then try to claim a
// batch: if the channel's open credits now reach its threshold, one batch takes exactly them and its
// payment job is scheduled in the same transaction. A claim that loses the race, or a crash between
// credit and claim, is picked up by the next payment or the periodic sweep.

export function createAccumulateActor(deps: { pool: pg.Pool; boss: PgBoss }): EffectActor {
  return {
    effect: 'accumulate',
    async perform(job): Promise<PaymentEvent> {
      const share = await shareOfPayment(deps.pool, job.paymentId);
      if ('problem' in share) return { type: 'payout.failed', reason: share.problem };
      const { channel, split } = share;
      const { entries } = await creditShare(deps.pool, job.paymentId, channel, split, null);
      if (channel.thresholdUsd) await claimAndSchedule(deps, channel.openChannelId, channel.thresholdUsd);
      return { type: 'accumulate.done', ledgerEntryId: entries[0]!.entryId };
    },
  };
}
